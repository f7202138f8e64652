"""The binocular model (Chen et al., ICCV 2021, §3.2): two branches sharing one encoder +
lixel mesh regressor, initialised from a ``pretrain`` checkpoint. Each branch predicts
per-vertex (u, v) in its own crop; depth follows from their disparity (eq. 1), giving
absolute meshes in both cameras (:func:`stereo_meshes`).

Depth is bounded (:func:`stereo_depths`, a documented deviation from per-vertex eq. 1):
the mean disparity of the mesh gives the hand's depth, each vertex a bounded offset.

Monocular variant (``z_head``): each branch also regresses root-relative z per vertex;
its mesh is ``(u, v, z_ref + z)`` with ``z_ref`` from the mean disparity of the two
branches, so one image gives a root-relative mesh at test time.
"""

from __future__ import annotations

import torch

from handtools.core.learning.nets.prior import build_prior, regress_joints21


def stereo_net_from_prior(ckpt: dict, J_regressor, z_head: bool):
    """The self-supervised model initialised from a prior checkpoint.

    The binocular model drops the prior's z head (supplementary §2: u, v only);
    the monocular variant keeps it.
    """
    cfg = dict(ckpt["meta"]["net"], with_z=bool(z_head))
    if z_head and not ckpt["meta"]["net"].get("with_z", True):
        raise ValueError("--z-head needs an --init prior trained with a z head (pretrain --z)")
    net = build_prior(cfg, J_regressor=J_regressor)
    state = {k: v for k, v in ckpt["model"].items() if z_head or (".conv_z_" not in k and ".prior_z" not in k)}
    net.load_state_dict(state, strict=True)
    return net


#: Largest depth offset of a vertex from the hand's reference depth, metres, as a fraction
#: of that depth at most :data:`MAX_OFFSET_FRACTION` (a hand spans about 0.2 m).
DEPTH_HALF_RANGE = 0.15
MAX_OFFSET_FRACTION = 0.5


def stereo_depths(uv_l, uv_r, K_l, K_r, baseline, z_rel=None, half_range: float = DEPTH_HALF_RANGE):
    """Per-vertex depths of a stereo prediction, bounded around the hand's reference depth.

    Deviation from eq. 1 (docs/selfsup-stereo.md, "Depth parameterisation"): eq. 1 per
    vertex puts a vertex metres away whenever its predicted disparity nears zero. Here

    * the **reference disparity** is a robust mean of the vertices' disparities
      ``d_v = fx_l (x_l - x_r)``: the median plus the mean of the bounded offsets from it
      (778 predictions averaged; outliers bounded), kept above ``MIN_DISPARITY_PX``; its
      depth ``z_ref = fx_l b / d_ref``;
    * without ``z_rel`` (the paper's u, v-only model) each vertex's disparity is the
      reference plus a **bounded offset**: ``d_ref + soft_bound(d_v - d_ref, s)`` with
      ``s = d_ref min(half_range / (z_ref + half_range), MAX_OFFSET_FRACTION)``: exactly eq. 1
      while the offset is under ``s / 2`` (about ``half_range / 2`` of depth: every vertex of
      a well-predicted hand), saturating smoothly beyond, so no depth leaves
      ``(z_ref / (1 + s / d_ref), z_ref + half_range)`` (at 0.5 m and 0.15 m: -94 / +150 mm);
    * with ``z_rel`` (a z head, (B, V) metres, the monocular variant's per-vertex depth
      ``±depth_range / 2``): ``z_ref + z_rel - mean(z_rel)``, the regressed shape placed at
      the stereo depth.

    Args:
        uv_l, uv_r: (B, V, 2) pixels of each crop; K_l, K_r: (B, 3, 3); baseline: float or (B,).
        z_rel: optional (B, V) metres. half_range: metres (> 0).

    Returns:
        (z, z_ref): (B, V) and (B,) metres, positive and finite.
    """
    from handtools.core.geometry.cameras import unproject
    from handtools.core.geometry.stereo import MIN_DISPARITY_PX, soft_min_clamp

    if uv_l.ndim != 3 or uv_l.shape[-1] != 2 or uv_r.shape != uv_l.shape:
        raise ValueError(f"uv_l, uv_r must both be (B, V, 2), got {tuple(uv_l.shape)}, {tuple(uv_r.shape)}")
    if not half_range > 0:
        raise ValueError(f"half_range must be positive, got {half_range}")
    B = uv_l.shape[0]
    K_l, K_r = K_l.to(uv_l.dtype), K_r.to(uv_l.dtype)
    b = torch.as_tensor(baseline, dtype=uv_l.dtype, device=uv_l.device).expand(B)  # (B,)
    ones = torch.ones_like(uv_l[..., 0])
    fx = K_l[:, 0, 0]  # (B,)
    d = fx[:, None] * (unproject(uv_l, ones, K_l)[..., 0] - unproject(uv_r, ones, K_r)[..., 0])  # (B, V) px
    # robust mean: offsets from the (detached) median, bounded, then averaged: a few vertices with
    # crossed or vanishing disparity cannot drag the hand's depth, and every vertex gets a gradient
    d_med = soft_min_clamp(d.detach().median(1).values, MIN_DISPARITY_PX)  # (B,)
    s_med = d_med * torch.clamp(half_range / (fx * b / d_med + half_range), max=MAX_OFFSET_FRACTION)
    d_ref = soft_min_clamp(d_med + soft_bound(d - d_med[:, None], s_med[:, None]).mean(1), MIN_DISPARITY_PX)
    z_ref = fx * b / d_ref  # (B,)
    if z_rel is not None:
        if tuple(z_rel.shape) != tuple(d.shape):
            raise ValueError(f"z_rel must be {tuple(d.shape)}, got {tuple(z_rel.shape)}")
        return z_ref[:, None] + z_rel - z_rel.mean(1, keepdim=True), z_ref
    s = d_ref * torch.clamp(half_range / (z_ref + half_range), max=MAX_OFFSET_FRACTION)  # (B,): far bound z_ref + r
    d_v = d_ref[:, None] + soft_bound(d - d_ref[:, None], s[:, None])
    return fx[:, None] * b[:, None] / d_v, z_ref


def soft_bound(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged for ``|x| <= s / 2``, then saturating smoothly (tanh, C1) towards ``±s``."""
    a = s / 2
    over = (x.abs() - a).clamp(min=0)
    return torch.where(x.abs() <= a, x, torch.sign(x) * (a + (s - a) * torch.tanh(over / (s - a))))


def stereo_meshes(out_l: dict, out_r: dict, K_l, K_r, baseline, J_regressor):
    """Absolute meshes of both branches, each in its own camera frame (metres).

    Depth per vertex from :func:`stereo_depths` (shared by both views, as eq. 1): the
    u, v-only model's disparities as a bounded offset around the mean disparity; with a
    z head (monocular variant), its root-relative z at the mean-disparity depth. Each
    view's ``(u, v, z)`` is unprojected with its own intrinsics.
    Returns ``(verts_l, verts_r, z_disp)`` with ``z_disp`` (B, 778) the u, v-only depth
    (bounded disparity), the target of the monocular variant's depth term.
    """
    from handtools.core.geometry.cameras import unproject

    del J_regressor  # the reference is the whole mesh's mean disparity, not the regressed wrist
    uv_l, uv_r = out_l["uv"], out_r["uv"]
    z_disp, _ = stereo_depths(uv_l, uv_r, K_l, K_r, baseline)
    z = z_disp if "z" not in out_l else stereo_depths(uv_l, uv_r, K_l, K_r, baseline,
                                                      z_rel=(out_l["z"] + out_r["z"]) / 2)[0]
    ones = torch.ones_like(z)
    vl = unproject(uv_l, ones, K_l.to(uv_l.dtype)) * z[..., None]
    vr = unproject(uv_r, ones, K_r.to(uv_r.dtype)) * z[..., None]
    return vl, vr, z_disp


def root_relative_z(out: dict, J) -> torch.Tensor:
    """The z head's depths relative to the branch's own regressed wrist, (B, 778)."""
    z = out["z"]
    return z - regress_joints21(z[..., None], J)[:, :1, 0]
