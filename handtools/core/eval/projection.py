"""Pinhole projection of 3D predictions for the 2D metrics, in numpy.

The same projection as :func:`handtools.core.geometry.cameras.project`, without
torch: the 2D metrics need one matrix product, and importing torch for it would
triple the start-up time of a CI gate (``handtools evaluate``).
"""

from __future__ import annotations

import numpy as np

#: Points at or below this depth (metres, camera z) lie behind the camera: their projection is undefined.
MIN_DEPTH_M = 1e-6


def points_behind(points, min_depth: float = MIN_DEPTH_M) -> int:
    """How many points have a camera depth ``z <= min_depth``.

    Args:
        points: (..., 3) float, metres, camera frame (OpenCV: z forward).
    """
    return int((np.asarray(points)[..., 2] <= min_depth).sum())


def project_pinhole(K, points) -> np.ndarray:
    """Pixels of camera-frame points: ``(K @ p)[:2] / (K @ p)[2]``.

    Args:
        K: (N, 3, 3) float, pinhole intrinsics in pixels.
        points: (N, P, 3) float, metres, camera frame, in front of the camera
            (see :func:`points_behind`).

    Returns:
        (N, P, 2) float64 pixels (u, v).
    """
    K = np.asarray(K, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if K.ndim != 3 or K.shape[1:] != (3, 3) or points.ndim != 3 or points.shape[-1] != 3 \
            or K.shape[0] != points.shape[0]:
        raise ValueError(f"project_pinhole: expected K (N, 3, 3) and points (N, P, 3), "
                         f"got {K.shape} and {points.shape}")
    uvw = np.einsum("nij,nkj->nki", K, points)  # (N, P, 3)
    return uvw[..., :2] / uvw[..., 2:3]
