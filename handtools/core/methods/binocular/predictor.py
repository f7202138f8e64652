"""Predictions of binocular checkpoints (kind ``stereo``), and of a prior run on both views
of a stereo pair (the paper's "test directly" baseline)."""

from __future__ import annotations

import numpy as np
import torch

from handtools.core.learning.nets.prior import regress_joints21
from handtools.core.learning.predictors import LixelPredictor, register_predictor
from handtools.core.methods.binocular.model import stereo_meshes


@register_predictor("stereo", "auto", "binocular", "monocular")
@register_predictor("prior", "binocular")
class StereoPredictor(LixelPredictor):
    """Predictions of a self-supervised (or prior) model on stereo or mono crops.

    ``mode="binocular"`` (``auto`` for ``stereo`` checkpoints): both views, depth from
    disparity (:func:`~handtools.core.methods.binocular.model.stereo_depths`: the mean
    disparity, and per vertex a bounded disparity offset, or the z head's offsets when the
    model has one): absolute meshes in view 0's camera frame.
    ``mode="monocular"``: one view with the z head, root-relative; placed at the
    ground-truth wrist depth (or ``root_depth``) like the prior.
    """

    def __init__(self, ckpt: dict, hand, device: torch.device, mode: str = "auto"):
        super().__init__(ckpt, hand, device, mode)
        mode = "binocular" if mode == "auto" else mode
        if mode == "monocular" and not ckpt["meta"]["net"]["with_z"]:
            raise ValueError("this model has no z head: monocular prediction needs selfsup-stereo --z-head")
        self.mode = mode
        self.min_views = 2 if mode == "binocular" else 1
        self.needs_root_depth = mode == "monocular"

    @torch.no_grad()
    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """Binocular: ``images`` (B, 2, H, W, 3) uint8, ``K`` (B, 2, 3, 3), ``baseline`` (B,)
        metres, optional ``T_view`` (view 0 must be the reference). Returns ``pred/verts3d``
        (B, 778, 3), ``pred/joints3d`` (B, 21, 3) metres, left camera, and ``pred/uv``,
        ``pred/uv_right`` (B, 778, 2) crop pixels. Monocular: as :class:`LixelPredictor`."""
        if self.mode == "monocular":
            return super().predict(batch, view)
        K = torch.from_numpy(batch["K"].astype(np.float32)).to(self.device)  # (B, 2, 3, 3)
        b = torch.from_numpy(batch["baseline"].astype(np.float32)).to(self.device)
        n = len(K)
        both = self.net(torch.cat([self._images(batch["images"][:, 0]), self._images(batch["images"][:, 1])]))
        # depth from the disparity (bounded around the mean); a z head gives the per-vertex offsets
        keys = ("uv", "z") if "z" in both else ("uv",)
        out_l = {k: both[k][:n] for k in keys}
        out_r = {k: both[k][n:] for k in keys}
        verts_l, _, _ = stereo_meshes(out_l, out_r, K[:, 0], K[:, 1], b, self.J)  # left camera = view 0
        T = batch.get("T_view")
        if T is not None and not np.allclose(T[:, 0], np.eye(4), atol=1e-6):
            raise ValueError("binocular prediction expects view 0 to be the reference camera (T_view[:, 0] = I)")
        return {
            "pred/verts3d": verts_l.cpu().numpy().astype(np.float32),
            "pred/joints3d": regress_joints21(verts_l, self.J).cpu().numpy().astype(np.float32),
            "pred/uv": out_l["uv"].cpu().numpy().astype(np.float32),
            "pred/uv_right": out_r["uv"].cpu().numpy().astype(np.float32),
        }
