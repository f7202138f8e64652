"""The binocular model (Chen et al., ICCV 2021, §3.2): two branches sharing one encoder +
lixel mesh regressor, initialised from a ``pretrain`` checkpoint. Each branch predicts
per-vertex (u, v) in its own crop; depth follows from their disparity (eq. 1), giving
absolute meshes in both cameras (:func:`stereo_meshes`).

Monocular variant (``z_head``): each branch also regresses root-relative z per vertex;
its mesh is ``(u, v, z_root + z)`` with the wrist depth ``z_root`` from the disparity of
the two branches' wrists, so one image gives a root-relative mesh at test time.
"""

from __future__ import annotations

import torch

from handtools.core.geometry.stereo import verts_from_disparity
from handtools.core.learning.nets.prior import build_prior, regress_joints21, uvz_to_camera


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


def stereo_meshes(out_l: dict, out_r: dict, K_l, K_r, baseline, J_regressor):
    """Absolute meshes of both branches, each in its own camera frame (metres).

    Binocular: eq. 1 per vertex. With z heads (monocular variant): the wrist depth
    from the disparity of the regressed wrists plus each branch's root-relative z.
    Returns ``(verts_l, verts_r, z_disp)`` with ``z_disp`` (B, 778) the eq.-1 depth.
    """
    xyz_l, xyz_r = verts_from_disparity(out_l["uv"], out_r["uv"], K_l, K_r, baseline)  # (B, 778, 3) each
    if "z" not in out_l:
        return xyz_l, xyz_r, xyz_l[..., 2]
    wl = regress_joints21(out_l["uv"], J_regressor)[:, :1]  # (B, 1, 2) wrist pixels
    wr = regress_joints21(out_r["uv"], J_regressor)[:, :1]
    root_l, _ = verts_from_disparity(wl, wr, K_l, K_r, baseline)  # (B, 1, 3)
    z_root = root_l[:, 0, 2]  # (B,)
    vl = uvz_to_camera(out_l["uv"], root_relative_z(out_l, J_regressor), K_l, z_root)
    vr = uvz_to_camera(out_r["uv"], root_relative_z(out_r, J_regressor), K_r, z_root)
    return vl, vr, xyz_l[..., 2]


def root_relative_z(out: dict, J) -> torch.Tensor:
    """The z head's depths relative to the branch's own regressed wrist, (B, 778)."""
    z = out["z"]
    return z - regress_joints21(z[..., None], J)[:, :1, 0]
