"""Procrustes alignment with scale (FreiHAND align_w_scale) and root-relative points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import procrustes as scipy_procrustes

from handtools.core.eval.alignment import procrustes_align, procrustes_align_batch, root_relative
from handtools.core.eval.errors import mpjpe, pa_mpjpe
from tests.core.eval.conftest import hand_like, rot


def test_similarity_copy_pa_zero_raw_closed_form(rng):
    gt = hand_like(rng, 3, 21)
    r = rot("z", 180.0)  # (x, y, z) -> (-x, -y, z)
    c = 0.1
    pred = 2.0 * gt @ r.T + np.array([0.0, 0.0, c])  # scale 2, rotate, translate
    # Closed form: pred - gt = (-3x, -3y, z + c).
    x, y, z = gt[..., 0], gt[..., 1], gt[..., 2]
    expected = np.sqrt(9 * x**2 + 9 * y**2 + (z + c) ** 2).mean(1)
    np.testing.assert_allclose(mpjpe(pred, gt), expected, rtol=1e-12)
    # Not exactly 0: FreiHAND adds 1e-8 m to each Frobenius norm (a few nm here).
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0.0, atol=1e-8)
    np.testing.assert_allclose(procrustes_align_batch(pred, gt), gt, atol=1e-8)


def test_general_similarity_is_undone(rng):
    gt = hand_like(rng, 1, 778)[0]
    pred = 0.7 * gt @ (rot("x", 30) @ rot("y", -50) @ rot("z", 110)).T + [0.2, -0.1, 0.3]
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-8)


def test_reflection_is_not_fixed(rng):
    gt = hand_like(rng, 4, 21)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a mirror image can never be reached by a rotation
    # FreiHAND keeps the reflection orthogonal_procrustes returns: the mirror aligns perfectly.
    np.testing.assert_allclose(pa_mpjpe(mirrored, gt), 0.0, atol=1e-8)
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
    gt = hand_like(rng, 5, 21)
    pred = gt + rng.normal(size=gt.shape) * 0.01
    pred[0] = pred[0] * [1, -1, 1]  # one sample that needs a reflection
    for p, g in zip(pred, gt):
        # Umeyama without the det correction: min |s pc R - gc|.
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(pc.T @ gc)
        r = u @ vt
        scale = s.sum() / (pc**2).sum()
        expected = scale * pc @ r + g.mean(0)
        np.testing.assert_allclose(procrustes_align(p, g), expected, atol=1e-7)


def test_validation():
    with pytest.raises(ValueError, match="pred: expected shape"):
        procrustes_align(np.zeros((21, 2)), np.zeros((21, 3)))
    with pytest.raises(ValueError, match="joints: expected shape"):
        root_relative(np.zeros((2, 5, 3)), np.zeros((2, 16, 3)))


def test_root_relative_subtracts_each_samples_wrist(rng):
    joints = hand_like(rng, 3, 21)
    verts = hand_like(rng, 3, 50)
    out = root_relative(verts, joints)
    np.testing.assert_array_equal(out, verts - joints[:, :1])
    np.testing.assert_array_equal(root_relative(joints, joints)[:, 0], 0.0)


def test_same_fit_as_scipy_spatial_procrustes_but_in_gt_units(rng):
    # scipy.spatial.procrustes returns the aligned prediction standardised (centred, unit
    # Frobenius norm of the ground truth): undoing that gives our result, up to the 1e-8 epsilon.
    gt = hand_like(rng, 1, 21)[0]
    pred = 1.3 * gt @ rot("y", 40).T + rng.normal(size=gt.shape) * 0.005
    _, std_pred, _ = scipy_procrustes(gt, pred)
    gc = gt - gt.mean(0)
    np.testing.assert_allclose(procrustes_align(pred, gt), std_pred * np.linalg.norm(gc) + gt.mean(0), atol=1e-9)
    # Where scipy gives up (a collapsed prediction), the FreiHAND epsilon still gives a score.
    collapsed = np.zeros_like(gt)
    with pytest.raises(ValueError):
        scipy_procrustes(gt, collapsed)
    np.testing.assert_allclose(procrustes_align(collapsed, gt), np.broadcast_to(gt.mean(0), gt.shape), atol=1e-12)
