"""Network-ready views of crops shards for the learning commands."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
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


#: ``handtools mask --method skin``'s defaults, which on-the-fly masks use (tested equal to its output).
SKIN_MASK_DEFAULTS = dict(method="ycrcb", region="skeleton", min_confidence=0.0)
#: ``StereoCropDataset`` mask modes.
MASK_MODES = ("auto", "shard", "skin")
#: Dataset importers whose keypoints2d / masks are annotations (ground truth).
_ANNOTATED_IMPORTS = ("freihand", "stb", "ho3d")


@dataclass
class LabelProvenance:
    """Where a shard's keypoints2d, masks and crop windows came from (from its ``history``).

    keypoints: ``"detect"``, a ground-truth description, or None (none written).
    keypoints_gt: keypoints2d are ground truth (synth's projections, with or without
        ``--kp-noise``, or a dataset's annotations).
    masks: who wrote ``masks`` (None: none written); masks_gt: they are ground truth or
        were bounded by ground-truth keypoints; masks_from_mask: written by ``handtools mask``.
    bbox_gt: ``bbox`` is ground truth (synth's or a dataset's box, not ``detect``'s).
    crop_gt: the crop windows were placed with ground truth (``crop --center gt``, or
        ``--center bbox|root`` on ground-truth boxes or keypoints); crop: how, in words.
    """

    keypoints: Optional[str] = None
    keypoints_gt: bool = False
    masks: Optional[str] = None
    masks_gt: bool = False
    masks_from_mask: bool = False
    bbox_gt: bool = False
    crop_gt: bool = False
    crop: Optional[str] = None


def label_provenance(history: Sequence[dict]) -> LabelProvenance:
    """Replay a shard's ``history`` (list of ``{"command", "args"}`` steps) to tell which of
    its 2D labels a user could have made from images alone."""
    p = LabelProvenance()
    for step in history:
        cmd = str(step.get("command", "")).removeprefix("handtools ").strip()
        args = step.get("args") or {}
        if cmd == "synth":
            noise = float(args.get("kp_noise") or 0.0)
            p.keypoints = ("synth's ground-truth keypoints2d" if not noise else
                           f"synth's ground-truth keypoints2d with --kp-noise {noise:g} px")
            p.keypoints_gt = True
            p.masks, p.masks_gt, p.masks_from_mask = "synth's ground-truth masks", True, False
            p.bbox_gt = True
        elif cmd.startswith("import ") and cmd.split()[1] in _ANNOTATED_IMPORTS:
            p.keypoints, p.keypoints_gt = f"{cmd}'s annotated keypoints2d", True
            p.masks, p.masks_gt, p.masks_from_mask = f"{cmd}'s annotated masks", True, False
            p.bbox_gt = True
        elif cmd == "detect":
            p.keypoints, p.keypoints_gt, p.bbox_gt = "detect", False, False
        elif cmd == "crop":
            center = args.get("center", "bbox")
            gt = {"gt": True, "bbox": p.bbox_gt, "root": p.keypoints_gt}.get(center, False)
            if gt and not p.crop_gt:
                p.crop_gt = True
                p.crop = {"gt": "crop --center gt (projected ground-truth joints)",
                          "bbox": "crop --center bbox on ground-truth boxes (no detect before crop)",
                          "root": f"crop --center root on {p.keypoints}"}[center]
        elif cmd == "mask" and args.get("method", "skin") != "gt":
            method = args.get("method", "skin")
            bounded = f", bounded by {p.keypoints}" if p.keypoints else ", skin colour alone"
            p.masks = f"handtools mask --method {method}{bounded}"
            p.masks_gt, p.masks_from_mask = p.keypoints_gt, True
    return p


class StereoCropDataset(torch.utils.data.Dataset):
    """Rectified stereo crops for self-supervised training: **no ground truth is read**.

    Items: ``image_l``, ``image_r`` (3, H, W) float32 in [0, 1]; ``K_l``, ``K_r`` (3, 3);
    ``baseline`` () metres; ``mask_l``, ``mask_r`` (H, W) float32 {0, 1}; ``index``.
    Only ``images``, ``K``, ``baseline`` and -- depending on the shard's provenance
    (:func:`label_provenance`) -- ``masks`` or ``keypoints2d`` are opened.

    Masks (``masks``):
        ``"auto"``: the shard's masks if ``handtools mask`` made them, else computed on
        the fly exactly as ``handtools mask --method skin`` would (skin colour bounded by
        ``detect``'s keypoints; skin colour alone without keypoints).
        ``"shard"``: the shard's masks, whoever wrote them (synth's are ground truth).
        ``"skin"``: always computed on the fly.

    Ground truth: on-the-fly masks never read ground-truth keypoints2d (synth's or a
    dataset's) unless ``gt_keypoints`` is set; without it such shards are refused.
    :attr:`ground_truth` lists, one line each, every piece of ground truth the items
    depend on (crop windows on ground-truth joints, masks that are or were bounded by
    ground truth) so the command can name them in its log. :attr:`notes` says how the
    masks of each shard are obtained.
    """

    FIELDS = ("images", "K", "baseline")

    def __init__(self, paths: Sequence[os.PathLike], masks: str = "auto", gt_keypoints: bool = False):
        from handtools.io.shards import ShardReader

        if masks not in MASK_MODES:
            raise ValueError(f"masks must be one of {MASK_MODES}, got {masks!r}")
        self.paths = [Path(p) for p in paths]
        self.base = ShardDataset(self.paths, list(self.FIELDS))  # opens and checks every shard
        if self.base.num_views != 2:
            raise ValueError(f"self-supervised stereo needs 2-view shards, got {self.base.num_views} view(s)")
        if self.base.image_size is None:
            raise ValueError("stereo crops must all have the same image size (handtools crop --size)")
        self.ground_truth: list[str] = []
        self.notes: list[str] = []
        self._source: list[str] = []  # per shard: "shard", "skin+kp" or "skin"
        for path in self.paths:
            with ShardReader(path) as r:
                prov = label_provenance(r.history)
                has_masks, has_kp = "masks" in r, "keypoints2d" in r
            self._source.append(self._plan(path, prov, masks, gt_keypoints, has_masks, has_kp))
        if len(set(self._source)) > 1:
            raise ValueError("these shards would get their masks in different ways (" + "; ".join(self.notes)
                             + "): give shards made by the same commands")
        if "shard" in self._source:
            self.base.fields.append("masks")
        if "skin+kp" in self._source:
            self.base.fields.append("keypoints2d")
        self.image_size = self.base.image_size

    def _plan(self, path: Path, prov: LabelProvenance, mode: str, gt_keypoints: bool, has_masks: bool,
              has_kp: bool) -> str:
        name = path.name
        if prov.crop_gt:
            self._gt(f"{name}: crop windows from {prov.crop}")
        use_shard = mode == "shard" or (mode == "auto" and has_masks and prov.masks_from_mask)
        if use_shard:
            if not has_masks:
                raise ValueError(f"{path}: masks: missing dataset (run handtools mask, or masks='skin')")
            what = prov.masks or "masks of unknown origin"
            self.notes.append(f"{name}: the shard's masks ({what})")
            if prov.masks_gt:
                self._gt(f"{name}: masks = {what}")
            return "shard"
        if not has_kp:
            self.notes.append(f"{name}: masks computed on the fly as handtools mask --method skin would, from skin "
                              "colour alone (no keypoints2d: run handtools detect first for masks bounded by the hand)")
            return "skin"
        if prov.keypoints_gt:
            if not gt_keypoints:
                raise ValueError(
                    f"{path}: has no masks from handtools mask, and its keypoints2d are {prov.keypoints}: on-the-fly "
                    "masks would be bounded by ground truth. Run handtools detect before crop (then mask), or allow "
                    "ground-truth keypoints explicitly")
            self._gt(f"{name}: masks computed on the fly, bounded by {prov.keypoints}")
        self.notes.append(f"{name}: masks computed on the fly as handtools mask --method skin would "
                          f"(skin colour bounded by {'detect' if not prov.keypoints_gt else prov.keypoints}'s "
                          "keypoints)")
        return "skin+kp"

    def _gt(self, line: str) -> None:
        if line not in self.ground_truth:
            self.ground_truth.append(line)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[int(i)]
        src = self._source[int(item["shard"])]
        if src == "shard":
            masks = torch.from_numpy(item["masks"] > 127).float()  # (2, H, W)
        else:
            kp = item["keypoints2d"] if src == "skin+kp" else None
            masks = torch.from_numpy(skin_masks(item["images"], kp) > 127).float()
        img = torch.from_numpy(np.ascontiguousarray(item["images"])).permute(0, 3, 1, 2).float() / 255.0  # (2, 3, H, W)
        K = torch.from_numpy(item["K"].astype(np.float32))
        return {
            "image_l": img[0], "image_r": img[1], "K_l": K[0], "K_r": K[1],
            "baseline": torch.tensor(float(item["baseline"]), dtype=torch.float32),
            "mask_l": masks[0], "mask_r": masks[1], "index": torch.tensor(int(i)),
        }


def skin_masks(images: np.ndarray, keypoints: Optional[np.ndarray] = None) -> np.ndarray:
    """Masks of one sample's views as ``handtools mask --method skin`` (its defaults) makes them.

    images: (V, H, W, 3) uint8; keypoints: optional (V, 21, 3) u, v, confidence.
    Returns (V, H, W) uint8 0/255; a view whose keypoints all have confidence 0 (no hand
    detected) gets an empty mask, as in ``mask``.
    """
    from handtools.core.perception.skin import skin_mask

    d = SKIN_MASK_DEFAULTS
    out = np.zeros(images.shape[:3], np.uint8)
    for v in range(images.shape[0]):
        kp = None if keypoints is None else keypoints[v]
        if kp is not None and not ((kp[:, 2] > 0) & (kp[:, 2] >= d["min_confidence"])).any():
            continue
        out[v] = skin_mask(images[v], kp, method=d["method"], region=d["region"], min_confidence=d["min_confidence"])
    return out
