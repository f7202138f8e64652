"""Alignment before measuring: Procrustes with scale (FreiHAND ``align_w_scale``) and root-relative.

Pure numpy/scipy; points in metres (any unit shared by prediction and ground truth).

Procrustes (FreiHAND ``utils/eval_util.py`` ``align_w_scale``; Zimmermann et al.,
ICCV 2019), per sample, fitted on the very points being evaluated: centre both
sets on their means; divide each by its Frobenius norm plus ``PROCRUSTES_EPS``;
``R, s = scipy.linalg.orthogonal_procrustes(gt_n, pred_n)``; aligned prediction
``= pred_n @ R.T * s * |gt_c| + mean(gt)``. ``R`` may be a reflection: there is
**no** reflection fix (det R = -1 is kept), as in the official code.

Why not ``scipy.spatial.procrustes``: it runs the same fit but returns both sets
standardised (centred, unit Frobenius norm), not the prediction in the ground
truth's frame and units; it divides by the bare norms where FreiHAND adds 1e-8;
and it raises on a collapsed set, where a degenerate prediction must get a
score. So the few lines of ``align_w_scale`` stay here, on scipy's
``orthogonal_procrustes``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes

from handtools.core.eval._checks import as_points, same_shape
from handtools.core.hand.joints import NUM_JOINTS

#: FreiHAND eval.py ``align_w_scale``: added to each Frobenius norm (metres).
PROCRUSTES_EPS = 1e-8


def procrustes_align(pred, gt) -> np.ndarray:
    """Align ``pred`` to ``gt`` by a similarity transform (FreiHAND ``align_w_scale``).

    Centre both on their means, normalise each by its Frobenius norm (+1e-8),
    rotate ``pred`` by ``scipy.linalg.orthogonal_procrustes``, rescale and move
    to ``gt``. No reflection fix: the orthogonal matrix may have det -1.

    Args:
        pred: (K, 3) float, predicted points (metres, or any unit shared with ``gt``).
        gt: (K, 3) float, ground-truth points in correspondence with ``pred``.

    Returns:
        (K, 3) float64, ``pred`` aligned to ``gt``, in ``gt``'s frame and units.
    """
    pred = as_points(pred, "pred", 2)
    gt = as_points(gt, "gt", 2)
    same_shape(pred, gt, "pred", "gt")
    return _procrustes_align(pred, gt)


def _procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    t_gt, t_pred = gt.mean(0), pred.mean(0)  # (3,)
    gt_c, pred_c = gt - t_gt, pred - t_pred  # (K, 3)
    s_gt = np.linalg.norm(gt_c) + PROCRUSTES_EPS
    s_pred = np.linalg.norm(pred_c) + PROCRUSTES_EPS
    gt_n, pred_n = gt_c / s_gt, pred_c / s_pred
    # R minimises |gt_n R - pred_n|_F; s = sum of singular values of gt_n^T pred_n.
    rot, s = orthogonal_procrustes(gt_n, pred_n)
    return (pred_n @ rot.T) * s * s_gt + t_gt  # (K, 3)


def procrustes_align_batch(pred, gt) -> np.ndarray:
    """:func:`procrustes_align` for every sample, each with its own fit.

    Args:
        pred: (N, K, 3) float, predictions.
        gt: (N, K, 3) float, ground truth, same units.

    Returns:
        (N, K, 3) float64, aligned predictions.
    """
    pred = as_points(pred, "pred", 3)
    gt = as_points(gt, "gt", 3)
    same_shape(pred, gt, "pred", "gt")
    return np.stack([_procrustes_align(p, g) for p, g in zip(pred, gt)])


def root_relative(points, joints) -> np.ndarray:
    """Subtract each sample's root joint (joint 0, the wrist) from its points.

    Args:
        points: (N, K, 3) float, joints or vertices.
        joints: (N, 21, 3) float, the joints of the same samples (root = joint 0).

    Returns:
        (N, K, 3) float64.
    """
    points = as_points(points, "points", 3)
    joints = as_points(joints, "joints", 3, count=NUM_JOINTS)
    if points.shape[0] != joints.shape[0]:
        raise ValueError(f"points has {points.shape[0]} samples but joints has {joints.shape[0]}")
    return points - joints[:, :1]
