"""S2HAND's training objective (Chen et al., CVPR 2021, §3.4 and supplementary §1-2).

Every term is a function of tensors (testable alone); :class:`S2HandLoss` renders the
decoded hand and sums the enabled terms with the weights of
:func:`~handtools.core.methods.s2hand.config.term_weights`. Keypoints are in pixels
of the crop, rescaled to the paper's 224-pixel crop (``px224``) so the paper's weights
keep their meaning at other crop sizes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from handtools.core.hand.joint_limits import JOINT_LIMITS_DEG, anatomical_axes
from handtools.core.hand.joints import BONES
from handtools.core.losses.image import SSIM_WIN_SIGMA, SSIM_WIN_SIZE
from handtools.core.methods.s2hand.config import (
    BRANCH_2D_LOSSES,
    LOSS_NAMES,
    MIDDLE_PROXIMAL_LENGTH,
    PAPER,
    PAPER_IMAGE_SIZE,
    term_weights,
)
from handtools.core.methods.s2hand.model import decode
from handtools.core.render.common import project

#: The code's per-joint weights of its keypoint loss (wrist 2, finger roots 1.5).
CODE_KEYPOINT_WEIGHTS = (2, 1, 1, 1, 1.5, 1, 1, 1, 1.5, 1, 1, 1, 1.5, 1, 1, 1, 1.5, 1, 1, 1, 1.5)
_BONES = torch.tensor(BONES)  # (20, 2) parent, child in FreiHAND order


def _check(x: torch.Tensor, name: str, shape: tuple) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != len(shape) or any(
            s is not None and x.shape[i] != s for i, s in enumerate(shape)):
        raise ValueError(f"{name} must have shape {shape}, got {getattr(x, 'shape', type(x).__name__)}")


def joint_location_loss(pred: torch.Tensor, det: torch.Tensor, conf: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """E_loc (eq. 3), also E_2d (eq. 10) with ``pred`` the 2D branch's joints.

    pred, det (B, 21, 2) pixels; conf (B, 21) in [0, 1].
    ``paper``: ``1/k sum_i con_i SmoothL1(j_de, j_pro)`` (SmoothL1 with beta 1 px summed
    over u, v), batch mean. ``code``: Huber on the distance d (d^2/10 below 5 px, d - 2.5
    above) weighted by ``(con_i w_i)^2`` with the code's joint weights, normalised by
    their sum over the batch. Returns a scalar.
    """
    _check(pred, "pred", (None, 21, 2))
    _check(det, "det", (pred.shape[0], 21, 2))
    _check(conf, "conf", (pred.shape[0], 21))
    if form == "paper":
        per = F.smooth_l1_loss(pred, det, reduction="none", beta=1.0).sum(-1)  # (B, 21)
        return (conf * per).mean()
    if form == "code":
        d = (pred - det).norm(dim=-1)  # (B, 21)
        h = torch.where(d < 5, d ** 2 / 10, d - 2.5)
        w = (conf * conf.new_tensor(CODE_KEYPOINT_WEIGHTS)) ** 2
        return (h * w).sum() / w.sum().clamp_min(1e-8)
    raise ValueError(f"form must be paper or code, got {form!r}")


def bone_orientation_loss(pred: torch.Tensor, det: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """E_ori (eq. 4): ``1/m sum_i con_i^bone ||nu_de - nu_pro||^2`` over the m = 20 bones,
    nu the unit bone vectors, con^bone the product of the two joints' confidences.

    pred, det (B, 21, 2) pixels; conf (B, 21). Returns a scalar (batch mean), in [0, 4].
    """
    _check(pred, "pred", (None, 21, 2))
    _check(det, "det", (pred.shape[0], 21, 2))
    b = _BONES.to(pred.device)
    nu_p = F.normalize(pred[:, b[:, 1]] - pred[:, b[:, 0]], dim=-1, eps=1e-8)  # (B, 20, 2)
    nu_d = F.normalize(det[:, b[:, 1]] - det[:, b[:, 0]], dim=-1, eps=1e-8)
    cb = conf[:, b[:, 0]] * conf[:, b[:, 1]]  # (B, 20)
    return (cb * ((nu_d - nu_p) ** 2).sum(-1)).mean()


def photometric_loss(image: torch.Tensor, rendered: torch.Tensor, silhouette: torch.Tensor,
                     weight: torch.Tensor) -> torch.Tensor:
    """E_pixel (eq. 6): ``con_sum / |S| sum_{(u,v) in S} ||I_uv - I^re_uv||_2``.

    image (B, 3, H, W) in [0, 1]; rendered (B, 3, H, W) premultiplied by coverage (the
    renderer's ``rgb``); silhouette (B, H, W) in [0, 1] (soft at the edges: the input is
    premultiplied by it too, and |S| is its sum); weight (B,) per-sample con_sum.
    Returns a scalar (batch mean).
    """
    _check(image, "image", (None, 3, None, None))
    s = silhouette[:, None]  # (B, 1, H, W)
    d = (image * s - rendered).pow(2).sum(1).add(1e-12).sqrt()  # (B, H, W)
    per = d.flatten(1).sum(1) / s.flatten(1).sum(1).clamp_min(1.0)  # (B,)
    return (weight * per).mean()


def ssim_loss(image: torch.Tensor, rendered: torch.Tensor, silhouette: torch.Tensor,
              win_size: int = SSIM_WIN_SIZE, win_sigma: float = SSIM_WIN_SIGMA) -> torch.Tensor:
    """E_SSIM (eq. 7): ``1 - SSIM(I * S^re, I^re)`` (pytorch_msssim, the project's window).

    image, rendered (B, 3, H, W); silhouette (B, H, W). Returns a scalar (batch mean).
    """
    win = min(win_size, image.shape[-1], image.shape[-2])
    win -= 1 - win % 2
    s = ssim(image * silhouette[:, None], rendered.clamp(0, 1), data_range=1.0, size_average=False,
             win_size=win, win_sigma=win_sigma)  # (B,)
    return (1.0 - s).mean()


def shape_loss(beta: torch.Tensor, form: str = "norm") -> torch.Tensor:
    """E_beta: ``||beta - 0||`` (paper, L2 norm) or the code's mean of squares; batch mean."""
    _check(beta, "beta", (None, 10))
    if form == "norm":
        return beta.pow(2).sum(-1).add(1e-12).sqrt().mean()
    if form == "mse":
        return beta.pow(2).mean()
    raise ValueError(f"form must be norm or mse, got {form!r}")


def texture_loss(texture: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """E_C (supplementary eqs. 1-2): ``con_sum / n sum_i f(c_i)``, ``f(c) = 0`` when every
    channel of c lies within the mean +- 2 std of the sample's colours (per channel),
    else ``||c - mean||^2``.

    texture (B, n, 3); weight (B,) con_sum. Returns a scalar (batch mean).
    """
    _check(texture, "texture", (None, None, 3))
    mean = texture.mean(1, keepdim=True)  # (B, 1, 3)
    std = texture.std(1, keepdim=True)
    inside = ((texture > mean - 2 * std) & (texture < mean + 2 * std)).all(-1)  # (B, n)
    f = torch.where(inside, torch.zeros_like(texture[..., 0]), (texture - mean).pow(2).sum(-1))
    return (weight * f.mean(1)).mean()


def scale_loss(joints: torch.Tensor, length: float = MIDDLE_PROXIMAL_LENGTH) -> torch.Tensor:
    """E_s (supplementary §1): ``(l - 2.82 cm)^2`` with l the length of bone 9-10 (metres).

    joints (B, 21, 3) metres. Returns a scalar (batch mean), m^2.
    """
    _check(joints, "joints", (None, 21, 3))
    l = (joints[:, 10] - joints[:, 9]).norm(dim=-1)  # (B,)
    return ((l - length) ** 2).mean()


class JointAngleLoss(torch.nn.Module):
    """E_J (supplementary eqs. 3-4): hinge on joint angles outside their feasible range,
    ``1/15 sum_i f_i(a_i)``, summed over each joint's three angles.

    Angles: the anatomical flexion / abduction / twist of
    :mod:`handtools.core.hand.joint_limits` (the project's table, not the paper's
    Table 1 of bone azimuth / pitch / roll; see docs/selfsup-mono.md).
    ``forward(pose)``: (B, 48) MANO axis-angle (global first) -> scalar, radians.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("axes", torch.as_tensor(anatomical_axes(), dtype=torch.float32))  # (15, 3, 3)
        lim = np.deg2rad(JOINT_LIMITS_DEG)
        self.register_buffer("lo", torch.as_tensor(lim[..., 0], dtype=torch.float32))  # (15, 3)
        self.register_buffer("hi", torch.as_tensor(lim[..., 1], dtype=torch.float32))

    def angles(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 48) -> (B, 15, 3) radians."""
        _check(pose, "pose", (None, 48))
        return torch.einsum("jkc,bjc->bjk", self.axes.to(pose.dtype), pose[:, 3:].reshape(-1, 15, 3))

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        a = self.angles(pose)
        f = torch.relu(self.lo - a) + torch.relu(a - self.hi)  # (B, 15, 3), eq. 4
        return f.sum(-1).mean()


def consistency_loss(proj: torch.Tensor, pred2d: torch.Tensor) -> torch.Tensor:
    """E_con (eq. 11): ``1/k sum_i SmoothL1(j_pro, j_2d)`` (beta 1 px, summed over u, v).
    proj, pred2d (B, 21, 2) pixels. Returns a scalar (batch mean)."""
    _check(proj, "proj", (None, 21, 2))
    _check(pred2d, "pred2d", tuple(proj.shape))
    return F.smooth_l1_loss(proj, pred2d, reduction="none").sum(-1).mean()


def confidence_weight(conf: torch.Tensor, form: str = "sum") -> torch.Tensor:
    """con_sum of eqs. 6 and supp. 1: the ``sum`` of the 21 confidences (paper) or their ``mean``."""
    if form == "sum":
        return conf.sum(-1)
    if form == "mean":
        return conf.mean(-1)
    raise ValueError(f"con_sum must be sum or mean, got {form!r}")


class S2HandLoss:
    """E (eq. 1) over the enabled terms, for :class:`~handtools.core.learning.trainer.Trainer`.

    Args:
        hand: the hand model of :func:`~handtools.core.methods.s2hand.model.mano_hand`.
        renderer: a :class:`~handtools.core.render.Renderer` (needed for pixel / ssim).
        weights: paper factors overriding :data:`~handtools.core.methods.s2hand.config.PAPER_WEIGHTS`.
        enabled: terms in use (default: the config's).
        con_sum, loc_form, shape_form: see :class:`~handtools.core.methods.s2hand.config.S2HandConfig`.

    The batch holds ``image`` (B, 3, H, W), ``K`` (B, 3, 3), ``keypoints`` (B, 21, 2) pixels
    and ``conf`` (B, 21). :meth:`terms` evaluates the terms of given codes (no network),
    which is what the per-sample fit of ``bench/bench_s2hand.py`` optimises.

    ``kp2d`` (E_2d, eq. 10) and ``con`` (E_con, eq. 11) need the 2D branch's output in
    the codes: ``kp2d_stacks`` (B, S, 21, 2) and ``kp2d`` (B, 21, 2) pixels
    (:class:`~handtools.core.methods.s2hand.model.S2HandNet` with ``stacks > 0``).
    E_2d is the mean of eq. 10 over the S stacks (Newell et al.'s intermediate
    supervision); E_con links the last stack's joints and the projected joints, with
    gradients into both branches (the paper's mutual improvement).
    """

    def __init__(self, hand, renderer=None, weights: dict | None = None, enabled=None,
                 con_sum: str = PAPER.con_sum, loc_form: str = PAPER.loc_form, shape_form: str = PAPER.shape_form):
        enabled = tuple(PAPER.losses if enabled is None else enabled)
        unknown = set(enabled) - set(LOSS_NAMES)
        if unknown:
            raise ValueError(f"unknown losses {sorted(unknown)} (known: {', '.join(LOSS_NAMES)})")
        if set(enabled) & {"pixel", "ssim"} and renderer is None:
            raise ValueError("the photometric terms need a renderer")
        unknown_w = set(weights or {}) - set(PAPER.weights)
        if unknown_w:
            raise ValueError(f"unknown weights {sorted(unknown_w)} (known: {', '.join(PAPER.weights)})")
        self.hand, self.renderer = hand, renderer
        self.factors = dict(PAPER.weights, **(weights or {}))
        self.w = term_weights(self.factors)
        self.enabled = enabled
        self.con_sum, self.loc_form, self.shape_form = con_sum, loc_form, shape_form
        self.angle = JointAngleLoss()

    def terms(self, codes: dict, batch: dict) -> tuple[dict[str, torch.Tensor], dict]:
        """Unweighted terms of the enabled losses and the decoded hand (``verts``, ``joints``,
        ``pose``, ``uv`` (B, 21, 2) projected joints, ``render`` when rendered)."""
        image, K, kp, conf = batch["image"], batch["K"], batch["keypoints"], batch["conf"]
        H, W = image.shape[-2:]
        hand = decode(codes, self.hand)
        uv, _ = project(hand["joints"], K)  # (B, 21, 2) crop pixels
        hand["uv"] = uv
        px224 = PAPER_IMAGE_SIZE / float(W)
        wcon = confidence_weight(conf, self.con_sum)  # (B,)
        t: dict[str, torch.Tensor] = {}
        on = set(self.enabled)
        if "loc" in on:
            t["loc"] = joint_location_loss(uv * px224, kp * px224, conf, self.loc_form)
        if "ori" in on:
            t["ori"] = bone_orientation_loss(uv, kp, conf)
        if on & {"pixel", "ssim"}:
            faces = self.hand.faces
            tex = codes["texture"]
            kw = {"colors": tex} if tex.shape[1] == hand["verts"].shape[1] else {"face_colors": tex}
            r = self.renderer.render(hand["verts"], faces, K, (H, W), light=codes["light"], **kw)
            rgb = r.rgb.permute(0, 3, 1, 2)  # (B, 3, H, W)
            hand["render"] = r
            if "pixel" in on:
                t["pixel"] = photometric_loss(image, rgb, r.silhouette, wcon)
            if "ssim" in on:
                t["ssim"] = ssim_loss(image, rgb, r.silhouette)
        if "shape" in on:
            t["shape"] = shape_loss(codes["beta"], self.shape_form)
        if "texture" in on:
            t["texture"] = texture_loss(codes["texture"], wcon)
        if "scale" in on:
            t["scale"] = scale_loss(hand["joints"])
        if "angle" in on:
            t["angle"] = self.angle.to(hand["pose"].device)(hand["pose"])
        if on & set(BRANCH_2D_LOSSES):
            if "kp2d" not in codes or "kp2d_stacks" not in codes:
                raise ValueError("the kp2d and con losses need the 2D branch's joints (kp2d, kp2d_stacks): "
                                 "build S2HandNet with stacks > 0, or switch them off")
            st = codes["kp2d_stacks"]
            _check(st, "kp2d_stacks", (uv.shape[0], None, 21, 2))
            _check(codes["kp2d"], "kp2d", (uv.shape[0], 21, 2))
            if "kp2d" in on:
                t["kp2d"] = torch.stack([joint_location_loss(st[:, i] * px224, kp * px224, conf, self.loc_form)
                                         for i in range(st.shape[1])]).mean()
            if "con" in on:
                t["con"] = consistency_loss(uv * px224, codes["kp2d"] * px224)
        return t, hand

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.w[k] * v for k, v in terms.items())

    def __call__(self, model, batch: dict):
        codes = model(batch["image"], batch["K"], with_2d=bool(set(self.enabled) & set(BRANCH_2D_LOSSES)))
        terms, hand = self.terms(codes, batch)
        loss = self.total(terms)
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        with torch.no_grad():  # readable progress: confidence-weighted 2D error in crop pixels
            csum = batch["conf"].sum().clamp_min(1e-8)
            e = (hand["uv"] - batch["keypoints"]).norm(dim=-1)
            metrics["kp_err_px"] = float((e * batch["conf"]).sum() / csum)
            if "kp2d" in codes:  # the 2D branch's error against the detections
                e2 = (codes["kp2d"] - batch["keypoints"]).norm(dim=-1)
                metrics["kp2d_err_px"] = float((e2 * batch["conf"]).sum() / csum)
        return loss, metrics
