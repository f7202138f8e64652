"""Loading checkpoints as predictors: one place that knows every checkpoint kind.

A checkpoint's ``meta["kind"]`` names the model: ``prior`` (``pretrain``,
monocular u, v, z) and, from ``selfsup-stereo``, ``stereo`` (binocular u, v per
view; absolute depth from disparity) — registered in :data:`PREDICTORS`.
A predictor takes numpy batches as read from crops shards and returns numpy
predictions named as in the shard schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from handtools.core.learning.trainer import load_checkpoint


class PriorPredictor:
    """Monocular hand prior: u, v (+ root-relative z) per vertex -> camera-space meshes."""

    needs_root_depth = True
    min_views = 1
    mode = "monocular"

    def __init__(self, ckpt: dict, hand, device: torch.device):
        from handtools.core.methods.prior.model import build_prior

        meta = ckpt["meta"]
        self.net = build_prior(meta["net"], J_regressor=hand.joint_regressor).to(device).eval()
        self.net.load_state_dict(ckpt["model"])
        self.J = hand.joint_regressor.to(device)
        self.image_size = tuple(meta["net"]["image_size"])
        self.hand_identity = meta.get("hand_model", "unknown")
        self.device = device

    def forward_view(self, images: np.ndarray, K: np.ndarray) -> dict:
        """images (B, H, W, 3) uint8, K (B, 3, 3) -> the network's output dict (tensors)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return self.net(x)

    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """batch: ``images`` (B, V, H, W, 3) uint8, ``K`` (B, V, 3, 3), optional ``T_view``,
        ``root_depth`` (B,) or ``joints3d`` (B, 21, 3) for the wrist depth.

        Returns ``pred/verts3d`` (B, 778, 3), ``pred/joints3d`` (B, 21, 3) metres in the
        camera frame of view 0, and ``pred/uv`` (B, 778, 2) crop pixels of ``view``.
        """
        from handtools.core.methods.prior.model import to_camera

        K = torch.from_numpy(batch["K"][:, view].astype(np.float32)).to(self.device)
        T = batch.get("T_view")
        T = np.eye(4, dtype=np.float32)[None].repeat(len(K), 0) if T is None else T[:, view].astype(np.float32)
        if "root_depth" in batch:
            root = torch.from_numpy(batch["root_depth"].astype(np.float32)).to(self.device)
        else:  # ground-truth wrist depth in this view (root-relative evaluation)
            wrist = batch["joints3d"][:, 0].astype(np.float32)  # (B, 3) view-0 frame
            wrist_v = np.einsum("bij,bj->bi", T[:, :3, :3], wrist) + T[:, :3, 3]
            root = torch.from_numpy(wrist_v[:, 2].copy()).to(self.device)
        out = self.forward_view(batch["images"][:, view], batch["K"][:, view])
        verts, joints = to_camera(out, K, root, self.J)  # view frame
        # back to view 0's frame: x0 = R^T (x_v - t)
        R, t = torch.from_numpy(T[:, :3, :3]).to(self.device), torch.from_numpy(T[:, :3, 3]).to(self.device)
        to0 = lambda x: (x - t[:, None]) @ R  # noqa: E731  (row vectors: (x - t) R == (R^T (x - t))^T)
        return {
            "pred/verts3d": to0(verts).cpu().numpy().astype(np.float32),
            "pred/joints3d": to0(joints).cpu().numpy().astype(np.float32),
            "pred/uv": out["uv"].cpu().numpy().astype(np.float32),
        }


#: checkpoint kind -> monocular predictor class (``stereo`` checkpoints: see :func:`load_predictor`).
PREDICTORS: dict[str, Callable] = {"prior": PriorPredictor}


def load_predictor(path: Path, hand, device: torch.device, mode: str = "auto"):
    """The predictor for a checkpoint file (any registered kind).

    ``mode``: ``auto`` (the model's natural input: one view for ``prior``, a stereo
    pair for ``stereo``), ``monocular`` or ``binocular`` (a prior run on both views
    with depth from disparity is the paper's "test-directly" binocular baseline).
    """
    if mode not in ("auto", "monocular", "binocular"):
        raise ValueError(f"unknown prediction mode {mode!r} (auto, monocular or binocular)")
    ckpt = load_checkpoint(path, map_location=device)
    kind = ckpt.get("meta", {}).get("kind")
    if kind == "stereo" or mode == "binocular":
        from handtools.core.methods.binocular.model import StereoPredictor

        if kind not in ("prior", "stereo"):
            raise ValueError(f"{path}: checkpoint kind {kind!r} cannot predict from stereo pairs")
        return StereoPredictor(ckpt, hand, device, mode=mode)
    if kind not in PREDICTORS:
        raise ValueError(f"{path}: checkpoint kind {kind!r} has no predictor (known: prior, stereo)")
    return PREDICTORS[kind](ckpt, hand, device)
