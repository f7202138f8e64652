"""Anatomical joint limits of the MANO hand and a sampler of plausible hand poses.

MANO poses are axis-angle rotations of the 15 finger joints, each expressed in its
parent's frame, whose axes coincide with the model frame in the rest pose. In that
frame (MANO's, and our open hand model's, see ``handtools.core.hand.open_hand``) the fingers
point along ``-x``, the thumb lies on the ``+z`` side, the back of the hand faces
``+y`` and the palm ``-y``. A positive rotation about ``+z`` flexes a finger (towards
the palm).

We give every joint an anatomical frame made of three orthonormal axes in the rest
frame: ``flexion`` (rotating about it moves the bone towards the palm), ``abduction``
(moves it sideways, towards the thumb for positive angles) and ``twist`` (the bone's
own direction). Angles here are the components of the joint's axis-angle vector along
those axes, so ``pose = sum(angle_k * axis_k)``: exact for a single-axis rotation and
within a few degrees of Euler angles for the small secondary ranges we allow.

The limits follow the ranges of motion used for hand-pose regularisers in the
literature, e.g. the per-joint tilt/swing/azimuth bounds of S2HAND's pose prior
(Chen et al., CVPR 2021, https://github.com/TerenceCYJ/S2HAND, ``examples/losses.py``,
function ``tsa_pose_loss``): flexion up to ~100 degrees, a few degrees of twist and
sideways motion for finger joints, larger ranges for the thumb base. The numbers below
are our own table in that spirit (clinical ranges of motion, rounded), not a copy.
"""

from __future__ import annotations

import numpy as np


# The tables below are indexed by MANO joints 1..15 (``MANO_JOINT_NAMES[1:]``) and
# the axes (flexion, abduction, twist) of ``pose_to_angles``.

_MCP = ((-25.0, 90.0), None, (-8.0, 8.0))
_PIP = ((-5.0, 105.0), (-5.0, 5.0), (-5.0, 5.0))
_DIP = ((-10.0, 80.0), (-5.0, 5.0), (-5.0, 5.0))

#: (min, max) in degrees for each non-root MANO joint (MANO order 1..15) and axis.
JOINT_LIMITS_DEG = np.array([
    # index
    (_MCP[0], (-15.0, 25.0), _MCP[2]), _PIP, _DIP,
    # middle
    (_MCP[0], (-15.0, 15.0), _MCP[2]), _PIP, _DIP,
    # little (abducts away from the thumb: negative)
    (_MCP[0], (-30.0, 15.0), _MCP[2]), _PIP, _DIP,
    # ring
    (_MCP[0], (-20.0, 15.0), _MCP[2]), _PIP, _DIP,
    # thumb: CMC (thumb1), MCP (thumb2), IP (thumb3)
    ((-25.0, 50.0), (-30.0, 35.0), (-25.0, 25.0)),
    ((-10.0, 60.0), (-10.0, 10.0), (-15.0, 15.0)),
    ((-20.0, 90.0), (-5.0, 5.0), (-5.0, 5.0)),
], dtype=np.float64)

#: Rest direction of each non-root joint's bone in the x-z plane: degrees from ``-x``
#: towards ``+z`` (approximate MANO template; fingers fan out, the thumb points sideways).
REST_BONE_ANGLE_DEG = np.array(
    [5.0, 4.25, 3.5,  0.5, 0.4, 0.35,  -10.0, -8.5, -7.0,  -4.5, -3.8, -3.2,
     42.0, 36.0, 30.0], dtype=np.float64)

#: Thumb flexion moves the thumb across the palm: its palmar direction is tilted from
#: ``-y`` towards the fingers by this angle (degrees).
THUMB_OPPOSITION_TILT_DEG = 40.0

_FINGER_JOINTS = ((1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))
_THUMB_JOINTS = (13, 14, 15)


def anatomical_axes() -> np.ndarray:
    """Anatomical axes of the 15 non-root MANO joints in the rest frame.

    Returns:
        (15, 3, 3) float64; ``axes[j - 1, k]`` is the unit axis ``AXIS_NAMES[k]``
        (flexion, abduction, twist) of MANO joint ``j``. Each 3x3 block is a rotation
        matrix (orthonormal rows, determinant +1).
    """
    axes = np.zeros((15, 3, 3))
    for j in range(1, 16):
        a = np.deg2rad(REST_BONE_ANGLE_DEG[j - 1])
        d = np.array([-np.cos(a), 0.0, np.sin(a)])  # bone direction (twist axis)
        if j in _THUMB_JOINTS:
            tilt = np.deg2rad(THUMB_OPPOSITION_TILT_DEG)
            towards_fingers = np.array([-np.sin(a), 0.0, -np.cos(a)])
            m = np.cos(tilt) * np.array([0.0, -1.0, 0.0]) + np.sin(tilt) * towards_fingers
        else:
            m = np.array([0.0, -1.0, 0.0])  # palmar direction
        flex = np.cross(d, m)  # rotating d about flex moves it towards m
        axes[j - 1] = np.stack([flex, -m, d])
    return axes


def _check_pose(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != 45:
        raise ValueError(f"pose must have shape (N, 45) (15 joints x axis-angle), got {pose.shape}")
    return pose


def pose_to_angles(pose: np.ndarray) -> np.ndarray:
    """Anatomical angles of MANO hand poses.

    Args:
        pose: (N, 45) float, radians; axis-angle of MANO joints 1..15 (no global orient).
    Returns:
        (N, 15, 3) float64, radians: flexion, abduction, twist of each joint.
    """
    pose = _check_pose(pose).reshape(-1, 15, 3)
    return np.einsum("jkc,njc->njk", anatomical_axes(), pose)


def angles_to_pose(angles: np.ndarray) -> np.ndarray:
    """Inverse of ``pose_to_angles``: (N, 15, 3) radians -> (N, 45) float64 axis-angle."""
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 3 or angles.shape[1:] != (15, 3):
        raise ValueError(f"angles must have shape (N, 15, 3), got {angles.shape}")
    return np.einsum("jkc,njk->njc", anatomical_axes(), angles).reshape(-1, 45)


def within_limits(pose: np.ndarray, tol_deg: float = 1e-6) -> np.ndarray:
    """Whether each pose's anatomical angles lie inside ``JOINT_LIMITS_DEG`` (+- tol).

    Args:
        pose: (N, 45) float, radians.
    Returns:
        (N,) bool.
    """
    ang = np.rad2deg(pose_to_angles(pose))
    lo, hi = JOINT_LIMITS_DEG[..., 0], JOINT_LIMITS_DEG[..., 1]
    return np.all((ang >= lo - tol_deg) & (ang <= hi + tol_deg), axis=(1, 2))


def sample_poses(n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Random plausible MANO hand poses inside the anatomical joint limits.

    Each finger gets a "curl" in [0, 1] (Beta(1.3, 1.7): open hands are a little more
    frequent); its joints flex to that fraction of their range, plus independent
    jitter (0.15 of the range), so joints of one finger flex together as in real hands.
    Abduction and twist are uniform within their limits. All angles are then multiplied
    by ``scale`` (0 gives the flat zero pose, 1 the full range) and clipped to the limits.

    Args:
        n: number of poses, >= 0.
        rng: numpy random generator (e.g. ``np.random.default_rng(0)``); the only
            source of randomness, so results are reproducible.
        scale: >= 0, shrinks (or, clipped, widens) the sampled angles around zero.
    Returns:
        (n, 45) float64, radians: axis-angle of MANO joints 1..15 in MANO order, to be
        used as ``hand_pose`` with ``flat_hand_mean=True`` (no global orientation).
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    n = int(n)
    lim = np.deg2rad(JOINT_LIMITS_DEG)  # (15, 3, 2)
    lo, hi = lim[..., 0], lim[..., 1]
    curl = rng.beta(1.3, 1.7, size=(n, 5))  # thumb, then the four fingers in _FINGER_JOINTS
    t = np.empty((n, 15))
    for f, ids in enumerate((_THUMB_JOINTS,) + _FINGER_JOINTS):
        for j in ids:
            t[:, j - 1] = curl[:, f]
    t = np.clip(t + 0.15 * rng.standard_normal((n, 15)), 0.0, 1.0)
    ang = np.empty((n, 15, 3))
    ang[:, :, 0] = lo[:, 0] + t * (hi[:, 0] - lo[:, 0])
    ang[:, :, 1:] = lo[:, 1:] + rng.random((n, 15, 2)) * (hi[:, 1:] - lo[:, 1:])
    ang = np.clip(ang * scale, lo, hi)
    return angles_to_pose(ang)

