"""PCK curves and their AUC; the threshold sets of FreiHAND, the STB literature and S2HAND 2D.

Pure numpy. FreiHAND ``utils/eval_util.py`` (``EvalUtil._get_pck``,
``get_measures``; Zimmermann et al., ICCV 2019):

* **PCK curve**: per keypoint, the fraction of its visible samples with error
  ``<= threshold`` (non-strict), then the mean over keypoints.
* **AUC**: per keypoint ``trapezoid(pck, thresholds) / trapezoid(ones,
  thresholds)`` (i.e. divided by the threshold range), then the mean over
  keypoints (equal to the AUC of the mean curve, the integral being linear).

Threshold sets (the one place they are defined):

* ``PCK_THRESHOLDS_M``: FreiHAND, ``np.linspace(0, 0.05, 100)`` metres (0-50 mm,
  100 values, both ends included).
* ``STB_PCK_THRESHOLDS_M``: the STB literature's reference code (Zimmermann &
  Brox, ICCV 2017, lmb-freiburg/hand3d ``eval_full.py``, copied by later STB
  papers): ``np.linspace(0, 0.05, 20)[8:]``, 12 values from 21.05 mm to 50 mm.
* ``PCK2D_THRESHOLDS_PX``: ``np.arange(0, 50, 1)`` pixels (0-49 px, step 1; the
  S2HAND 2D evaluation, "0~50 pixel", CVPR 2021 supplementary Table 5).
"""

from __future__ import annotations

import numpy as np

from handtools.core.eval._checks import as_errors, as_thresholds, as_visible

# numpy >= 2 renamed trapz to trapezoid; pyproject allows numpy >= 1.24.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz

#: FreiHAND eval.py: ``get_measures(0.0, 0.05, 100)``; metres.
PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)
#: hand3d eval_full.py: ``get_measures(0.0, 0.050, 20)`` then ``[8:]``; metres (21.05..50 mm).
STB_PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 20)[8:]
#: S2HAND 2D evaluation: ``np.arange(0, 50, 1)``; pixels.
PCK2D_THRESHOLDS_PX = np.arange(0.0, 50.0, 1.0)


def pck_per_keypoint(errors, thresholds, visible=None) -> np.ndarray:
    """PCK curve of every keypoint: fraction of visible samples with error ``<= t``.

    Args:
        errors: (N, K) float distances. thresholds: (T,) increasing, same unit.
        visible: optional (N, K) bool.

    Returns:
        (K', T) float64 for the K' keypoints with at least one visible sample.
    """
    e = as_errors(errors)
    t = as_thresholds(thresholds)
    v = as_visible(visible, e.shape)
    # Sorting + searchsorted instead of an (N, K, T) comparison: 778 vertices x
    # thousands of samples x 100 thresholds would not fit in memory.
    e = np.where(v, e, np.inf)
    e.sort(axis=0)
    n_vis = v.sum(0)  # (K,)
    keep = np.flatnonzero(n_vis)
    if keep.size == 0:
        raise ValueError("pck: no visible keypoint")
    # side="right": count of errors <= t (non-strict, as in EvalUtil._get_pck).
    hits = np.stack([np.searchsorted(e[:, k], t, side="right") for k in keep])  # (K', T)
    return hits / n_vis[keep, None]


def pck_curve(errors, thresholds=PCK_THRESHOLDS_M, visible=None) -> np.ndarray:
    """PCK curve: per keypoint fraction with error ``<= t``, mean over keypoints.

    Args:
        errors: (N, K) float distances (metres for the default thresholds).
        thresholds: (T,) increasing; default 0-0.05 m in 100 steps (FreiHAND).
        visible: optional (N, K) bool.

    Returns:
        (T,) float64 in [0, 1].
    """
    return pck_per_keypoint(errors, thresholds, visible).mean(0)


def auc(thresholds, pck) -> np.ndarray | float:
    """Area under a PCK curve normalised by the threshold range (trapezoid rule).

    Args:
        thresholds: (T,) increasing. pck: (..., T) values in [0, 1].

    Returns:
        float (or (...) array) in [0, 1]: ``trapz(pck, t) / (t[-1] - t[0])``.
    """
    t = as_thresholds(thresholds)
    p = np.asarray(pck, dtype=np.float64)
    if p.shape[-1:] != t.shape:
        raise ValueError(f"pck: last axis must have {t.size} values, got shape {tuple(p.shape)}")
    out = _trapezoid(p, t, axis=-1) / _trapezoid(np.ones_like(t), t)
    return float(out) if np.ndim(out) == 0 else out


def pck_curve_and_auc(errors, thresholds, visible=None) -> tuple[np.ndarray, float]:
    """(mean curve (T,), AUC) with the AUC as the mean of per-keypoint AUCs (``EvalUtil`` order).

    Args:
        errors: (N, K) float distances. thresholds: (T,) increasing, same unit.
        visible: optional (N, K) bool.
    """
    per_kp = pck_per_keypoint(errors, thresholds, visible)  # (K', T)
    return per_kp.mean(0), float(np.mean(auc(thresholds, per_kp)))


def pck_auc(errors, thresholds=PCK_THRESHOLDS_M, visible=None) -> float:
    """AUC of the PCK curve the FreiHAND way (mean over keypoints of per-keypoint AUC).

    Args:
        errors: (N, K) float distances. thresholds: (T,) increasing.
        visible: optional (N, K) bool.

    Returns:
        float in [0, 1].
    """
    return pck_curve_and_auc(errors, thresholds, visible)[1]


def stb_pck_auc(errors, visible=None) -> float:
    """3D PCK AUC over 20-50 mm as in the STB literature (``STB_PCK_THRESHOLDS_M``).

    Args:
        errors: (N, 21) float, metres. visible: optional (N, 21) bool.

    Returns:
        float in [0, 1].
    """
    return pck_auc(errors, STB_PCK_THRESHOLDS_M, visible)
