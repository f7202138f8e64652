"""Tests for handtools.core.hand.joint_limits."""

import numpy as np
import pytest

from handtools.core.hand.joint_limits import (
    JOINT_LIMITS_DEG, anatomical_axes, angles_to_pose, pose_to_angles, sample_poses,
    within_limits)
from handtools.core.hand.open_hand_rig import rodrigues


def test_axes_are_rotations():
    ax = anatomical_axes()
    assert ax.shape == (15, 3, 3)
    np.testing.assert_allclose(ax @ ax.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ax.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(ax), 1.0, atol=1e-12)


def test_limits_contain_zero_and_are_ordered():
    assert JOINT_LIMITS_DEG.shape == (15, 3, 2)
    assert np.all(JOINT_LIMITS_DEG[..., 0] <= 0) and np.all(JOINT_LIMITS_DEG[..., 1] >= 0)
    assert np.all(JOINT_LIMITS_DEG[:, 0, 1] >= 50)  # every joint flexes substantially


def test_angles_roundtrip():
    rng = np.random.default_rng(0)
    ang = rng.normal(size=(7, 15, 3))
    np.testing.assert_allclose(pose_to_angles(angles_to_pose(ang)), ang, atol=1e-12)


def test_positive_flexion_bends_fingers_to_the_palm():
    # palm faces -y in MANO's frame: a flexed finger's bone direction gains a -y component
    ang = np.zeros((1, 15, 3))
    ang[0, :, 0] = np.deg2rad(45.0)
    rot = rodrigues(angles_to_pose(ang).reshape(15, 3))
    d = anatomical_axes()[:, 2]  # rest bone directions
    moved = np.einsum("jab,jb->ja", rot, d)
    assert np.all(moved[:, 1] < -0.3)


def test_sample_poses_within_limits_and_reproducible():
    p = sample_poses(500, np.random.default_rng(3))
    assert p.shape == (500, 45) and p.dtype == np.float64
    assert within_limits(p).all()
    np.testing.assert_array_equal(p, sample_poses(500, np.random.default_rng(3)))
    # covers the range: some strongly flexed and some nearly straight fingers
    flex = np.rad2deg(pose_to_angles(p)[:, :, 0])
    assert flex.max() > 80 and flex.min() < 0
    assert np.all(sample_poses(4, np.random.default_rng(0), scale=0.0) == 0)
    small = sample_poses(200, np.random.default_rng(1), scale=0.3)
    assert np.abs(small).max() < np.abs(p).max()


@pytest.mark.parametrize("kwargs", [dict(n=-1), dict(n=2.5), dict(scale=-1.0), dict(rng=0)])
def test_sample_poses_rejects_bad_input(kwargs):
    args = dict(n=2, rng=np.random.default_rng(0), scale=1.0) | kwargs
    with pytest.raises(ValueError):
        sample_poses(**args)


def test_pose_shape_checked():
    with pytest.raises(ValueError):
        pose_to_angles(np.zeros((2, 48)))
