"""Evaluation metrics for 3D hand pose and shape: the FreiHAND benchmark's algorithm.

Pure numpy/scipy. Inputs are metres (3D) and pixels (2D); the dict returned by
:func:`compute_metrics` reports millimetres and pixels.

Algorithm (FreiHAND official ``eval.py`` and ``utils/eval_util.py``,
lmb-freiburg/freihand; Zimmermann et al., ICCV 2019). Checked against that code:

1. **Errors.** For every sample and keypoint (joint or vertex), the Euclidean
   distance between prediction and ground truth, in metres.
2. **Procrustes alignment with scale** (``align_w_scale``), per sample, fitted on
   the very points being evaluated (joints on joints, vertices on their own fit
   on vertices): centre both sets on their means; divide each by its Frobenius
   norm plus 1e-8 (metres); ``R, s = scipy.linalg.orthogonal_procrustes(gt_n,
   pred_n)``; aligned prediction ``= pred_n @ R.T * s * |gt_c| + mean(gt)``.
   ``R`` may be a reflection: there is **no** reflection fix (det R = -1 is kept).
3. **Mean error** (``EvalUtil.get_measures``): per keypoint, the mean over
   samples; then the mean over keypoints. With every keypoint visible this is
   the plain mean over all (sample, keypoint) distances (MPJPE / MPVPE). The
   median reported beside it is the mean over keypoints of per-keypoint medians.
4. **PCK curve**: thresholds ``np.linspace(0, 0.05, 100)`` metres (0-50 mm, 100
   values, both ends included); per keypoint the fraction of samples with error
   ``<= threshold`` (non-strict), then the mean over keypoints.
5. **AUC**: per keypoint ``trapezoid(pck, thresholds) / trapezoid(ones,
   thresholds)`` (i.e. divided by the threshold range), then the mean over
   keypoints (equal to the AUC of the mean curve, the integral being linear).
6. **F-score** at 5 mm and 15 mm, per sample on the vertex sets: nearest
   neighbour distances both ways (the official code uses Open3D; here a scipy
   KD-tree, exact as well). ``precision`` = fraction of predicted vertices
   whose nearest ground-truth vertex is **strictly** closer than the threshold
   (``<``); ``recall`` = fraction of ground-truth vertices whose nearest
   prediction is strictly closer; ``F = 2 P R / (P + R)`` (0 when ``P + R = 0``).
   The official code names the two fractions the other way round; F is
   symmetric, so the value is the same. The reported F is the **mean over
   samples** of the per-sample F. Computed on raw and on Procrustes-aligned
   vertices (``pa_f5``, ``pa_f15``).
7. Submission file ``pred.json``: ``[xyz_list, verts_list]``, N lists of 21
   ``[x, y, z]`` and N lists of 778 ``[x, y, z]``, metres (see
   :func:`freihand_submission`).

Additions beyond FreiHAND, same machinery:

* **Root-relative** variants (prefix ``rr_``): joint 0 (wrist) of each set is
  subtracted from that set (prediction from prediction, ground truth from
  ground truth), for joints and vertices.
* **STB 3D PCK AUC over 20-50 mm** (``stb_pck_auc_20_50``, ``rr_stb_pck_auc_20_50``):
  the thresholds of the STB literature's reference code (Zimmermann & Brox,
  ICCV 2017, lmb-freiburg/hand3d ``eval_full.py``, copied by later STB papers):
  ``np.linspace(0, 0.05, 20)[8:]``, i.e. 12 values from 21.05 mm to 50 mm, the
  same PCK and normalised trapezoid AUC. The STB literature evaluates
  root-relative joints, so compare ``rr_stb_pck_auc_20_50`` with published
  numbers; the absolute one suits binocular methods that predict absolute
  positions (Binocular self-supervised transfer, ICCV 2021, reports both kinds
  of method on STB).
* **2D keypoints** (pixels): error per keypoint, mean/median as in 3., PCK over
  ``np.arange(0, 50, 1)`` px (0-49 px, step 1, the S2HAND 2D evaluation,
  "0~50 pixel", CVPR 2021 supplementary Table 5) with ``<=``, AUC as in 5.
  A third column in the ground truth is a confidence: keypoints with confidence
  0 are not visible and are left out (the official ``EvalUtil`` visibility).

Metric names follow ``[pa_|rr_]<metric>``: no prefix = raw (absolute camera
frame), ``pa_`` = Procrustes-aligned, ``rr_`` = root-relative.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

from handtools.core.hand.joints import NUM_JOINTS, NUM_VERTICES

# numpy >= 2 renamed trapz to trapezoid; pyproject allows numpy >= 1.24.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz

#: FreiHAND eval.py: ``get_measures(0.0, 0.05, 100)``; metres.
PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)
#: hand3d eval_full.py: ``get_measures(0.0, 0.050, 20)`` then ``[8:]``; metres (21.05..50 mm).
STB_PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 20)[8:]
#: S2HAND 2D evaluation: ``np.arange(0, 50, 1)``; pixels.
PCK2D_THRESHOLDS_PX = np.arange(0.0, 50.0, 1.0)
#: FreiHAND eval.py ``f_threshs``; metres.
F_SCORE_THRESHOLDS_M = (0.005, 0.015)
#: FreiHAND eval.py ``align_w_scale``: added to each Frobenius norm (metres).
PROCRUSTES_EPS = 1e-8

_MM = 1000.0

# ---------------------------------------------------------------------------
# Registry of metric names and groups (``handtools evaluate --metric NAME``).
# ---------------------------------------------------------------------------

#: Every scalar metric ``compute_metrics`` can report, with its meaning.
METRICS: dict[str, str] = {
    "mpjpe_mm": "mean joint error, camera frame (mm)",
    "mpjpe_median_mm": "median joint error, camera frame (mm)",
    "pa_mpjpe_mm": "mean joint error after Procrustes alignment on joints (mm)",
    "pa_mpjpe_median_mm": "median joint error after Procrustes alignment (mm)",
    "rr_mpjpe_mm": "mean joint error, root (wrist) relative (mm)",
    "rr_mpjpe_median_mm": "median joint error, root relative (mm)",
    "pck_auc": "AUC of the joint PCK curve, 0-50 mm, 100 thresholds",
    "pa_pck_auc": "AUC of the Procrustes-aligned joint PCK curve, 0-50 mm",
    "rr_pck_auc": "AUC of the root-relative joint PCK curve, 0-50 mm",
    "stb_pck_auc_20_50": "AUC of the joint PCK curve, 20-50 mm (STB convention)",
    "rr_stb_pck_auc_20_50": "AUC of the root-relative joint PCK curve, 20-50 mm (STB literature)",
    "mpvpe_mm": "mean vertex error, camera frame (mm)",
    "pa_mpvpe_mm": "mean vertex error after Procrustes alignment on vertices (mm)",
    "rr_mpvpe_mm": "mean vertex error, root (wrist joint) relative (mm)",
    "pcv_auc": "AUC of the vertex PCK curve (PCV), 0-50 mm",
    "pa_pcv_auc": "AUC of the Procrustes-aligned vertex PCK curve, 0-50 mm",
    "rr_pcv_auc": "AUC of the root-relative vertex PCK curve, 0-50 mm",
    "f5": "mesh F-score at 5 mm, camera frame",
    "f15": "mesh F-score at 15 mm, camera frame",
    "pa_f5": "mesh F-score at 5 mm after Procrustes alignment",
    "pa_f15": "mesh F-score at 15 mm after Procrustes alignment",
    "rr_f5": "mesh F-score at 5 mm, root relative",
    "rr_f15": "mesh F-score at 15 mm, root relative",
    "kp2d_err_px": "mean 2D keypoint error (px)",
    "kp2d_median_px": "median 2D keypoint error (px)",
    "pck2d_auc": "AUC of the 2D PCK curve, 0-49 px",
}

_FREIHAND = (
    "mpjpe_mm", "pck_auc", "pa_mpjpe_mm", "pa_pck_auc",
    "mpvpe_mm", "pcv_auc", "pa_mpvpe_mm", "pa_pcv_auc",
    "f5", "f15", "pa_f5", "pa_f15",
)

#: Named groups of metrics; ``--metric`` takes a group or a single metric name.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(METRICS),
    "freihand": _FREIHAND,
    "mpjpe": tuple(k for k in METRICS if "mpjpe" in k),
    "pck": ("pck_auc", "pa_pck_auc", "rr_pck_auc"),
    "stb": ("stb_pck_auc_20_50", "rr_stb_pck_auc_20_50"),
    "mpvpe": ("mpvpe_mm", "pa_mpvpe_mm", "rr_mpvpe_mm"),
    "pcv": ("pcv_auc", "pa_pcv_auc", "rr_pcv_auc"),
    "fscore": ("f5", "f15", "pa_f5", "pa_f15", "rr_f5", "rr_f15"),
    "kp2d": ("kp2d_err_px", "kp2d_median_px", "pck2d_auc"),
    "pa": tuple(k for k in METRICS if k.startswith("pa_")),
    "rr": tuple(k for k in METRICS if k.startswith("rr_")),
}
METRIC_GROUPS["joints"] = METRIC_GROUPS["mpjpe"] + METRIC_GROUPS["pck"] + METRIC_GROUPS["stb"]
METRIC_GROUPS["mesh"] = METRIC_GROUPS["mpvpe"] + METRIC_GROUPS["pcv"] + METRIC_GROUPS["fscore"]

_MESH_KEYS = frozenset(METRIC_GROUPS["mesh"])
_KP2D_KEYS = frozenset(METRIC_GROUPS["kp2d"])


def resolve_metrics(names: Iterable[str] | str | None) -> list[str]:
    """Expand metric and group names into metric names, in registry order.

    Args:
        names: metric names (keys of ``METRICS``), group names (keys of
            ``METRIC_GROUPS``), one name as a string, or None for all.

    Returns:
        The selected metric names, without duplicates, in ``METRICS`` order.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if names is None:
        return list(METRICS)
    if isinstance(names, str):
        names = [names]
    chosen: set[str] = set()
    for name in names:
        if name in METRIC_GROUPS:
            chosen.update(METRIC_GROUPS[name])
        elif name in METRICS:
            chosen.add(name)
        else:
            raise ValueError(
                f"unknown metric {name!r}; groups: {', '.join(METRIC_GROUPS)}; "
                f"metrics: {', '.join(METRICS)}"
            )
    return [k for k in METRICS if k in chosen]


# ---------------------------------------------------------------------------
# Validation helpers.
# ---------------------------------------------------------------------------


def _as_points(x, name: str, ndim: int, last: int | tuple[int, ...] = 3,
               count: int | None = None) -> np.ndarray:
    """float64 array of ``ndim`` dims whose last dim is ``last``; finite; else ValueError."""
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


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} has shape {tuple(a.shape)} but {nb} has shape {tuple(b.shape)}")


def _as_thresholds(t, name: str = "thresholds") -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"{name}: expected a 1-D array of at least 2 values, got shape {tuple(t.shape)}")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: non-finite values")
    if not (np.diff(t) > 0).all():
        raise ValueError(f"{name}: must be strictly increasing")
    return t


# ---------------------------------------------------------------------------
# Procrustes alignment.
# ---------------------------------------------------------------------------


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
    pred = _as_points(pred, "pred", 2)
    gt = _as_points(gt, "gt", 2)
    _same_shape(pred, gt, "pred", "gt")
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
    pred = _as_points(pred, "pred", 3)
    gt = _as_points(gt, "gt", 3)
    _same_shape(pred, gt, "pred", "gt")
    return np.stack([_procrustes_align(p, g) for p, g in zip(pred, gt)])


def root_relative(points, joints) -> np.ndarray:
    """Subtract each sample's root joint (joint 0, the wrist) from its points.

    Args:
        points: (N, K, 3) float, joints or vertices.
        joints: (N, 21, 3) float, the joints of the same samples (root = joint 0).

    Returns:
        (N, K, 3) float64.
    """
    points = _as_points(points, "points", 3)
    joints = _as_points(joints, "joints", 3, count=NUM_JOINTS)
    if points.shape[0] != joints.shape[0]:
        raise ValueError(f"points has {points.shape[0]} samples but joints has {joints.shape[0]}")
    return points - joints[:, :1]


# ---------------------------------------------------------------------------
# Errors, PCK and AUC.
# ---------------------------------------------------------------------------


def point_errors(pred, gt) -> np.ndarray:
    """Euclidean distance per sample and point.

    Args:
        pred: (N, K, D) float, D = 2 or 3.
        gt: (N, K, D) float, same units.

    Returns:
        (N, K) float64 distances, units of the inputs.
    """
    pred = _as_points(pred, "pred", 3, last=(2, 3))
    gt = _as_points(gt, "gt", 3, last=(2, 3))
    _same_shape(pred, gt, "pred", "gt")
    return np.sqrt(np.sum(np.square(gt - pred), axis=-1))


def mpjpe(pred_joints, gt_joints) -> np.ndarray:
    """Per-sample mean joint error (MPJPE) in the camera frame.

    Args:
        pred_joints: (N, 21, 3) float, metres. gt_joints: same.

    Returns:
        (N,) float64, metres (units of the inputs).
    """
    pred_joints = _as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    return point_errors(pred_joints, gt_joints).mean(1)


def pa_mpjpe(pred_joints, gt_joints) -> np.ndarray:
    """Per-sample mean joint error after Procrustes alignment on the joints.

    Args:
        pred_joints: (N, 21, 3) float, metres. gt_joints: same.

    Returns:
        (N,) float64, metres.
    """
    pred_joints = _as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
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


def _as_visible(visible, shape: tuple[int, ...]) -> np.ndarray:
    if visible is None:
        return np.ones(shape, dtype=bool)
    v = np.asarray(visible).astype(bool)
    if v.shape != shape:
        raise ValueError(f"visible: expected shape {shape}, got {tuple(v.shape)}")
    return v


def _as_errors(errors) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(f"errors: expected a non-empty (N, K) array, got shape {tuple(e.shape)}")
    if not np.isfinite(e).all() or (e < 0).any():
        raise ValueError("errors: must be finite and non-negative")
    return e


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
    e = _as_errors(errors)
    v = _as_visible(visible, e.shape)
    means, medians = [], []
    for k in range(e.shape[1]):
        col = e[v[:, k], k]
        if col.size:
            means.append(col.mean())
            medians.append(np.median(col))
    if not means:
        raise ValueError("error_stats: no visible keypoint")
    return float(np.mean(means)), float(np.mean(medians))


def pck_per_keypoint(errors, thresholds, visible=None) -> np.ndarray:
    """PCK curve of every keypoint: fraction of visible samples with error ``<= t``.

    Args:
        errors: (N, K) float distances. thresholds: (T,) increasing, same unit.
        visible: optional (N, K) bool.

    Returns:
        (K', T) float64 for the K' keypoints with at least one visible sample.
    """
    e = _as_errors(errors)
    t = _as_thresholds(thresholds)
    v = _as_visible(visible, e.shape)
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
    t = _as_thresholds(thresholds)
    p = np.asarray(pck, dtype=np.float64)
    if p.shape[-1:] != t.shape:
        raise ValueError(f"pck: last axis must have {t.size} values, got shape {tuple(p.shape)}")
    out = _trapezoid(p, t, axis=-1) / _trapezoid(np.ones_like(t), t)
    return float(out) if np.ndim(out) == 0 else out


def _pck_auc(errors, thresholds, visible=None) -> tuple[np.ndarray, float]:
    """(mean curve, AUC) with AUC as the mean of per-keypoint AUCs (EvalUtil order)."""
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
    return _pck_auc(errors, thresholds, visible)[1]


def stb_pck_auc(errors, visible=None) -> float:
    """3D PCK AUC over 20-50 mm as in the STB literature (``STB_PCK_THRESHOLDS_M``).

    Args:
        errors: (N, 21) float, metres. visible: optional (N, 21) bool.

    Returns:
        float in [0, 1].
    """
    return pck_auc(errors, STB_PCK_THRESHOLDS_M, visible)


# ---------------------------------------------------------------------------
# F-score.
# ---------------------------------------------------------------------------


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
    pred = _as_points(pred_verts, "pred_verts", 2)
    gt = _as_points(gt_verts, "gt_verts", 2)
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
    pred = _as_points(pred_verts, "pred_verts", 3)
    gt = _as_points(gt_verts, "gt_verts", 3)
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


# ---------------------------------------------------------------------------
# FreiHAND submission.
# ---------------------------------------------------------------------------


def freihand_submission(pred_joints, pred_verts) -> list:
    """The structure of the FreiHAND ``pred.json`` (official ``pred.py`` ``dump``).

    Args:
        pred_joints: (N, 21, 3) float, metres, camera frame, FreiHAND joint order.
        pred_verts: (N, 778, 3) float, metres, same frame.

    Returns:
        ``[xyz_list, verts_list]``: ``xyz_list`` has N entries of 21 ``[x, y, z]``
        lists, ``verts_list`` N entries of 778; plain Python floats, ready for
        ``json.dump``. The official evaluation set has N = 3960.
    """
    j = _as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    v = _as_points(pred_verts, "pred_verts", 3, count=NUM_VERTICES)
    if j.shape[0] != v.shape[0]:
        raise ValueError(f"pred_joints has {j.shape[0]} samples but pred_verts has {v.shape[0]}")
    return [j.tolist(), v.tolist()]


# ---------------------------------------------------------------------------
# Everything at once.
# ---------------------------------------------------------------------------


def _curve(thresholds: np.ndarray, pck: np.ndarray, unit: str, scale: float) -> dict:
    return {"thresholds": (thresholds * scale).tolist(), "pck": pck.tolist(), "unit": unit}


def compute_metrics(pred_joints, gt_joints, pred_verts=None, gt_verts=None,
                    pred_kp2d=None, gt_kp2d=None, selected=None) -> dict:
    """All metrics for a set of predictions, as one flat JSON-serialisable dict.

    Args:
        pred_joints: (N, 21, 3) float, metres, camera frame, FreiHAND order.
        gt_joints: (N, 21, 3) float, metres, same frame.
        pred_verts, gt_verts: optional (N, V, 3) float, metres (V = 778 for
            MANO), in vertex correspondence.
        pred_kp2d: optional (N, 21, 2) or (N, 21, 3) float, pixels (a third
            column is ignored).
        gt_kp2d: optional (N, 21, 2) or (N, 21, 3) float, pixels; a third
            column is a confidence, keypoints with confidence <= 0 are left out.
        selected: metric or group names (see ``METRICS``, ``METRIC_GROUPS``),
            or None for everything the given inputs allow: joint metrics
            always, mesh metrics when both vertex arrays are given, 2D metrics
            when both 2D arrays are given.

    Returns:
        dict with ``num_samples``, the selected scalars of ``METRICS`` (floats;
        ``*_mm`` in millimetres, ``*_px`` in pixels, AUCs and F-scores in
        [0, 1]) and ``curves``: ``{name: {"thresholds": [...], "pck": [...],
        "unit": "mm" | "px"}}`` for every AUC reported (names: ``pck``,
        ``pa_pck``, ``rr_pck``, ``stb_pck_20_50``, ``rr_stb_pck_20_50``,
        ``pcv``, ``pa_pcv``, ``rr_pcv``, ``pck2d``).

    Raises:
        ValueError: malformed or non-finite inputs, mismatched sample counts,
            an unknown metric name, or a selected metric whose inputs are missing.
    """
    pj = _as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    gj = _as_points(gt_joints, "gt_joints", 3, count=NUM_JOINTS)
    _same_shape(pj, gj, "pred_joints", "gt_joints")
    n = pj.shape[0]

    have_mesh = pred_verts is not None and gt_verts is not None
    have_2d = pred_kp2d is not None and gt_kp2d is not None
    if selected is None:
        keys = [k for k in METRICS
                if (have_mesh or k not in _MESH_KEYS) and (have_2d or k not in _KP2D_KEYS)]
    else:
        keys = resolve_metrics(selected)
        if not have_mesh and _MESH_KEYS.intersection(keys):
            raise ValueError(
                "mesh metrics selected (" + ", ".join(k for k in keys if k in _MESH_KEYS)
                + ") but pred_verts and gt_verts were not both given"
            )
        if not have_2d and _KP2D_KEYS.intersection(keys):
            raise ValueError("2D metrics selected but pred_kp2d and gt_kp2d were not both given")
    want = set(keys)
    out: dict = {"num_samples": int(n)}
    curves: dict = {}  # curve name -> (its AUC metric, curve)

    def joint_family(prefix: str, pred: np.ndarray, gt: np.ndarray) -> None:
        if not want.intersection({f"{prefix}mpjpe_mm", f"{prefix}mpjpe_median_mm",
                                  f"{prefix}pck_auc", f"{prefix}stb_pck_auc_20_50"}):
            return
        err = point_errors(pred, gt)  # (N, 21) metres
        mean, median = error_stats(err)
        out[f"{prefix}mpjpe_mm"] = mean * _MM
        out[f"{prefix}mpjpe_median_mm"] = median * _MM
        curve, a = _pck_auc(err, PCK_THRESHOLDS_M)
        out[f"{prefix}pck_auc"] = a
        curves[f"{prefix}pck"] = (f"{prefix}pck_auc", _curve(PCK_THRESHOLDS_M, curve, "mm", _MM))
        if prefix != "pa_":
            curve, a = _pck_auc(err, STB_PCK_THRESHOLDS_M)
            out[f"{prefix}stb_pck_auc_20_50"] = a
            curves[f"{prefix}stb_pck_20_50"] = (
                f"{prefix}stb_pck_auc_20_50", _curve(STB_PCK_THRESHOLDS_M, curve, "mm", _MM))

    joint_family("", pj, gj)
    if want.intersection(k for k in METRICS if k.startswith("pa_") and k not in _MESH_KEYS):
        joint_family("pa_", procrustes_align_batch(pj, gj), gj)
    rr_pj, rr_gj = pj - pj[:, :1], gj - gj[:, :1]  # (N, 21, 3)
    joint_family("rr_", rr_pj, rr_gj)

    if have_mesh and want & _MESH_KEYS:
        pv = _as_points(pred_verts, "pred_verts", 3)
        gv = _as_points(gt_verts, "gt_verts", 3)
        _same_shape(pv, gv, "pred_verts", "gt_verts")
        if pv.shape[0] != n:
            raise ValueError(f"pred_verts has {pv.shape[0]} samples but pred_joints has {n}")
        variants = {"": (pv, gv)}
        if any(k.startswith("pa_") for k in want & _MESH_KEYS):
            variants["pa_"] = (procrustes_align_batch(pv, gv), gv)  # own fit on vertices
        if any(k.startswith("rr_") for k in want & _MESH_KEYS):
            variants["rr_"] = (pv - pj[:, :1], gv - gj[:, :1])
        for prefix, (p, g) in variants.items():
            if want.intersection({f"{prefix}mpvpe_mm", f"{prefix}pcv_auc"}):
                err = point_errors(p, g)  # (N, V) metres
                out[f"{prefix}mpvpe_mm"] = error_stats(err)[0] * _MM
                curve, a = _pck_auc(err, PCK_THRESHOLDS_M)
                out[f"{prefix}pcv_auc"] = a
                curves[f"{prefix}pcv"] = (f"{prefix}pcv_auc", _curve(PCK_THRESHOLDS_M, curve, "mm", _MM))
            if want.intersection({f"{prefix}f5", f"{prefix}f15"}):
                f = f_scores(p, g, F_SCORE_THRESHOLDS_M).mean(0)  # mean over samples
                out[f"{prefix}f5"], out[f"{prefix}f15"] = float(f[0]), float(f[1])

    if have_2d and want & _KP2D_KEYS:
        p2 = _as_points(pred_kp2d, "pred_kp2d", 3, last=(2, 3), count=NUM_JOINTS)
        g2 = _as_points(gt_kp2d, "gt_kp2d", 3, last=(2, 3), count=NUM_JOINTS)
        if p2.shape[0] != n or g2.shape[0] != n:
            raise ValueError(
                f"pred_kp2d has {p2.shape[0]} and gt_kp2d {g2.shape[0]} samples but pred_joints has {n}"
            )
        visible = g2[..., 2] > 0 if g2.shape[-1] == 3 else None
        err = point_errors(p2[..., :2], g2[..., :2])  # (N, 21) px
        mean, median = error_stats(err, visible)
        out["kp2d_err_px"], out["kp2d_median_px"] = mean, median
        curve, a = _pck_auc(err, PCK2D_THRESHOLDS_PX, visible)
        out["pck2d_auc"] = a
        curves["pck2d"] = ("pck2d_auc", _curve(PCK2D_THRESHOLDS_PX, curve, "px", 1.0))

    # Report only what was asked for (a family computes its siblings for free).
    result = {"num_samples": out["num_samples"]}
    result.update({k: float(out[k]) for k in METRICS if k in want and k in out})
    result["curves"] = {name: c for name, (auc_key, c) in curves.items() if auc_key in want}
    return result
