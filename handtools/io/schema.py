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


#: How far K's fixed entries may stray from 0 (pixels) and 1 before K is refused.
_K_TOL = 1e-3


def _first_sample(bad) -> int:
    """Index along axis 0 of the first True in a boolean array."""
    import numpy as np

    return int(np.argwhere(bad)[0][0])


def value_problem(name: str, arr) -> str | None:
    """The first rule the values of a known float dataset break, or None.

    Rules: every value finite (no NaN, no ±inf); ``K`` a pinhole matrix
    ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with ``fx, fy > 0``; ``baseline > 0``.
    The message names the first bad sample (axis 0), e.g. ``"contains inf (sample 3)"``.
    """
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype.kind != "f" or arr.size == 0:
        return None
    finite = np.isfinite(arr)
    if not finite.all():
        i = _first_sample(~finite)
        v = arr[i][~finite[i]].flat[0] if arr.ndim > 1 else arr[i]
        what = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        return f"contains {what} (sample {i})"
    if name == "K" and arr.shape[-2:] == (3, 3):
        fx, fy = arr[..., 0, 0], arr[..., 1, 1]
        fixed = np.stack([arr[..., 1, 0], arr[..., 2, 0], arr[..., 2, 1], arr[..., 2, 2] - 1.0], -1)
        bad = (fx <= 0) | (fy <= 0) | (np.abs(fixed) > _K_TOL).any(-1)
        if bad.any():
            idx = tuple(int(j) for j in np.argwhere(bad)[0])
            where = f"sample {idx[0]}" + (f", view {idx[1]}" if len(idx) > 1 else "")
            k = arr[idx]
            return (f"not pinhole intrinsics [[fx,s,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0 "
                    f"({where}: fx={k[0, 0]:g}, fy={k[1, 1]:g}, K[1,0]={k[1, 0]:g}, "
                    f"bottom row {k[2, 0]:g} {k[2, 1]:g} {k[2, 2]:g})")
    if name == "baseline":
        bad = arr <= 0
        if bad.any():
            i = _first_sample(bad)
            return f"stereo baseline must be > 0 metres, got {float(arr[i]):g} (sample {i})"
    return None
