"""Network-ready views of crops shards for the learning commands."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from handtools.io.dataset import ShardDataset

GT_FIELDS = ("verts3d", "joints3d")


class CropViewDataset(torch.utils.data.Dataset):
    """Every (sample, view) of crops shards as one training item.

    Items (torch tensors):
        ``image`` (3, H, W) float32 in [0, 1]; ``K`` (3, 3) float32 pixels of the crop;
        with ``ground_truth``: ``verts`` (778, 3) and ``joints`` (21, 3) float32 metres
        in the camera frame of that view (``T_view`` applied); ``index`` (sample),
        ``view``.

    Args:
        paths: crops shards (all of the same image size).
        ground_truth: require and return ``verts3d``/``joints3d``.
        views: which views to use (default: all).
    """

    def __init__(self, paths: Sequence[os.PathLike], ground_truth: bool = True, views: Optional[Sequence[int]] = None):
        fields = ["images", "K"] + (list(GT_FIELDS) if ground_truth else [])
        self.base = ShardDataset(paths, fields)
        self.has_T = all(_has(p, "T_view") for p in self.base.paths)
        if self.has_T:
            self.base.fields.append("T_view")
        self.ground_truth = ground_truth
        self.views = list(range(self.base.num_views)) if views is None else list(views)
        if any(not 0 <= v < self.base.num_views for v in self.views):
            raise ValueError(f"views {self.views} out of range for {self.base.num_views}-view shards")
        if self.base.image_size is None:
            raise ValueError("crops shards must all have the same image size (run handtools crop with one --size)")
        self.image_size = self.base.image_size

    def __len__(self) -> int:
        return len(self.base) * len(self.views)

    def __getitem__(self, i: int) -> dict:
        s, k = divmod(int(i), len(self.views))
        v = self.views[k]
        item = self.base[s]
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(item["images"][v])).permute(2, 0, 1).float() / 255.0,
            "K": torch.from_numpy(item["K"][v].astype(np.float32)),
            "index": torch.tensor(s),
            "view": torch.tensor(v),
        }
        if self.ground_truth:
            T = item["T_view"][v].astype(np.float32) if self.has_T else np.eye(4, dtype=np.float32)
            R, t = T[:3, :3], T[:3, 3]
            out["verts"] = torch.from_numpy(item["verts3d"] @ R.T + t)
            out["joints"] = torch.from_numpy(item["joints3d"] @ R.T + t)
        return out


def _has(path, name: str) -> bool:
    from handtools.io.shards import ShardReader

    with ShardReader(path) as r:
        return name in r


class StereoCropDataset(torch.utils.data.Dataset):
    """Rectified stereo crops for self-supervised training: **no labels are read**.

    Items: ``image_l``, ``image_r`` (3, H, W) float32 in [0, 1]; ``K_l``, ``K_r`` (3, 3);
    ``baseline`` () metres; ``mask_l``, ``mask_r`` (H, W) float32 {0, 1} (from
    ``handtools mask``); ``index``. Only ``images``, ``K``, ``baseline`` and ``masks``
    are opened, so ground truth in the shards cannot leak into training.
    """

    FIELDS = ("images", "K", "baseline", "masks")

    def __init__(self, paths: Sequence[os.PathLike]):
        self.base = ShardDataset(paths, list(self.FIELDS))
        if self.base.num_views != 2:
            raise ValueError(f"self-supervised stereo needs 2-view shards, got {self.base.num_views} view(s)")
        if self.base.image_size is None:
            raise ValueError("stereo crops must all have the same image size (handtools crop --size)")
        self.image_size = self.base.image_size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[int(i)]
        img = torch.from_numpy(np.ascontiguousarray(item["images"])).permute(0, 3, 1, 2).float() / 255.0  # (2, 3, H, W)
        masks = torch.from_numpy(item["masks"] > 127).float()  # (2, H, W)
        K = torch.from_numpy(item["K"].astype(np.float32))
        return {
            "image_l": img[0], "image_r": img[1], "K_l": K[0], "K_r": K[1],
            "baseline": torch.tensor(float(item["baseline"]), dtype=torch.float32),
            "mask_l": masks[0], "mask_r": masks[1], "index": torch.tensor(int(i)),
        }
