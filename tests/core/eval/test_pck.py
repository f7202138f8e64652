"""PCK curves, AUC, the FreiHAND/STB thresholds and the EvalUtil mean/median."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.core.eval.errors import error_stats
from handtools.core.eval.pck import (
    PCK_THRESHOLDS_M,
    STB_PCK_THRESHOLDS_M,
    auc,
    pck_auc,
    pck_curve,
    pck_per_keypoint,
    stb_pck_auc,
)


def test_pck_known_distances_inclusive():
    errors = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, 4.0], [3.0, 1.0]])  # (N=4, K=2)
    t = np.array([0.0, 1.0, 2.0, 3.0])
    # keypoint 0: errors 0,2,1,3 -> <=t fractions 1/4, 2/4, 3/4, 4/4
    # keypoint 1: errors 1,3,4,1 -> 0, 2/4, 2/4, 3/4
    per_kp = pck_per_keypoint(errors, t)
    np.testing.assert_allclose(per_kp, [[0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 0.5, 0.75]])
    np.testing.assert_allclose(pck_curve(errors, t), [0.125, 0.5, 0.625, 0.875])


def test_pck_matches_brute_force_with_visibility(rng):
    errors = rng.uniform(0, 0.06, size=(50, 21))
    visible = rng.uniform(size=errors.shape) > 0.3
    visible[:, 3] = False  # a keypoint never visible is left out, as in EvalUtil
    t = PCK_THRESHOLDS_M
    hits = (errors[None] <= t[:, None, None]) & visible[None]  # (T, N, K)
    kps = visible.any(0)
    expected = (hits.sum(1)[:, kps] / visible.sum(0)[kps]).mean(1)
    np.testing.assert_allclose(pck_curve(errors, t, visible), expected, rtol=1e-12)
    mean, median = error_stats(errors, visible)
    cols = [errors[visible[:, k], k] for k in range(21) if kps[k]]
    assert mean == pytest.approx(np.mean([c.mean() for c in cols]))
    assert median == pytest.approx(np.mean([np.median(c) for c in cols]))


def test_auc_known_curves():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert auc(t, np.ones(5)) == pytest.approx(1.0)
    assert auc(t, t / 4.0) == pytest.approx(0.5)  # linear ramp
    assert auc(t, [0, 0, 1, 1, 1]) == pytest.approx(2.5 / 4.0)  # step: 0.5 + 1 + 1 over range 4
    # Range normalisation, not count: same curve on shifted thresholds.
    assert auc(t + 20.0, t / 4.0) == pytest.approx(0.5)


def test_freihand_auc_for_constant_error():
    t = PCK_THRESHOLDS_M
    h = t[1] - t[0]
    j = 37
    errors = np.full((10, 21), t[j])  # error exactly on a threshold: counted (<=)
    # PCK steps from 0 to 1 at t_j: area = (t_max - t_j) + h / 2.
    expected = (t[-1] - t[j] + h / 2) / t[-1]
    assert pck_auc(errors) == pytest.approx(expected, rel=1e-12)
    curve = pck_curve(errors)
    assert curve[j] == 1.0 and curve[j - 1] == 0.0


def test_mean_of_keypoint_aucs_equals_auc_of_mean_curve(rng):
    errors = rng.uniform(0, 0.06, size=(30, 21))
    a = pck_auc(errors)
    assert a == pytest.approx(auc(PCK_THRESHOLDS_M, pck_curve(errors)), rel=1e-12)


def test_stb_thresholds():
    t = STB_PCK_THRESHOLDS_M
    assert t.size == 12 and t[0] == pytest.approx(0.0210526, rel=1e-5) and t[-1] == pytest.approx(0.05)
    assert stb_pck_auc(np.full((4, 21), 0.001)) == pytest.approx(1.0)
    assert stb_pck_auc(np.full((4, 21), 0.06)) == 0.0


def test_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        pck_curve(np.zeros((2, 3)), [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        pck_curve(np.full((2, 3), -1.0), [0.0, 1.0])
