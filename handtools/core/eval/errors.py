"""Per-point errors and their summaries: MPJPE, MPVPE (raw and Procrustes-aligned), mean/median.

Pure numpy. FreiHAND ``utils/eval_util.py`` ``EvalUtil.get_measures``
(Zimmermann et al., ICCV 2019): for every sample and keypoint (joint or vertex)
the Euclidean distance between prediction and ground truth; the mean error is
the mean over keypoints of each keypoint's mean over its visible samples (with
every keypoint visible, the plain mean over all (sample, keypoint) distances:
MPJPE / MPVPE); the median reported beside it is the mean over keypoints of
per-keypoint medians.
"""

from __future__ import annotations

import numpy as np

from handtools.core.eval._checks import as_errors, as_points, as_visible, same_shape
from handtools.core.eval.alignment import procrustes_align_batch
from handtools.core.hand.joints import NUM_JOINTS


def point_errors(pred, gt) -> np.ndarray:
    """Euclidean distance per sample and point.

    Args:
        pred: (N, K, D) float, D = 2 or 3.
        gt: (N, K, D) float, same units.

    Returns:
        (N, K) float64 distances, units of the inputs.
    """
    pred = as_points(pred, "pred", 3, last=(2, 3))
    gt = as_points(gt, "gt", 3, last=(2, 3))
    same_shape(pred, gt, "pred", "gt")
    return np.sqrt(np.sum(np.square(gt - pred), axis=-1))


def mpjpe(pred_joints, gt_joints) -> np.ndarray:
    """Per-sample mean joint error (MPJPE) in the camera frame.

    Args:
        pred_joints: (N, 21, 3) float, metres. gt_joints: same.

    Returns:
        (N,) float64, metres (units of the inputs).
    """
    pred_joints = as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    return point_errors(pred_joints, gt_joints).mean(1)


def pa_mpjpe(pred_joints, gt_joints) -> np.ndarray:
    """Per-sample mean joint error after Procrustes alignment on the joints.

    Args:
        pred_joints: (N, 21, 3) float, metres. gt_joints: same.

    Returns:
        (N,) float64, metres.
    """
    pred_joints = as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    return point_errors(procrustes_align_batch(pred_joints, gt_joints), gt_joints).mean(1)


def mpvpe(pred_verts, gt_verts) -> np.ndarray:
    """Per-sample mean vertex error (MPVPE) in the camera frame.

    Args:
        pred_verts: (N, V, 3) float, metres (V = 778 for MANO). gt_verts: same.

    Returns:
        (N,) float64, metres.
    """
    return point_errors(pred_verts, gt_verts).mean(1)


def pa_mpvpe(pred_verts, gt_verts) -> np.ndarray:
    """Per-sample mean vertex error after Procrustes alignment fitted on the vertices.

    Args:
        pred_verts: (N, V, 3) float, metres. gt_verts: same.

    Returns:
        (N,) float64, metres.
    """
    return point_errors(procrustes_align_batch(pred_verts, gt_verts), gt_verts).mean(1)


def error_stats(errors, visible=None) -> tuple[float, float]:
    """Mean and median error the FreiHAND way (``EvalUtil.get_measures``).

    Per keypoint the mean (median) over its visible samples, then the mean over
    keypoints that have at least one visible sample.

    Args:
        errors: (N, K) float, distances (any unit).
        visible: optional (N, K) bool; default all visible.

    Returns:
        (mean, median) as floats, units of ``errors``.
    """
    e = as_errors(errors)
    v = as_visible(visible, e.shape)
    means, medians = [], []
    for k in range(e.shape[1]):
        col = e[v[:, k], k]
        if col.size:
            means.append(col.mean())
            medians.append(np.median(col))
    if not means:
        raise ValueError("error_stats: no visible keypoint")
    return float(np.mean(means)), float(np.mean(medians))
