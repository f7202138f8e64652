"""Evaluation metrics for 3D hand pose and shape: :func:`compute_metrics`, every metric at once.

Pure numpy/scipy. Inputs are metres (3D) and pixels (2D); the dict returned by
:func:`compute_metrics` reports millimetres and pixels. The FreiHAND benchmark's
algorithm (official ``eval.py`` and ``utils/eval_util.py``, lmb-freiburg/freihand;
Zimmermann et al., ICCV 2019), checked against that code, is spread over one
module per concern:

* :mod:`~handtools.core.eval.alignment`: Procrustes alignment with scale, fitted
  per sample on the very points evaluated (joints on joints, vertices on their
  own fit on vertices), no reflection fix; root-relative points.
* :mod:`~handtools.core.eval.errors`: per-point distances, mean (MPJPE / MPVPE)
  and median the ``EvalUtil.get_measures`` way.
* :mod:`~handtools.core.eval.pck`: PCK curves (``<=``), normalised trapezoid AUC,
  and every threshold set (FreiHAND 0-50 mm, STB 20-50 mm, 2D 0-49 px).
* :mod:`~handtools.core.eval.fscore`: F-score at 5 mm and 15 mm (strict ``<``),
  mean over samples of the per-sample F, on raw and aligned vertices.
* :mod:`~handtools.core.eval.freihand`: the ``pred.json`` submission format.
* :mod:`~handtools.core.eval.registry`: the metric names, groups and curves
  (``METRICS``, ``METRIC_GROUPS``, ``CURVES``, ``resolve_metrics``).

Additions beyond FreiHAND, same machinery:

* **Root-relative** variants (prefix ``rr_``): joint 0 (wrist) of each set is
  subtracted from that set (prediction from prediction, ground truth from
  ground truth), for joints and vertices.
* **STB 3D PCK AUC over 20-50 mm** (``stb_pck_auc_20_50``, ``rr_stb_pck_auc_20_50``)
  with the thresholds of the STB literature's reference code. The STB literature
  evaluates root-relative joints, so compare ``rr_stb_pck_auc_20_50`` with
  published numbers; the absolute one suits binocular methods that predict
  absolute positions (Binocular self-supervised transfer, ICCV 2021, reports
  both kinds of method on STB).
* **2D keypoints** (pixels): error per keypoint, mean/median, PCK over 0-49 px
  (the S2HAND 2D evaluation) and its AUC. A third column in the ground truth is
  a confidence: keypoints with confidence 0 are not visible and are left out
  (the official ``EvalUtil`` visibility).
"""

from __future__ import annotations

import numpy as np

from handtools.core.eval._checks import as_points, same_shape
from handtools.core.eval.alignment import procrustes_align_batch
from handtools.core.eval.errors import error_stats, point_errors
from handtools.core.eval.fscore import F_SCORE_THRESHOLDS_M, f_scores
from handtools.core.eval.pck import PCK2D_THRESHOLDS_PX, PCK_THRESHOLDS_M, STB_PCK_THRESHOLDS_M, pck_curve_and_auc
from handtools.core.eval.registry import CURVES, METRIC_GROUPS, METRICS, resolve_metrics
from handtools.core.hand.joints import NUM_JOINTS

_MM = 1000.0

_MESH_KEYS = frozenset(METRIC_GROUPS["mesh"])
_KP2D_KEYS = frozenset(METRIC_GROUPS["kp2d"])


def _curve(thresholds: np.ndarray, pck: np.ndarray, unit: str, scale: float) -> dict:
    return {"thresholds": (thresholds * scale).tolist(), "pck": pck.tolist(), "unit": unit}


def _metric_keys(selected, have_mesh: bool, have_2d: bool) -> list[str]:
    """The metrics to report: ``selected`` resolved, or everything the given inputs allow."""
    if selected is None:
        return [k for k in METRICS
                if (have_mesh or k not in _MESH_KEYS) and (have_2d or k not in _KP2D_KEYS)]
    keys = resolve_metrics(selected)
    if not have_mesh and _MESH_KEYS.intersection(keys):
        raise ValueError(
            "mesh metrics selected (" + ", ".join(k for k in keys if k in _MESH_KEYS)
            + ") but pred_verts and gt_verts were not both given"
        )
    if not have_2d and _KP2D_KEYS.intersection(keys):
        raise ValueError("2D metrics selected but pred_kp2d and gt_kp2d were not both given")
    return keys


def _joint_metrics(prefix: str, pred: np.ndarray, gt: np.ndarray, want: set, out: dict, curves: dict) -> None:
    """MPJPE, its median, PCK AUC (and the STB AUC, except after alignment) of one variant into ``out``."""
    if not want.intersection({f"{prefix}mpjpe_mm", f"{prefix}mpjpe_median_mm",
                              f"{prefix}pck_auc", f"{prefix}stb_pck_auc_20_50"}):
        return
    err = point_errors(pred, gt)  # (N, 21) metres
    mean, median = error_stats(err)
    out[f"{prefix}mpjpe_mm"] = mean * _MM
    out[f"{prefix}mpjpe_median_mm"] = median * _MM
    curve, a = pck_curve_and_auc(err, PCK_THRESHOLDS_M)
    out[f"{prefix}pck_auc"] = a
    curves[f"{prefix}pck"] = _curve(PCK_THRESHOLDS_M, curve, "mm", _MM)
    if prefix != "pa_":
        curve, a = pck_curve_and_auc(err, STB_PCK_THRESHOLDS_M)
        out[f"{prefix}stb_pck_auc_20_50"] = a
        curves[f"{prefix}stb_pck_20_50"] = _curve(STB_PCK_THRESHOLDS_M, curve, "mm", _MM)


def _mesh_metrics(pred_verts, gt_verts, pj: np.ndarray, gj: np.ndarray, want: set, out: dict,
                  curves: dict) -> None:
    """MPVPE, PCV AUC and F-scores, raw, aligned (own fit on vertices) and root-relative, into ``out``."""
    n = pj.shape[0]
    pv = as_points(pred_verts, "pred_verts", 3)
    gv = as_points(gt_verts, "gt_verts", 3)
    same_shape(pv, gv, "pred_verts", "gt_verts")
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
            curve, a = pck_curve_and_auc(err, PCK_THRESHOLDS_M)
            out[f"{prefix}pcv_auc"] = a
            curves[f"{prefix}pcv"] = _curve(PCK_THRESHOLDS_M, curve, "mm", _MM)
        if want.intersection({f"{prefix}f5", f"{prefix}f15"}):
            f = f_scores(p, g, F_SCORE_THRESHOLDS_M).mean(0)  # mean over samples
            out[f"{prefix}f5"], out[f"{prefix}f15"] = float(f[0]), float(f[1])


def _kp2d_metrics(pred_kp2d, gt_kp2d, n: int, out: dict, curves: dict) -> None:
    """2D keypoint error, its median and the 2D PCK AUC (visible keypoints only) into ``out``."""
    p2 = as_points(pred_kp2d, "pred_kp2d", 3, last=(2, 3), count=NUM_JOINTS)
    g2 = as_points(gt_kp2d, "gt_kp2d", 3, last=(2, 3), count=NUM_JOINTS)
    if p2.shape[0] != n or g2.shape[0] != n:
        raise ValueError(
            f"pred_kp2d has {p2.shape[0]} and gt_kp2d {g2.shape[0]} samples but pred_joints has {n}"
        )
    visible = g2[..., 2] > 0 if g2.shape[-1] == 3 else None
    err = point_errors(p2[..., :2], g2[..., :2])  # (N, 21) px
    mean, median = error_stats(err, visible)
    out["kp2d_err_px"], out["kp2d_median_px"] = mean, median
    curve, a = pck_curve_and_auc(err, PCK2D_THRESHOLDS_PX, visible)
    out["pck2d_auc"] = a
    curves["pck2d"] = _curve(PCK2D_THRESHOLDS_PX, curve, "px", 1.0)


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
        "unit": "mm" | "px"}}`` for every AUC reported (names: the keys of
        ``CURVES``).

    Raises:
        ValueError: malformed or non-finite inputs, mismatched sample counts,
            an unknown metric name, or a selected metric whose inputs are missing.
    """
    pj = as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    gj = as_points(gt_joints, "gt_joints", 3, count=NUM_JOINTS)
    same_shape(pj, gj, "pred_joints", "gt_joints")
    n = pj.shape[0]

    have_mesh = pred_verts is not None and gt_verts is not None
    have_2d = pred_kp2d is not None and gt_kp2d is not None
    want = set(_metric_keys(selected, have_mesh, have_2d))
    out: dict = {}
    curves: dict = {}  # curve name (a key of CURVES) -> curve

    _joint_metrics("", pj, gj, want, out, curves)
    if want.intersection(k for k in METRICS if k.startswith("pa_") and k not in _MESH_KEYS):
        _joint_metrics("pa_", procrustes_align_batch(pj, gj), gj, want, out, curves)
    _joint_metrics("rr_", pj - pj[:, :1], gj - gj[:, :1], want, out, curves)  # (N, 21, 3) each
    if have_mesh and want & _MESH_KEYS:
        _mesh_metrics(pred_verts, gt_verts, pj, gj, want, out, curves)
    if have_2d and want & _KP2D_KEYS:
        _kp2d_metrics(pred_kp2d, gt_kp2d, n, out, curves)

    # Report only what was asked for (a family computes its siblings for free).
    result: dict = {"num_samples": int(n)}
    result.update({k: float(out[k]) for k in METRICS if k in want and k in out})
    result["curves"] = {name: c for name, c in curves.items() if CURVES[name] in want}
    return result
