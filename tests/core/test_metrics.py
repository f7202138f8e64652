"""Tests for handtools.core.eval.metrics: closed-form cases and independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from handtools.core.eval import metrics as M


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _hand_like(rng, n: int, k: int) -> np.ndarray:
    """(n, k, 3) points about 0.5 m in front of the camera, spread ~4 cm."""
    return rng.normal(size=(n, k, 3)) * 0.04 + np.array([0.0, 0.0, 0.5])


# --------------------------------------------------------------------------- Procrustes


def test_similarity_copy_pa_zero_raw_closed_form(rng):
    gt = _hand_like(rng, 3, 21)
    r = _rot("z", 180.0)  # (x, y, z) -> (-x, -y, z)
    c = 0.1
    pred = 2.0 * gt @ r.T + np.array([0.0, 0.0, c])  # scale 2, rotate, translate
    # Closed form: pred - gt = (-3x, -3y, z + c).
    x, y, z = gt[..., 0], gt[..., 1], gt[..., 2]
    expected = np.sqrt(9 * x**2 + 9 * y**2 + (z + c) ** 2).mean(1)
    np.testing.assert_allclose(M.mpjpe(pred, gt), expected, rtol=1e-12)
    # Not exactly 0: FreiHAND adds 1e-8 m to each Frobenius norm (a few nm here).
    np.testing.assert_allclose(M.pa_mpjpe(pred, gt), 0.0, atol=1e-8)
    np.testing.assert_allclose(M.procrustes_align_batch(pred, gt), gt, atol=1e-8)


def test_general_similarity_is_undone(rng):
    gt = _hand_like(rng, 1, 778)[0]
    pred = 0.7 * gt @ (_rot("x", 30) @ _rot("y", -50) @ _rot("z", 110)).T + [0.2, -0.1, 0.3]
    np.testing.assert_allclose(M.procrustes_align(pred, gt), gt, atol=1e-8)


def test_reflection_is_not_fixed(rng):
    gt = _hand_like(rng, 4, 21)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a mirror image can never be reached by a rotation
    # FreiHAND keeps the reflection orthogonal_procrustes returns: the mirror aligns perfectly.
    np.testing.assert_allclose(M.pa_mpjpe(mirrored, gt), 0.0, atol=1e-8)
    # Whereas the best proper rotation (reflection fixed) leaves a clear error.
    for p, g in zip(mirrored, gt):
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(pc.T @ gc)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1, 1, d]) @ vt
        scale = (s * [1, 1, d]).sum() / (pc**2).sum()
        fixed = scale * pc @ r + g.mean(0)
        assert np.linalg.norm(fixed - g, axis=1).mean() > 1e-3


def test_procrustes_matches_independent_svd(rng):
    gt = _hand_like(rng, 5, 21)
    pred = gt + rng.normal(size=gt.shape) * 0.01
    pred[0] = pred[0] * [1, -1, 1]  # one sample that needs a reflection
    for p, g in zip(pred, gt):
        # Umeyama without the det correction: min |s pc R - gc|.
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(pc.T @ gc)
        r = u @ vt
        scale = s.sum() / (pc**2).sum()
        expected = scale * pc @ r + g.mean(0)
        np.testing.assert_allclose(M.procrustes_align(p, g), expected, atol=1e-7)


# --------------------------------------------------------------------------- PCK / AUC


def test_pck_known_distances_inclusive():
    errors = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, 4.0], [3.0, 1.0]])  # (N=4, K=2)
    t = np.array([0.0, 1.0, 2.0, 3.0])
    # keypoint 0: errors 0,2,1,3 -> <=t fractions 1/4, 2/4, 3/4, 4/4
    # keypoint 1: errors 1,3,4,1 -> 0, 2/4, 2/4, 3/4
    per_kp = M.pck_per_keypoint(errors, t)
    np.testing.assert_allclose(per_kp, [[0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 0.5, 0.75]])
    np.testing.assert_allclose(M.pck_curve(errors, t), [0.125, 0.5, 0.625, 0.875])


def test_pck_matches_brute_force_with_visibility(rng):
    errors = rng.uniform(0, 0.06, size=(50, 21))
    visible = rng.uniform(size=errors.shape) > 0.3
    visible[:, 3] = False  # a keypoint never visible is left out, as in EvalUtil
    t = M.PCK_THRESHOLDS_M
    hits = (errors[None] <= t[:, None, None]) & visible[None]  # (T, N, K)
    kps = visible.any(0)
    expected = (hits.sum(1)[:, kps] / visible.sum(0)[kps]).mean(1)
    np.testing.assert_allclose(M.pck_curve(errors, t, visible), expected, rtol=1e-12)
    mean, median = M.error_stats(errors, visible)
    cols = [errors[visible[:, k], k] for k in range(21) if kps[k]]
    assert mean == pytest.approx(np.mean([c.mean() for c in cols]))
    assert median == pytest.approx(np.mean([np.median(c) for c in cols]))


def test_auc_known_curves():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert M.auc(t, np.ones(5)) == pytest.approx(1.0)
    assert M.auc(t, t / 4.0) == pytest.approx(0.5)  # linear ramp
    assert M.auc(t, [0, 0, 1, 1, 1]) == pytest.approx(2.5 / 4.0)  # step: 0.5 + 1 + 1 over range 4
    # Range normalisation, not count: same curve on shifted thresholds.
    assert M.auc(t + 20.0, t / 4.0) == pytest.approx(0.5)


def test_freihand_auc_for_constant_error():
    t = M.PCK_THRESHOLDS_M
    h = t[1] - t[0]
    j = 37
    errors = np.full((10, 21), t[j])  # error exactly on a threshold: counted (<=)
    # PCK steps from 0 to 1 at t_j: area = (t_max - t_j) + h / 2.
    expected = (t[-1] - t[j] + h / 2) / t[-1]
    assert M.pck_auc(errors) == pytest.approx(expected, rel=1e-12)
    curve = M.pck_curve(errors)
    assert curve[j] == 1.0 and curve[j - 1] == 0.0


def test_mean_of_keypoint_aucs_equals_auc_of_mean_curve(rng):
    errors = rng.uniform(0, 0.06, size=(30, 21))
    a = M.pck_auc(errors)
    assert a == pytest.approx(M.auc(M.PCK_THRESHOLDS_M, M.pck_curve(errors)), rel=1e-12)


def test_stb_thresholds():
    t = M.STB_PCK_THRESHOLDS_M
    assert t.size == 12 and t[0] == pytest.approx(0.0210526, rel=1e-5) and t[-1] == pytest.approx(0.05)
    assert M.stb_pck_auc(np.full((4, 21), 0.001)) == pytest.approx(1.0)
    assert M.stb_pck_auc(np.full((4, 21), 0.06)) == 0.0


# --------------------------------------------------------------------------- F-score


def test_f_score_known_sets():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, 0.5], [5.0, 0.0, 0.0]])
    # pred0 -> gt0 0.5 hit, pred1 -> gt1 4 miss: precision 1/2.
    # gt0 -> pred0 0.5 hit, gt1 -> pred0 sqrt(1.25) miss: recall 1/2.
    f, p, r = M.f_score(pred, gt, 1.0)
    assert (f, p, r) == pytest.approx((0.5, 0.5, 0.5))
    # Asymmetric: every gt point matched, half the predictions are not.
    f, p, r = M.f_score(np.array([[0.0, 0, 0], [9.0, 0, 0]]), np.array([[0.1, 0, 0]]), 1.0)
    assert (p, r) == pytest.approx((0.5, 1.0)) and f == pytest.approx(2 / 3)


def test_f_score_distance_equal_to_threshold_is_a_miss():
    gt = np.array([[1.0, 0.0, 0.0]])
    pred = np.array([[1.5, 0.0, 0.0]])  # distance exactly 0.5 (exact in binary)
    assert M.f_score(pred, gt, 0.5) == (0.0, 0.0, 0.0)
    assert M.f_score(pred, gt, np.nextafter(0.5, 1.0))[0] == 1.0


def test_f_score_matches_brute_force(rng):
    gt = _hand_like(rng, 1, 300)[0]
    pred = _hand_like(rng, 1, 250)[0]  # different sizes are allowed
    d = cdist(pred, gt)
    for th in (0.005, 0.015, 0.03):
        precision = np.mean(d.min(1) < th)
        recall = np.mean(d.min(0) < th)
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert M.f_score(pred, gt, th) == pytest.approx((f, precision, recall), abs=1e-12)


def test_f_scores_batch_is_per_sample(rng):
    gt = _hand_like(rng, 3, 100)
    pred = gt + rng.normal(size=gt.shape) * 0.006
    out = M.f_scores(pred, gt)
    assert out.shape == (3, 2)
    for i in range(3):
        assert out[i, 0] == pytest.approx(M.f_score(pred[i], gt[i], 0.005)[0])
        assert out[i, 1] == pytest.approx(M.f_score(pred[i], gt[i], 0.015)[0])


# --------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_translated_prediction(rng):
    gj, gv = _hand_like(rng, 6, 21), _hand_like(rng, 6, 64)
    shift = np.array([0.003, 0.004, 0.0])  # 5 mm
    r = M.compute_metrics(gj + shift, gj, gv + shift, gv)
    assert r["num_samples"] == 6
    assert r["mpjpe_mm"] == pytest.approx(5.0) and r["mpvpe_mm"] == pytest.approx(5.0)
    assert r["rr_mpjpe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert r["rr_mpvpe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert r["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-4)
    assert r["pa_mpvpe_mm"] == pytest.approx(0.0, abs=1e-4)
    # Aligned / root-relative vertices coincide with the ground truth: every point is a hit.
    assert r["pa_f5"] == pytest.approx(1.0) and r["rr_f5"] == pytest.approx(1.0)
    assert r["f15"] == pytest.approx(1.0)
    # Raw PCK steps at 5 mm (between grid points 9 and 10 of 0..50 mm).
    t = M.PCK_THRESHOLDS_M
    j = np.searchsorted(t, 0.005)
    assert r["pck_auc"] == pytest.approx(M.auc(t, (t >= t[j]).astype(float)), abs=1e-12)
    assert r["stb_pck_auc_20_50"] == pytest.approx(1.0)
    c = r["curves"]["pck"]
    assert c["unit"] == "mm" and c["thresholds"][0] == 0.0 and c["thresholds"][-1] == pytest.approx(50.0)
    assert len(c["pck"]) == 100
    assert set(r["curves"]) == {"pck", "pa_pck", "rr_pck", "stb_pck_20_50", "rr_stb_pck_20_50",
                                "pcv", "pa_pcv", "rr_pcv"}
    json.dumps(r)  # JSON-serialisable


def test_compute_metrics_agrees_with_helpers(rng):
    gj, gv = _hand_like(rng, 8, 21), _hand_like(rng, 8, 50)
    pj, pv = gj + rng.normal(size=gj.shape) * 0.01, gv + rng.normal(size=gv.shape) * 0.01
    r = M.compute_metrics(pj, gj, pv, gv)
    assert r["mpjpe_mm"] == pytest.approx(M.mpjpe(pj, gj).mean() * 1000)
    assert r["pa_mpjpe_mm"] == pytest.approx(M.pa_mpjpe(pj, gj).mean() * 1000)
    assert r["mpvpe_mm"] == pytest.approx(M.mpvpe(pv, gv).mean() * 1000)
    assert r["pa_mpvpe_mm"] == pytest.approx(M.pa_mpvpe(pv, gv).mean() * 1000)
    rr = M.root_relative(pj, pj), M.root_relative(gj, gj)
    assert r["rr_mpjpe_mm"] == pytest.approx(M.mpjpe(*rr).mean() * 1000)
    f = M.f_scores(M.procrustes_align_batch(pv, gv), gv).mean(0)
    assert (r["pa_f5"], r["pa_f15"]) == pytest.approx(tuple(f))
    assert r["pa_pck_auc"] == pytest.approx(M.pck_auc(M.point_errors(M.procrustes_align_batch(pj, gj), gj)))
    assert "kp2d_err_px" not in r  # no 2D inputs: no 2D metrics


def test_compute_metrics_2d_with_confidence(rng):
    gj = _hand_like(rng, 2, 21)
    g2 = np.zeros((2, 21, 3))
    g2[..., :2] = rng.integers(0, 224, size=(2, 21, 2))  # integers: the 3-4-5 error is exact
    g2[..., 2] = 1.0
    p2 = g2[..., :2] + np.array([3.0, 4.0])  # 5 px everywhere
    g2[0, 0, 2] = 0.0
    p2[0, 0] += 100.0  # invisible: must not count
    r = M.compute_metrics(gj, gj, pred_kp2d=p2, gt_kp2d=g2, selected="kp2d")
    assert r["kp2d_err_px"] == pytest.approx(5.0) and r["kp2d_median_px"] == pytest.approx(5.0)
    # 0..49 px; step at 5 px exactly (counted): area (49 - 5 + 0.5) / 49.
    assert r["pck2d_auc"] == pytest.approx(44.5 / 49.0)
    assert r["curves"]["pck2d"]["unit"] == "px"
    assert set(r) == {"num_samples", "kp2d_err_px", "kp2d_median_px", "pck2d_auc", "curves"}


def test_selection_and_registry(rng):
    gj = _hand_like(rng, 2, 21)
    r = M.compute_metrics(gj, gj, selected=["mpjpe_mm", "stb"])
    assert set(r) == {"num_samples", "mpjpe_mm", "stb_pck_auc_20_50", "rr_stb_pck_auc_20_50", "curves"}
    assert set(r["curves"]) == {"stb_pck_20_50", "rr_stb_pck_20_50"}
    assert set(M.METRIC_GROUPS["freihand"]) <= set(M.METRICS)
    for group in M.METRIC_GROUPS.values():
        assert set(group) <= set(M.METRICS)
    assert M.resolve_metrics("pa") == [k for k in M.METRICS if k.startswith("pa_")]
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        M.resolve_metrics(["nope"])
    with pytest.raises(ValueError, match="pred_verts and gt_verts"):
        M.compute_metrics(gj, gj, selected="fscore")


@pytest.mark.parametrize(
    "pred, gt, match",
    [
        (np.zeros((2, 20, 3)), np.zeros((2, 20, 3)), r"pred_joints: expected shape \(N, 21, 3\)"),
        (np.zeros((2, 21, 3)), np.zeros((3, 21, 3)), "pred_joints has shape"),
        (np.full((2, 21, 3), np.nan), np.zeros((2, 21, 3)), "pred_joints: 126 non-finite"),
        (np.zeros((2, 21, 3)), np.full((2, 21, 3), np.inf), "gt_joints: 126 non-finite"),
    ],
)
def test_validation(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        M.compute_metrics(pred, gt)


def test_validation_misc(rng):
    gj = _hand_like(rng, 2, 21)
    with pytest.raises(ValueError, match="pred_verts has shape"):
        M.compute_metrics(gj, gj, np.zeros((2, 778, 3)), np.zeros((2, 777, 3)))
    with pytest.raises(ValueError, match="strictly increasing"):
        M.pck_curve(np.zeros((2, 3)), [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="positive distance"):
        M.f_score(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="pred: expected shape"):
        M.procrustes_align(np.zeros((21, 2)), np.zeros((21, 3)))


# --------------------------------------------------------------------------- submission


def test_freihand_submission_layout(rng):
    pj = _hand_like(rng, 3, 21).astype(np.float32)
    pv = _hand_like(rng, 3, 778).astype(np.float32)
    sub = M.freihand_submission(pj, pv)
    assert isinstance(sub, list) and len(sub) == 2
    xyz_list, verts_list = json.loads(json.dumps(sub))
    assert len(xyz_list) == len(verts_list) == 3
    np.testing.assert_allclose(np.array(xyz_list[1]), pj[1], rtol=1e-6)
    assert np.array(verts_list[2]).shape == (778, 3)
    with pytest.raises(ValueError, match="pred_verts: expected shape"):
        M.freihand_submission(pj, pv[:, :700])
