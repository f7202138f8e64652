"""Single-view crops with detected keypoints for ``selfsup-mono`` (S2HAND): **no labels are read**."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from handtools.core.methods.s2hand.mirror import mirror_crop
from handtools.io.dataset import ShardDataset
from handtools.io.shards import ShardReader


def keypoint_source(reader: ShardReader) -> str | None:
    """Where a shard's ``keypoints2d`` came from: ``"detect"`` when a ``detect`` step
    is in its history, ``"synth-kp-noise"`` for ``synth --kp-noise`` (a detector
    stand-in, marked as such), else None (projected ground truth or unknown)."""
    steps = reader.history
    if any(str(h.get("command", "")).split()[-1:] == ["detect"] for h in steps):
        return "detect"
    for h in steps:
        if str(h.get("command", "")).endswith("synth") and float((h.get("args") or {}).get("kp_noise") or 0) > 0:
            return "synth-kp-noise"
    return None


class MonoKeypointDataset(torch.utils.data.Dataset):
    """Single-view crops for self-supervised S2HAND training.

    Items: ``image`` (3, H, W) float32 in [0, 1]; ``K`` (3, 3) float32 crop pixels;
    ``keypoints`` (21, 2) float32 pixels and ``conf`` (21,) in [0, 1] from the detector;
    ``index``. Left hands (``hand/is_left``, written by ``detect``) are mirrored to right
    hands (image, K and keypoints; ``left`` says so) unless ``mirror_left`` is False.

    Only :attr:`FIELDS` are ever opened: ``images``, ``K``, ``keypoints2d`` and the
    detector's ``hand/is_left`` -- never ``joints3d``, ``verts3d``, ``mano/*``, ``depth``
    or ``masks``. ``keypoints2d`` must come from ``detect`` (shard history); keypoints of
    ``synth --kp-noise`` are accepted only with ``allow_synth_noise`` (a benchmark that
    uses them says so); projected ground truth is refused.
    """

    FIELDS = ("images", "K", "keypoints2d", "hand/is_left")
    FORBIDDEN = ("joints3d", "verts3d", "mano/pose", "mano/shape", "depth", "masks")

    def __init__(self, paths: Sequence[os.PathLike], allow_synth_noise: bool = False, mirror_left: bool = True):
        self.sources = []
        fields = list(self.FIELDS[:3])
        has_left = []
        for p in paths:
            with ShardReader(p, fields) as r:
                if r.num_views != 1:
                    raise ValueError(f"{p}: {r.num_views} views; selfsup-mono takes single-view crops "
                                     "(handtools synth --views 1, or import images)")
                src = keypoint_source(r)
                if src is None or (src == "synth-kp-noise" and not allow_synth_noise):
                    why = ("synth --kp-noise keypoints (pass --synth-keypoints to train on them)"
                           if src else "no detect step in its history (ground truth or unknown)")
                    raise ValueError(f"{p}: keypoints2d are not detections: {why}; run handtools detect | handtools crop")
                self.sources.append(src)
                has_left.append("hand/is_left" in r)
        self.has_left = mirror_left and bool(has_left) and all(has_left)
        self.base = ShardDataset(paths, fields + (["hand/is_left"] if self.has_left else []), require=fields)
        if self.base.image_size is None:
            raise ValueError("crops must all have the same image size (handtools crop --size)")
        self.image_size = self.base.image_size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[int(i)]
        img, K, kp = item["images"][0], item["K"][0].astype(np.float32), item["keypoints2d"][0].astype(np.float32)
        left = bool(self.has_left and item["hand/is_left"][0])
        if left:
            img, K, kp = mirror_crop(img, K, kp)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0,
            "K": torch.from_numpy(K),
            "keypoints": torch.from_numpy(np.ascontiguousarray(kp[:, :2])),
            "conf": torch.from_numpy(np.clip(kp[:, 2], 0.0, 1.0)),
            "left": torch.tensor(left),
            "index": torch.tensor(int(i)),
        }
