"""Mesh F-score (FreiHAND): precision and recall of nearest-neighbour matches within a distance.

Pure numpy/scipy. Per sample on the vertex sets (FreiHAND ``eval.py``
``calculate_fscore``; Zimmermann et al., ICCV 2019): nearest-neighbour distances
both ways (the official code uses Open3D; here a scipy KD-tree, exact as
well). ``precision`` = fraction of predicted vertices whose nearest ground-truth
vertex is **strictly** closer than the threshold (``<``); ``recall`` = fraction
of ground-truth vertices whose nearest prediction is strictly closer;
``F = 2 P R / (P + R)`` (0 when ``P + R = 0``). The official code names the two
fractions the other way round; F is symmetric, so the value is the same. The
benchmark's F is the **mean over samples** of the per-sample F.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from handtools.core.eval._checks import as_points

#: FreiHAND eval.py ``f_threshs``; metres (reported as ``f5`` and ``f15``).
F_SCORE_THRESHOLDS_M = (0.005, 0.015)


def _nn_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance of each pred point to the nearest gt point, of each gt point to the nearest pred)."""
    d_pred, _ = cKDTree(gt).query(pred, k=1)  # (P,)
    d_gt, _ = cKDTree(pred).query(gt, k=1)  # (Q,)
    return d_pred, d_gt


def _fscore_from(d_pred: np.ndarray, d_gt: np.ndarray, threshold: float) -> tuple[float, float, float]:
    precision = float(np.mean(d_pred < threshold))  # strict <, as the official code
    recall = float(np.mean(d_gt < threshold))
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f, precision, recall


def f_score(pred_verts, gt_verts, threshold: float) -> tuple[float, float, float]:
    """F-score of one predicted point set against a ground-truth one.

    Args:
        pred_verts: (P, 3) float, metres. gt_verts: (Q, 3) float, metres (P may differ from Q).
        threshold: distance in metres (0.005 and 0.015 on FreiHAND); a point
            counts only when its nearest neighbour is strictly closer.

    Returns:
        (f, precision, recall) floats in [0, 1]; precision over predicted points,
        recall over ground-truth points.
    """
    pred = as_points(pred_verts, "pred_verts", 2)
    gt = as_points(gt_verts, "gt_verts", 2)
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive distance, got {threshold!r}")
    return _fscore_from(*_nn_distances(pred, gt), float(threshold))


def f_scores(pred_verts, gt_verts, thresholds: Sequence[float] = F_SCORE_THRESHOLDS_M) -> np.ndarray:
    """Per-sample F-scores at several thresholds.

    Args:
        pred_verts: (N, P, 3) float, metres. gt_verts: (N, Q, 3) float, metres.
        thresholds: distances in metres; default (0.005, 0.015).

    Returns:
        (N, T) float64; the FreiHAND number is the mean over axis 0.
    """
    pred = as_points(pred_verts, "pred_verts", 3)
    gt = as_points(gt_verts, "gt_verts", 3)
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"pred_verts has {pred.shape[0]} samples but gt_verts has {gt.shape[0]}")
    ths = [float(t) for t in thresholds]
    if not ths or not all(np.isfinite(t) and t > 0 for t in ths):
        raise ValueError(f"thresholds must be positive distances, got {thresholds!r}")
    out = np.empty((pred.shape[0], len(ths)))
    for i, (p, g) in enumerate(zip(pred, gt)):
        d_pred, d_gt = _nn_distances(p, g)
        out[i] = [_fscore_from(d_pred, d_gt, t)[0] for t in ths]
    return out
