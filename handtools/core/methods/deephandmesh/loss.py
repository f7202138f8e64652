"""DeepHandMesh's losses (Moon et al., ECCV 2020, §6), in millimetres.

``L = L_pose + L_depth + L_penet + λ_lap L_lap`` with ``L_penet = L^r_penet + λ_nr L^nr_penet``,
λ_nr = λ_lap = 5. Inputs are in metres and converted here, so the paper's weights keep
their meaning.

* :func:`pose_loss` — ``1/J Σ_j ||p_j - p*_j||_1``;
* :func:`depth_loss` — ``1/C Σ_c δ_c SmoothL1(D_c, D*_c)`` over the pixels where both depth
  maps exist (δ_c), rendered with the shared renderer (:func:`render_depth`);
* :class:`SphereProxies` — K spheres along every finger bone, centres interpolated between
  the zero-pose joints (c_1 at the parent, c_K at the child), radius the distance to the
  closest vertex of the zero-pose mesh; :func:`rigid_penetration` (eq. 2) and
  :func:`nonrigid_penetration` (eqs. 3-4);
* L_lap — the shared uniform Laplacian (:func:`handtools.core.losses.mesh.laplacian_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from handtools.core.data.synth import boundary_loop
from handtools.core.geometry.checks import check_tensor
from handtools.core.hand.joints import PARENTS
from handtools.core.losses.mesh import laplacian_loss, mesh_topology
from handtools.core.methods.deephandmesh.config import DeepHandMeshConfig

MM = 1000.0  # metres -> millimetres

#: Finger bones as (parent, child) in the 21-joint order: the rigid parts (the palm's
#: wrist -> finger-root bones are left out; the palm is the non-rigid part, §6).
FINGER_BONES = tuple((PARENTS[c], c) for c in range(1, 21) if PARENTS[c] != 0)
#: Index into FINGER_BONES of each finger's last bone (to the fingertip): thumb .. little.
TIP_BONES = tuple(i for i, (_, c) in enumerate(FINGER_BONES) if c % 4 == 0)


def pose_loss(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> Tensor:
    """L_pose = 1/J Σ_j ||p_j - p*_j||_1 in mm, averaged over the batch.

    pred, gt: (B, J, 3) metres; valid: optional (B, J) bool/float (joints without a target
    are left out of the mean). Returns a scalar, mm.
    """
    check_tensor(pred, "pred", (None, None, 3))
    check_tensor(gt, "gt", tuple(pred.shape))
    per_joint = (pred - gt).abs().sum(-1) * MM  # (B, J)
    if valid is None:
        return per_joint.mean()
    v = valid.to(per_joint.dtype)
    gt_ok = torch.where(v[..., None] > 0, gt, pred.detach())  # NaN-free where invalid
    per_joint = (pred - gt_ok).abs().sum(-1) * MM * v
    return per_joint.sum() / v.sum().clamp_min(1)


def depth_loss(rendered: Tensor, gt: Tensor, reduction: str = "masked") -> Tensor:
    """L_depth = 1/C Σ_c δ_c SmoothL1(D_c, D*_c), depths in mm (SmoothL1 with β = 1 mm).

    rendered, gt: (B, C, H, W) metres, 0 = no depth. δ_c: both depths > 0.
    reduction: "masked" — per view the mean over δ_c's pixels (the paper), then the mean
    over views with any such pixel; "all" — masked values averaged over every pixel (the
    official code). Returns a scalar, mm.
    """
    check_tensor(rendered, "rendered", (None, None, None, None))
    check_tensor(gt, "gt", tuple(rendered.shape))
    mask = ((rendered > 0) & (gt > 0)).to(rendered.dtype)  # δ_c
    per_pixel = F.smooth_l1_loss(rendered * MM, gt * MM, reduction="none", beta=1.0) * mask
    if reduction == "all":
        return per_pixel.mean()
    count = mask.sum((2, 3))  # (B, C)
    per_view = per_pixel.sum((2, 3)) / count.clamp_min(1)
    seen = (count > 0).to(rendered.dtype)
    return (per_view * seen).sum() / seen.sum().clamp_min(1)


def render_depth(renderer, verts: Tensor, faces: Tensor, K: Tensor, T_view: Tensor, size: int) -> Tensor:
    """Depth maps of meshes in several views with the shared renderer.

    verts (B, V, 3) metres in the world frame (view 0 of the shard); faces (F, 3);
    K (B, C, 3, 3) pixels of the (size x size) maps; T_view (B, C, 4, 4) world-to-camera.
    Returns (B, C, size, size) camera z in metres, 0 where the mesh is not seen;
    differentiable with respect to ``verts``.
    """
    b, c = K.shape[:2]
    R, t = T_view[..., :3, :3], T_view[..., :3, 3]  # (B, C, 3, 3), (B, C, 3)
    vc = torch.einsum("bcij,bvj->bcvi", R, verts) + t[:, :, None]  # (B, C, V, 3)
    out = renderer.render(vc.reshape(b * c, -1, 3), faces, K.reshape(b * c, 3, 3), (size, size))
    return out.depth.view(b, c, size, size)


def closed_faces(faces: Tensor) -> Tensor:
    """The hand mesh made watertight: its wrist opening closed by a fan over the opening's
    own vertices (no new vertex), wound to face out; ``synth`` draws its depth maps this way.

    faces (F, 3) int -> (F + L - 2, 3) for an opening of L vertices (unchanged when closed).
    Rendered open, a ray through the opening sees the inside of the palm's far side (tens
    of mm deeper than the measured cap): on 128² synth captures 4-5 % of the compared
    pixels, which dominated the mean depth residual of the true mesh at its true pose.
    """
    loop = torch.as_tensor(boundary_loop(faces.cpu().numpy()), dtype=faces.dtype, device=faces.device)
    if len(loop) < 3:
        return faces
    cap = torch.stack([loop[:1].expand(len(loop) - 2), loop[2:], loop[1:-1]], 1)
    return torch.cat([faces, cap])


class SphereProxies:
    """K spheres on each finger bone (§6, "Penetration loss").

    Built from the zero-pose skeleton and mesh (``LBS(0, S*, M̄*)``; detached, as the
    official code does): centres ``c_k = p̄_parent + t_k (p̄_child - p̄_parent)``,
    ``t_k = (k - 1) / (K - 1)``; radius ``r_k`` = distance from ``c_k`` to the closest
    vertex of the zero-pose mesh.

    Args:
        rest_joints: (21, 3) zero-pose joints, FreiHAND order, metres.
        rest_verts: (V, 3) zero-pose mesh, metres.
        k: spheres per bone (paper: 10).
    """

    def __init__(self, rest_joints: Tensor, rest_verts: Tensor, k: int = 10):
        check_tensor(rest_joints, "rest_joints", (21, 3))
        check_tensor(rest_verts, "rest_verts", (None, 3))
        if k < 2:
            raise ValueError(f"k must be >= 2, got {k}")
        dev, dt = rest_joints.device, rest_joints.dtype
        self.bones = torch.tensor(FINGER_BONES, device=dev)  # (n, 2)
        self.t = torch.linspace(0, 1, k, device=dev, dtype=dt)  # (K,)
        centres = self.centres(rest_joints.detach()[None])[0]  # (n, K, 3)
        d = torch.linalg.norm(centres.reshape(-1, 1, 3) - rest_verts.detach()[None], dim=-1)  # (nK, V)
        self.radii = d.min(1).values.view(len(FINGER_BONES), k)  # (n, K)
        # pairs of bones that share no joint (the same and adjacent bones are left out, eq. 2)
        b = self.bones
        share = (b[:, None, :, None] == b[None, :, None, :]).flatten(2).any(-1)  # (n, n)
        self.pairs = ~share & torch.ones_like(share).triu(1)  # each unordered pair once

    def centres(self, joints: Tensor) -> Tensor:
        """(B, 21, 3) posed joints -> (B, n, K, 3) sphere centres on the posed bones."""
        a, b = joints[:, self.bones[:, 0]], joints[:, self.bones[:, 1]]  # (B, n, 3)
        return a[:, :, None] + self.t[None, None, :, None] * (b - a)[:, :, None]


def rigid_penetration(centres: Tensor, radii: Tensor, pairs: Tensor, reduction: str = "sum") -> Tensor:
    """Eq. 2: ``Σ max(r_k + r_k' - ||c_k - c_k'||, 0)`` over sphere pairs of bone pairs ``pairs``.

    centres (B, n, K, 3) metres; radii (n, K) metres; pairs (n, n) bool (upper triangle).
    reduction: "sum" over every sphere pair (eq. 2) or "mean" (the code: mean over each bone
    pair's K x K spheres, then over the bone pairs). Returns (B,) in mm.
    """
    i, j = pairs.nonzero(as_tuple=True)  # (P,)
    ci, cj = centres[:, i], centres[:, j]  # (B, P, K, 3)
    dist = torch.linalg.norm(ci[:, :, :, None] - cj[:, :, None, :], dim=-1)  # (B, P, K, K)
    overlap = (radii[i][:, :, None] + radii[j][:, None, :])[None] - dist  # (B, P, K, K)
    pen = overlap.clamp_min(0) * MM
    if reduction == "mean":
        return pen.mean((2, 3)).mean(1)
    return pen.sum((1, 2, 3))


def nonrigid_penetration(centres: Tensor, radii: Tensor, palm_verts: Tensor, tip_bones, reduction: str = "sum"
                         ) -> Tensor:
    """Eqs. 3-4: fingertip spheres against the palm (the non-rigid part).

    For each fingertip bone t: ``d_k`` = distance from ``c_k`` to the closest palm vertex;
    ``l_t`` = the first k (from the parent) with ``d_k < r_k``; ``g(t) = Σ_{k >= l_t} |d_k - r_k|``
    (0 when no sphere penetrates). centres (B, n, K, 3); radii (n, K); palm_verts (B, P, 3)
    metres (posed); tip_bones: indices into the bones. reduction "sum" (eq. 3) or "mean"
    (the code: mean over k >= l_t, then over fingertips). Returns (B,) in mm.
    """
    tips = torch.as_tensor(list(tip_bones), device=centres.device)
    c = centres[:, tips]  # (B, T, K, 3)
    b, nt, k, _ = c.shape
    d = torch.linalg.norm(c.reshape(b, nt * k, 1, 3) - palm_verts[:, None], dim=-1)  # (B, TK, P)
    d = d.min(-1).values.view(b, nt, k)  # (B, T, K)
    r = radii[tips][None]  # (1, T, K)
    inside = d < r  # (B, T, K)
    # from the first penetrating sphere on, every sphere counts (cumulative "or" along k)
    after = inside.to(torch.int64).cummax(-1).values.bool()  # (B, T, K)
    per = (d - r).abs() * after * MM  # (B, T, K)
    if reduction == "mean":
        g = per.sum(-1) / after.sum(-1).clamp_min(1)
        return g.mean(1)
    return per.sum((1, 2))


class DeepHandMeshLoss(nn.Module):
    """The total loss of §6 for one batch of frames.

    Args:
        cfg: :class:`DeepHandMeshConfig` (weights, reductions, K, which fingertips).
        faces: (F, 3) mesh faces (Laplacian neighbourhoods, rendering).
        palm: (V,) bool, the palm vertices M_γ (dominant skinning joint = wrist).
        renderer: a :class:`handtools.core.render.Renderer` (depth maps), or None when no
            depth term is used.
    """

    def __init__(self, cfg: DeepHandMeshConfig, faces: Tensor, palm: Tensor, renderer=None):
        super().__init__()
        self.cfg, self.renderer = cfg, renderer
        self.faces = faces
        self.render_faces = closed_faces(faces) if cfg.close_wrist else faces  # what L_depth renders
        self.topology = mesh_topology(faces, int(palm.shape[0]), faces.device)
        self.palm = palm
        self.tip_bones = TIP_BONES if cfg.penet_thumb else TIP_BONES[1:]

    def forward(self, model, out: dict, targets: dict, use_penet: bool = True) -> tuple[Tensor, dict]:
        """Total loss (scalar, mm) and its terms (floats).

        model: the :class:`PersonalHandModel` (zero-pose skeleton and mesh for the spheres,
        correctives for the "offsets" Laplacian); out: its forward output for the batch;
        targets: ``joints`` (B, 21, 3), optional ``joint_valid`` (B, 21), optional ``depth``
        (B, C, S, S) with ``K`` (B, C, 3, 3) and ``T_view`` (B, C, 4, 4).
        """
        cfg = self.cfg
        terms: dict[str, Tensor] = {}
        terms["pose"] = pose_loss(out["joints"], targets["joints"], targets.get("joint_valid"))
        if targets.get("depth") is not None and cfg.w_depth > 0:
            if self.renderer is None:
                raise ValueError("depth targets need a renderer")
            size = targets["depth"].shape[-1]
            rendered = render_depth(self.renderer, out["verts"], self.render_faces, targets["K"], targets["T_view"], size)
            terms["depth"] = depth_loss(rendered, targets["depth"], cfg.depth_reduction)
        if use_penet and cfg.w_penet > 0:
            with torch.no_grad():
                zero = torch.zeros(1, model.pose_dim, dtype=out["verts"].dtype, device=out["verts"].device)
                rest = model(zero)
            spheres = SphereProxies(rest["joints"][0], rest["verts"][0], cfg.spheres_per_bone)
            centres = spheres.centres(out["joints"])
            r = rigid_penetration(centres, spheres.radii, spheres.pairs, cfg.penet_reduction).mean()
            nr = nonrigid_penetration(centres, spheres.radii, out["verts"][:, self.palm], self.tip_bones,
                                      cfg.penet_reduction).mean()
            terms["penet_r"], terms["penet_nr"] = r, nr
        lap_src = out["verts"] * 1e3 if cfg.lap_target == "mesh" else \
            (model.rest_template() - model.v_template)[None] * 1e3
        lap = laplacian_loss(lap_src, self.topology)
        if cfg.lap_reduction == "sum":
            lap = lap * lap_src.shape[1]
        terms["lap"] = lap
        w_l2_pose = cfg.w_l2 if cfg.w_l2_pose is None else cfg.w_l2_pose
        if cfg.w_l2 > 0 or w_l2_pose > 0:
            terms["l2"], terms["l2_pose"] = model.corrective_l2(out["aa"], out["rot"])
        total = cfg.w_pose * terms["pose"] + cfg.lambda_lap * terms["lap"]
        if "depth" in terms:
            total = total + cfg.w_depth * terms["depth"]
        if "l2" in terms:
            total = total + cfg.w_l2 * terms["l2"] + w_l2_pose * terms["l2_pose"]
        if "penet_r" in terms:
            total = total + cfg.w_penet * (terms["penet_r"] + cfg.lambda_nr * terms["penet_nr"])
        return total, {k: float(v.detach()) for k, v in terms.items()}
