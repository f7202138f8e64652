"""compute_metrics and the metric registry: closed-form cases, agreement with the helpers, validation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from handtools.core.eval.alignment import procrustes_align_batch, root_relative
from handtools.core.eval.errors import mpjpe, mpvpe, pa_mpjpe, pa_mpvpe, point_errors
from handtools.core.eval.fscore import f_scores
from handtools.core.eval.metrics import compute_metrics
from handtools.core.eval.pck import PCK_THRESHOLDS_M, auc, pck_auc
from handtools.core.eval.registry import CURVES, METRIC_GROUPS, METRICS, resolve_metrics
from tests.conftest import REPO
from tests.core.eval.conftest import hand_like


def test_compute_metrics_translated_prediction(rng):
    gj, gv = hand_like(rng, 6, 21), hand_like(rng, 6, 64)
    shift = np.array([0.003, 0.004, 0.0])  # 5 mm
    r = compute_metrics(gj + shift, gj, gv + shift, gv)
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
    t = PCK_THRESHOLDS_M
    j = np.searchsorted(t, 0.005)
    assert r["pck_auc"] == pytest.approx(auc(t, (t >= t[j]).astype(float)), abs=1e-12)
    assert r["stb_pck_auc_20_50"] == pytest.approx(1.0)
    c = r["curves"]["pck"]
    assert c["unit"] == "mm" and c["thresholds"][0] == 0.0 and c["thresholds"][-1] == pytest.approx(50.0)
    assert len(c["pck"]) == 100
    assert set(r["curves"]) == {"pck", "pa_pck", "rr_pck", "stb_pck_20_50", "rr_stb_pck_20_50",
                                "pcv", "pa_pcv", "rr_pcv"}
    json.dumps(r)  # JSON-serialisable


def test_compute_metrics_agrees_with_helpers(rng):
    gj, gv = hand_like(rng, 8, 21), hand_like(rng, 8, 50)
    pj, pv = gj + rng.normal(size=gj.shape) * 0.01, gv + rng.normal(size=gv.shape) * 0.01
    r = compute_metrics(pj, gj, pv, gv)
    assert r["mpjpe_mm"] == pytest.approx(mpjpe(pj, gj).mean() * 1000)
    assert r["pa_mpjpe_mm"] == pytest.approx(pa_mpjpe(pj, gj).mean() * 1000)
    assert r["mpvpe_mm"] == pytest.approx(mpvpe(pv, gv).mean() * 1000)
    assert r["pa_mpvpe_mm"] == pytest.approx(pa_mpvpe(pv, gv).mean() * 1000)
    rr = root_relative(pj, pj), root_relative(gj, gj)
    assert r["rr_mpjpe_mm"] == pytest.approx(mpjpe(*rr).mean() * 1000)
    f = f_scores(procrustes_align_batch(pv, gv), gv).mean(0)
    assert (r["pa_f5"], r["pa_f15"]) == pytest.approx(tuple(f))
    assert r["pa_pck_auc"] == pytest.approx(pck_auc(point_errors(procrustes_align_batch(pj, gj), gj)))
    assert "kp2d_err_px" not in r  # no 2D inputs: no 2D metrics


def test_compute_metrics_2d_with_confidence(rng):
    gj = hand_like(rng, 2, 21)
    g2 = np.zeros((2, 21, 3))
    g2[..., :2] = rng.integers(0, 224, size=(2, 21, 2))  # integers: the 3-4-5 error is exact
    g2[..., 2] = 1.0
    p2 = g2[..., :2] + np.array([3.0, 4.0])  # 5 px everywhere
    g2[0, 0, 2] = 0.0
    p2[0, 0] += 100.0  # invisible: must not count
    r = compute_metrics(gj, gj, pred_kp2d=p2, gt_kp2d=g2, selected="kp2d")
    assert r["kp2d_err_px"] == pytest.approx(5.0) and r["kp2d_median_px"] == pytest.approx(5.0)
    # 0..49 px; step at 5 px exactly (counted): area (49 - 5 + 0.5) / 49.
    assert r["pck2d_auc"] == pytest.approx(44.5 / 49.0)
    assert r["curves"]["pck2d"]["unit"] == "px"
    assert set(r) == {"num_samples", "kp2d_err_px", "kp2d_median_px", "pck2d_auc", "curves"}


def test_selection_and_registry(rng):
    gj = hand_like(rng, 2, 21)
    r = compute_metrics(gj, gj, selected=["mpjpe_mm", "stb"])
    assert set(r) == {"num_samples", "mpjpe_mm", "stb_pck_auc_20_50", "rr_stb_pck_auc_20_50", "curves"}
    assert set(r["curves"]) == {"stb_pck_20_50", "rr_stb_pck_20_50"}
    assert set(METRIC_GROUPS["freihand"]) <= set(METRICS)
    for group in METRIC_GROUPS.values():
        assert set(group) <= set(METRICS)
    assert resolve_metrics("pa") == [k for k in METRICS if k.startswith("pa_")]
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        resolve_metrics(["nope"])
    with pytest.raises(ValueError, match="pred_verts and gt_verts"):
        compute_metrics(gj, gj, selected="fscore")


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
        compute_metrics(pred, gt)


def test_validation_mismatched_vertices(rng):
    gj = hand_like(rng, 2, 21)
    with pytest.raises(ValueError, match="pred_verts has shape"):
        compute_metrics(gj, gj, np.zeros((2, 778, 3)), np.zeros((2, 777, 3)))


def test_curves_registry_names_every_reported_curve(rng):
    gj, gv = hand_like(rng, 3, 21), hand_like(rng, 3, 40)
    g2 = np.concatenate([rng.uniform(0, 200, size=(3, 21, 2)), np.ones((3, 21, 1))], -1)
    r = compute_metrics(gj + 0.001, gj, gv + 0.001, gv, g2[..., :2] + 1.0, g2)
    assert set(r["curves"]) == set(CURVES)
    assert set(CURVES.values()) <= set(METRICS)
    for name, c in compute_metrics(gj, gj, selected="pa_pck_auc")["curves"].items():
        assert CURVES[name] == "pa_pck_auc" and len(c["pck"]) == len(c["thresholds"])


def test_registry_imports_without_numpy():
    # Every command module is imported when the CLI starts: the names must not pull in numpy/scipy.
    code = ("import sys; import handtools.core.eval.registry; "
            "bad = [m for m in ('numpy', 'scipy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
