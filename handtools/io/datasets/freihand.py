"""FreiHAND (Zimmermann et al., ICCV 2019): mono RGB with MANO fits.

Layout (the official ``FreiHAND_pub_v2`` archives; ``lmb-freiburg/freihand``
``utils/fh_utils.py``)::

    <root>/training_K.json       32560 x 3x3 intrinsics (pixels, OpenCV convention)
    <root>/training_xyz.json     32560 x 21x3 joints, metres, camera frame
    <root>/training_verts.json   32560 x 778x3 MANO vertices, metres, camera frame
    <root>/training_mano.json    32560 x 1x61: pose 48 | shape 10 | uv_root 2 | scale 1
    <root>/training_scale.json   32560 floats (not imported)
    <root>/training/rgb/%08d.jpg 4 x 32560 images (224x224): version v of sample i is
                                 file v * 32560 + i, versions gs, hom, sample, auto
    <root>/training/mask/%08d.jpg 32560 hand masks (one per sample, all versions)
    <root>/evaluation_{K,xyz,verts,mano,scale}.json and evaluation/rgb/%08d.jpg
                                 (3960 samples, one version; labels released later:
                                 xyz/verts/mano are optional; masks from
                                 evaluation/segmap/%08d.png when present)

Conversions: none for units (metres), joint order (FreiHAND's is ours) or frame
(OpenCV camera); K gets the half-pixel shift of :func:`common.K_from_opencv`. The
61 MANO numbers are split into ``mano/pose`` (48, axis-angle relative to MANO's mean
pose: FreiHAND's fits use ``flat_hand_mean=False``) and ``mano/shape`` (10); the
last three are FreiHAND's 2D root and scale for its orthographic helper, not a
translation, and are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from handtools.core.hand.joints import NUM_VERTICES
from handtools.errors import InputError
from handtools.io.datasets.common import (
    OnBad,
    Record,
    K_from_opencv,
    bad,
    finite,
    keypoints_and_bbox,
    load_all,
    read_mask,
    read_views,
)

SPLITS = ("training", "evaluation")
VERSIONS = ("gs", "hom", "sample", "auto")
IMAGE_SIZE = (224, 224)
#: MANO pose convention of the fits (root attribute ``mano_flat_hand_mean``).
FLAT_HAND_MEAN = False


def _load_json(path: Path, required: bool) -> Optional[list]:
    if not path.is_file():
        if required:
            raise InputError(f"{path}: no such file (is the FreiHAND root right?)")
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list with one entry per sample")
    return data


# Over 80 lines with its docstring; the body (about 65 lines) walks the FreiHAND layout once, checking each
# file as it goes, so that a bad file is reported with its index (splitting would re-open the JSON files).
def freihand_records(
    root: Path,
    split: str = "training",
    *,
    versions: Sequence[str] = VERSIONS,
    on_bad: OnBad = None,
) -> list[Record]:
    """FreiHAND samples of ``split`` (``training`` or ``evaluation``), labels parsed.

    Args:
        root: the folder holding ``training_K.json`` and ``training/``.
        versions: training image versions to import (each is a separate sample with
            the same labels); evaluation has only ``gs``.
        on_bad: skip samples with malformed labels or images instead of failing.

    Returns:
        Records whose samples hold ``images`` (1, 224, 224, 3), ``K`` (1, 3, 3),
        ``source`` and, when the split has them, ``joints3d`` (21, 3) m, ``verts3d``
        (778, 3) m, ``mano/pose`` (48,), ``mano/shape`` (10,), ``keypoints2d``
        (1, 21, 3), ``bbox`` (1, 4), ``masks`` (1, 224, 224).
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    versions = list(versions)
    for v in versions:
        if v not in VERSIONS:
            raise ValueError(f"unknown FreiHAND version {v!r} (choose from {', '.join(VERSIONS)})")
    if split == "evaluation" and versions != ["gs"]:
        versions = ["gs"]  # the evaluation split has one version
    k_path = root / f"{split}_K.json"
    Ks = _load_json(k_path, True)
    n = len(Ks)
    labels: dict[str, tuple[Path, list]] = {}
    for key, required in (("xyz", split == "training"), ("verts", False), ("mano", False)):
        path = root / f"{split}_{key}.json"
        data = _load_json(path, required)
        if data is None:
            continue
        if len(data) != n:
            raise InputError(f"{path}: {len(data)} entries, {k_path.name} has {n}")
        labels[key] = (path, data)
    rgb = root / split / "rgb"
    if not rgb.is_dir():
        raise InputError(f"{rgb}: no such folder")
    mask_dir, mask_ext = (root / "training" / "mask", "jpg") if split == "training" else (
        root / "evaluation" / "segmap", "png")
    has_masks = mask_dir.is_dir()

    records: list[Record] = []
    parsed: list[Optional[dict]] = []
    for i in range(n):
        try:
            lab = {"K": K_from_opencv(finite(Ks[i], f"{k_path} [{i}]", "K", (3, 3)))[None]}
            if "xyz" in labels:
                p, d = labels["xyz"]
                lab["joints3d"] = finite(d[i], f"{p} [{i}]", "joints", (21, 3)).astype(np.float32)
            if "verts" in labels:
                p, d = labels["verts"]
                lab["verts3d"] = finite(d[i], f"{p} [{i}]", "vertices", (NUM_VERTICES, 3)).astype(np.float32)
            if "mano" in labels:
                p, d = labels["mano"]
                try:
                    theta = np.asarray(d[i], dtype=np.float64).reshape(-1)
                except (TypeError, ValueError):
                    raise InputError(f"{p} [{i}]: MANO parameters are not a list of numbers") from None
                theta = finite(theta, f"{p} [{i}]", "MANO parameters", (61,))
                lab["mano/pose"] = theta[:48].astype(np.float32)
                lab["mano/shape"] = theta[48:58].astype(np.float32)
            if "joints3d" in lab:
                kp, box = keypoints_and_bbox(lab["joints3d"], lab["K"], np.eye(4)[None], IMAGE_SIZE)
                lab["keypoints2d"], lab["bbox"] = kp, box
            parsed.append(lab)
        except (InputError, ValueError) as exc:
            bad(on_bad, str(exc))
            parsed.append(None)

    for v in versions:
        offset = VERSIONS.index(v) * n
        for i, lab in enumerate(parsed):
            if lab is None:
                continue
            img = rgb / f"{offset + i:08d}.jpg"
            mask = mask_dir / f"{i:08d}.{mask_ext}" if has_masks else None
            records.append(_record(img, mask, lab, f"freihand/{split}/{v}/{i:08d}"))
    return records


def _record(img: Path, mask: Optional[Path], lab: dict, name: str) -> Record:
    def load() -> dict:
        images = read_views([img], IMAGE_SIZE)
        sample = dict(lab, images=images, source=f"{img} ({name})")
        if mask is not None:
            if not mask.is_file():
                raise InputError(f"{mask}: no such file (mask of {img.name})")
            sample["masks"] = read_mask(mask, IMAGE_SIZE, threshold=128 if mask.suffix == ".jpg" else 1)[None]
        return sample

    return Record(name, load, (img,) if mask is None else (img, mask))


def freihand_samples(root: Path, split: str = "training", **kw) -> Iterator[dict]:
    """Load every FreiHAND sample of ``split`` in order (see :func:`freihand_records`)."""
    on_bad = kw.get("on_bad")
    return load_all(freihand_records(root, split, **kw), on_bad)
