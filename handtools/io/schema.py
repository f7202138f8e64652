"""Shard schema version 1: the one definition of every known dataset.

See ``docs/design.md``. Shapes use symbols: ``N`` samples, ``V`` views, ``H``/``W``
image height/width; integers are fixed sizes. Unknown datasets are allowed and
carried through untouched.
"""

from __future__ import annotations

from handtools.core.hand.joints import NUM_VERTICES

SCHEMA_VERSION = 1
KINDS = ("frames", "crops", "predictions", "multiview")

#: name -> (dtype, shape spec)
DATASETS: dict[str, tuple[str, tuple]] = {
    "images": ("uint8", ("N", "V", "H", "W", 3)),
    "K": ("float32", ("N", "V", 3, 3)),
    "T_view": ("float32", ("N", "V", 4, 4)),
    "baseline": ("float32", ("N",)),
    "keypoints2d": ("float32", ("N", "V", 21, 3)),
    "bbox": ("float32", ("N", "V", 4)),
    "masks": ("uint8", ("N", "V", "H", "W")),
    "depth": ("float32", ("N", "V", "H", "W")),
    "joints3d": ("float32", ("N", 21, 3)),
    "verts3d": ("float32", ("N", NUM_VERTICES, 3)),
    "mano/pose": ("float32", ("N", 48)),
    "mano/shape": ("float32", ("N", 10)),
    "pred/joints3d": ("float32", ("N", 21, 3)),
    "pred/verts3d": ("float32", ("N", NUM_VERTICES, 3)),
    "pred/pose": ("float32", ("N", 48)),
    "pred/shape": ("float32", ("N", 10)),
    "pred/scale": ("float32", ("N", 1)),
    "pred/rot": ("float32", ("N", 3)),
    "pred/trans": ("float32", ("N", 3)),
    "pred/texture": ("float32", ("N", NUM_VERTICES, 3)),
    "pred/light": ("float32", ("N", 11)),
    "source": ("str", ("N",)),
}

#: Datasets stored one sample per chunk (large, read per sample).
PER_SAMPLE_CHUNKED = ("images", "masks", "depth")

#: Float datasets too large to NaN-check on open; they are checked per read.
PIXEL_DATASETS = ("images", "masks", "depth")


def expected_shape(name: str, num_samples: int, num_views: int, hw: tuple[int, int] | None):
    """The concrete shape of a known dataset, with ``None`` for unknown H/W."""
    _, spec = DATASETS[name]
    sym = {"N": num_samples, "V": num_views}
    if hw is not None:
        sym["H"], sym["W"] = hw
    return tuple(sym.get(s) if isinstance(s, str) else s for s in spec)
