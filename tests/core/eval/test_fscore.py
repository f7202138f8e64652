"""Mesh F-score: closed-form sets, the strict threshold, brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from handtools.core.eval.fscore import F_SCORE_THRESHOLDS_M, f_score, f_scores
from tests.core.eval.conftest import hand_like


def test_f_score_known_sets():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, 0.5], [5.0, 0.0, 0.0]])
    # pred0 -> gt0 0.5 hit, pred1 -> gt1 4 miss: precision 1/2.
    # gt0 -> pred0 0.5 hit, gt1 -> pred0 sqrt(1.25) miss: recall 1/2.
    f, p, r = f_score(pred, gt, 1.0)
    assert (f, p, r) == pytest.approx((0.5, 0.5, 0.5))
    # Asymmetric: every gt point matched, half the predictions are not.
    f, p, r = f_score(np.array([[0.0, 0, 0], [9.0, 0, 0]]), np.array([[0.1, 0, 0]]), 1.0)
    assert (p, r) == pytest.approx((0.5, 1.0)) and f == pytest.approx(2 / 3)


def test_f_score_distance_equal_to_threshold_is_a_miss():
    gt = np.array([[1.0, 0.0, 0.0]])
    pred = np.array([[1.5, 0.0, 0.0]])  # distance exactly 0.5 (exact in binary)
    assert f_score(pred, gt, 0.5) == (0.0, 0.0, 0.0)
    assert f_score(pred, gt, np.nextafter(0.5, 1.0))[0] == 1.0


def test_f_score_matches_brute_force(rng):
    gt = hand_like(rng, 1, 300)[0]
    pred = hand_like(rng, 1, 250)[0]  # different sizes are allowed
    d = cdist(pred, gt)
    for th in (0.005, 0.015, 0.03):
        precision = np.mean(d.min(1) < th)
        recall = np.mean(d.min(0) < th)
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert f_score(pred, gt, th) == pytest.approx((f, precision, recall), abs=1e-12)


def test_f_scores_batch_is_per_sample(rng):
    gt = hand_like(rng, 3, 100)
    pred = gt + rng.normal(size=gt.shape) * 0.006
    out = f_scores(pred, gt)
    assert out.shape == (3, 2)
    for i in range(3):
        assert out[i, 0] == pytest.approx(f_score(pred[i], gt[i], 0.005)[0])
        assert out[i, 1] == pytest.approx(f_score(pred[i], gt[i], 0.015)[0])


def test_validation():
    with pytest.raises(ValueError, match="positive distance"):
        f_score(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="2 samples"):
        f_scores(np.zeros((2, 5, 3)), np.zeros((3, 5, 3)))
    assert F_SCORE_THRESHOLDS_M == (0.005, 0.015)  # FreiHAND f_threshs: reported as f5 and f15
