"""Pseudo labels of the edge loss (eq. 5): the ``--init`` model's meshes on the training pairs."""

from __future__ import annotations

import torch

from handtools.core.hand.joints import NUM_VERTICES
from handtools.core.learning.nets.prior import build_prior
from handtools.core.methods.binocular.model import stereo_meshes


@torch.no_grad()
def pseudo_meshes(init_ckpt: dict, J_regressor, dataset, device, batch_size: int = 16) -> dict:
    """Pseudo labels for the edge loss (eq. 5): the init model's meshes on the training pairs.

    The prior's own 3D shape (u, v and its root-relative z) in each view, placed at
    the wrist depth given by the disparity of the two views' predicted wrists — the
    "test-directly" model's estimate, with the prior's undistorted hand shape.
    Returns ``{"left": (N, 778, 3), "right": (N, 778, 3)}`` metres, CPU.
    """
    J = torch.as_tensor(J_regressor, dtype=torch.float32, device=device)
    net = build_prior(init_ckpt["meta"]["net"], J_regressor=J).to(device).eval()
    net.load_state_dict(init_ckpt["model"])
    left = torch.zeros(len(dataset), NUM_VERTICES, 3)
    right = torch.zeros(len(dataset), NUM_VERTICES, 3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        n = batch["image_l"].shape[0]
        both = net(torch.cat([batch["image_l"], batch["image_r"]]))
        out_l = {k: v[:n] for k, v in both.items()}
        out_r = {k: v[n:] for k, v in both.items()}
        # with a z head: the prior's shape at the disparity wrist depth; else eq. 1 per vertex
        vl, vr, _ = stereo_meshes(out_l, out_r, batch["K_l"], batch["K_r"], batch["baseline"], J)
        idx = batch["index"].cpu()
        left[idx], right[idx] = vl.float().cpu(), vr.float().cpu()
    return {"left": left, "right": right}
