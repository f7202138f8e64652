"""Input checks shared by the metric modules of :mod:`handtools.core.eval`.

Each returns a float64 (or bool) numpy array or raises ``ValueError`` naming the
argument and what was wrong with it (shape, emptiness, NaN/inf).
"""

from __future__ import annotations

import numpy as np


def as_points(x, name: str, ndim: int, last: int | tuple[int, ...] = 3,
              count: int | None = None) -> np.ndarray:
    """float64 array of ``ndim`` dims whose last dim is ``last``; finite; else ValueError.

    Args:
        x: array-like, (K, D) when ``ndim`` is 2, (N, K, D) when 3.
        name: argument name used in the messages.
        ndim: 2 or 3.
        last: allowed size(s) D of the last axis.
        count: required K, or None for any non-zero K.
    """
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not a numeric array ({e})") from None
    lasts = (last,) if isinstance(last, int) else last
    expected = f"({'N, ' if ndim == 3 else ''}{count or 'K'}, {'|'.join(map(str, lasts))})"
    if a.ndim != ndim or a.shape[-1] not in lasts:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(a.shape)}")
    if count is not None and a.shape[-2] != count:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(a.shape)}")
    if a.shape[-2] == 0 or (ndim == 3 and a.shape[0] == 0):
        raise ValueError(f"{name}: empty array of shape {tuple(a.shape)}")
    bad = ~np.isfinite(a)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: {int(bad.sum())} non-finite value(s) (NaN/inf), first at index {tuple(where.tolist())}"
        )
    return a


def same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    """ValueError unless ``a`` and ``b`` have one shape."""
    if a.shape != b.shape:
        raise ValueError(f"{na} has shape {tuple(a.shape)} but {nb} has shape {tuple(b.shape)}")


def as_thresholds(t, name: str = "thresholds") -> np.ndarray:
    """(T,) float64, T >= 2, finite and strictly increasing."""
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"{name}: expected a 1-D array of at least 2 values, got shape {tuple(t.shape)}")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: non-finite values")
    if not (np.diff(t) > 0).all():
        raise ValueError(f"{name}: must be strictly increasing")
    return t


def as_errors(errors) -> np.ndarray:
    """(N, K) float64 distances, non-empty, finite and non-negative."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(f"errors: expected a non-empty (N, K) array, got shape {tuple(e.shape)}")
    if not np.isfinite(e).all() or (e < 0).any():
        raise ValueError("errors: must be finite and non-negative")
    return e


def as_visible(visible, shape: tuple[int, ...]) -> np.ndarray:
    """Bool mask of ``shape``; None means every keypoint is visible."""
    if visible is None:
        return np.ones(shape, dtype=bool)
    v = np.asarray(visible).astype(bool)
    if v.shape != shape:
        raise ValueError(f"visible: expected shape {shape}, got {tuple(v.shape)}")
    return v
