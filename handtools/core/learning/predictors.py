"""Predictors: one base class, and a registry keyed by checkpoint kind and prediction mode.

A checkpoint's ``meta["kind"]`` names the model that wrote it; each method package
registers the predictors it provides with :func:`register_predictor`, e.g. the prior
method registers ``("prior", "monocular")`` and the binocular method registers
``("stereo", "binocular")`` and ``("prior", "binocular")`` (a prior run on both views,
the paper's "test directly" baseline). :func:`handtools.core.methods.load_predictor`
imports every method package and asks this registry.

A predictor takes numpy batches as read from crops shards and returns numpy
predictions named as in the shard schema (``pred/verts3d`` ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from handtools.core.learning.checkpoints import checkpoint_kind, load_checkpoint
from handtools.core.learning.nets.prior import build_prior, to_camera

#: Prediction modes: ``auto`` is the model's natural input (registered per kind).
MODES = ("auto", "monocular", "binocular")

#: (checkpoint kind, mode) -> predictor class.
PREDICTORS: dict[tuple[str, str], type["Predictor"]] = {}


def register_predictor(kind: str, *modes: str) -> Callable[[type], type]:
    """Class decorator: ``cls`` predicts checkpoints of ``kind`` in ``modes``."""
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown prediction mode {m!r} (one of {MODES})")

    def deco(cls: type) -> type:
        for m in modes:
            PREDICTORS[(kind, m)] = cls
        return cls

    return deco


class Predictor(ABC):
    """Base of every predictor.

    Attributes set by subclasses: ``mode`` (``monocular`` or ``binocular``),
    ``min_views`` (views a sample needs), ``needs_root_depth`` (monocular models place
    their root-relative mesh at a given wrist depth), ``image_size`` (H, W) and
    ``hand_identity`` (the hand model the checkpoint was trained with).
    """

    mode: ClassVar[str] = "monocular"
    min_views: int = 1
    needs_root_depth: bool = False

    def __init__(self, ckpt: dict, hand, device: torch.device, mode: str = "auto"):
        self.device = device
        self.hand_identity = ckpt["meta"].get("hand_model", "unknown")

    @abstractmethod
    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """batch: ``images`` (B, V, H, W, 3) uint8, ``K`` (B, V, 3, 3) and what the model
        needs (``T_view``, ``baseline``, ``root_depth`` ...). Returns ``pred/*`` arrays."""

    def _images(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] on the predictor's device."""
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0


class LixelPredictor(Predictor):
    """A :class:`~handtools.core.learning.nets.prior.HandPriorNet` checkpoint on one view:
    u, v (+ root-relative z) per vertex, placed at the wrist depth -> camera-space meshes."""

    needs_root_depth = True

    def __init__(self, ckpt: dict, hand, device: torch.device, mode: str = "auto"):
        super().__init__(ckpt, hand, device, mode)
        meta = ckpt["meta"]
        self.J = hand.joint_regressor.to(device)
        self.net = build_prior(meta["net"], J_regressor=self.J).to(device).eval()
        self.net.load_state_dict(ckpt["model"])
        self.image_size = tuple(meta["net"]["image_size"])

    @torch.no_grad()
    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """batch: ``images`` (B, V, H, W, 3) uint8, ``K`` (B, V, 3, 3), optional ``T_view``,
        ``root_depth`` (B,) or ``joints3d`` (B, 21, 3) for the wrist depth.

        Returns ``pred/verts3d`` (B, 778, 3), ``pred/joints3d`` (B, 21, 3) metres in the
        camera frame of view 0, and ``pred/uv`` (B, 778, 2) crop pixels of ``view``.
        """
        K = torch.from_numpy(batch["K"][:, view].astype(np.float32)).to(self.device)
        T = batch.get("T_view")
        T = np.eye(4, dtype=np.float32)[None].repeat(len(K), 0) if T is None else T[:, view].astype(np.float32)
        if "root_depth" in batch:
            root = torch.from_numpy(batch["root_depth"].astype(np.float32)).to(self.device)
        else:  # ground-truth wrist depth in this view (root-relative evaluation)
            wrist = batch["joints3d"][:, 0].astype(np.float32)  # (B, 3) view-0 frame
            wrist_v = np.einsum("bij,bj->bi", T[:, :3, :3], wrist) + T[:, :3, 3]
            root = torch.from_numpy(wrist_v[:, 2].copy()).to(self.device)
        out = self.net(self._images(batch["images"][:, view]))
        verts, joints = to_camera(out, K, root, self.J)  # view frame
        # back to view 0's frame: x0 = R^T (x_v - t)
        R, t = torch.from_numpy(T[:, :3, :3]).to(self.device), torch.from_numpy(T[:, :3, 3]).to(self.device)
        to0 = lambda x: (x - t[:, None]) @ R  # noqa: E731  (row vectors: (x - t) R == (R^T (x - t))^T)
        return {
            "pred/verts3d": to0(verts).cpu().numpy().astype(np.float32),
            "pred/joints3d": to0(joints).cpu().numpy().astype(np.float32),
            "pred/uv": out["uv"].cpu().numpy().astype(np.float32),
        }


def predictor_for(ckpt: dict, hand, device: torch.device, mode: str = "auto", source: str = "checkpoint") -> Predictor:
    """The registered predictor for a loaded checkpoint in ``mode``; one-line errors otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown prediction mode {mode!r} ({', '.join(MODES)})")
    kind = checkpoint_kind(ckpt)
    cls = PREDICTORS.get((kind, mode))
    if cls is None:
        known = sorted({k for k, _ in PREDICTORS})
        if kind not in known:
            raise ValueError(f"{source}: checkpoint kind {kind!r} has no predictor (known: {', '.join(known)})")
        modes = sorted(m for k, m in PREDICTORS if k == kind)
        raise ValueError(f"{source}: checkpoint kind {kind!r} cannot predict in {mode} mode (modes: {', '.join(modes)})")
    try:
        return cls(ckpt, hand, device, mode=mode)
    except KeyError as exc:  # a checkpoint whose meta lacks what its kind needs
        raise ValueError(f"{source}: damaged checkpoint (no {exc.args[0]!r} entry)") from None


def load_predictor_from(path: Path, hand, device: torch.device, mode: str = "auto") -> Predictor:
    """Load a checkpoint file and return its predictor (the registry must be populated:
    use :func:`handtools.core.methods.load_predictor`)."""
    ckpt = load_checkpoint(path, map_location=device, meta_keys=("kind", "net"))
    return predictor_for(ckpt, hand, device, mode, source=str(path))
