"""N-view triangulation of 2D keypoints: the direct linear transform (DLT), confidence-weighted.

For a point ``X`` (homogeneous, world frame) seen by camera ``P_v = K_v [R_v | t_v]`` at
pixel ``(u, v)``, the projection ``x ~ P X`` gives two linear equations per view
(Hartley & Zisserman, "Multiple View Geometry", §12.2)::

    (u p3 - p1) . X = 0,   (v p3 - p2) . X = 0

Stacking them over views, each pair scaled by that view's confidence, the least-squares
``X`` is the right singular vector of the smallest singular value. Rows are normalised to
unit length first so that every view weighs by its confidence, not by its distance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from handtools.core.geometry.checks import check_tensor


def projection_matrices(K: Tensor, T_view: Tensor) -> Tensor:
    """(..., 3, 3) intrinsics and (..., 4, 4) world-to-camera -> (..., 3, 4) ``K [R | t]``."""
    return K @ T_view[..., :3, :]


def triangulate_dlt(keypoints2d: Tensor, K: Tensor, T_view: Tensor, min_views: int = 2,
                    min_confidence: float = 0.0) -> tuple[Tensor, Tensor]:
    """Confidence-weighted DLT triangulation of every joint of every sample.

    Args:
        keypoints2d: (N, V, J, 3) float: u, v in pixels and a confidence in [0, 1]
            (a view with confidence <= ``min_confidence`` is left out for that joint).
        K: (N, V, 3, 3) pinhole intrinsics in pixels.
        T_view: (N, V, 4, 4) world-to-camera transforms (world = the frame the points
            come out in, e.g. the camera frame of view 0).
        min_views: a joint seen by fewer views is not triangulated.

    Returns:
        points (N, J, 3) in the world frame (units of ``T_view``'s translation, metres
        in shards), NaN where not triangulated; valid (N, J) bool. dtype/device of
        ``keypoints2d``.
    """
    check_tensor(keypoints2d, "keypoints2d", (None, None, None, 3))
    n, v, j, _ = keypoints2d.shape
    check_tensor(K, "K", (n, v, 3, 3))
    check_tensor(T_view, "T_view", (n, v, 4, 4))
    if min_views < 2:
        raise ValueError(f"min_views must be >= 2, got {min_views}")
    dt = keypoints2d.dtype if keypoints2d.dtype == torch.float64 else torch.float64
    kp = keypoints2d.to(dt)
    P = projection_matrices(K.to(dt), T_view.to(dt))  # (N, V, 3, 4)
    u, vv, conf = kp[..., 0], kp[..., 1], kp[..., 2]  # (N, V, J)
    conf = torch.where(conf > min_confidence, conf, torch.zeros_like(conf))
    p1, p2, p3 = P[:, :, None, 0], P[:, :, None, 1], P[:, :, None, 2]  # (N, V, 1, 4)
    rows = torch.stack([u[..., None] * p3 - p1, vv[..., None] * p3 - p2], 3)  # (N, V, J, 2, 4)
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    rows = rows * conf[..., None, None]
    A = rows.permute(0, 2, 1, 3, 4).reshape(n, j, 2 * v, 4)  # (N, J, 2V, 4)
    _, _, vh = torch.linalg.svd(A, full_matrices=False)  # vh (N, J, 4, 4)
    X = vh[..., -1, :]  # (N, J, 4)
    w = X[..., 3:]
    seen = (conf > 0).sum(1)  # (N, J)
    valid = (seen >= min_views) & (w.abs()[..., 0] > 1e-12)
    pts = X[..., :3] / torch.where(w.abs() > 1e-12, w, torch.ones_like(w))
    pts = torch.where(valid[..., None], pts, torch.full_like(pts, float("nan")))
    return pts.to(keypoints2d.dtype), valid


def reprojection_error(points: Tensor, keypoints2d: Tensor, K: Tensor, T_view: Tensor) -> Tensor:
    """(N, J, 3) world points vs (N, V, J, 3) keypoints -> (N, V, J) pixel distance."""
    P = projection_matrices(K, T_view)  # (N, V, 3, 4)
    Xh = torch.cat([points, torch.ones_like(points[..., :1])], -1)  # (N, J, 4)
    x = torch.einsum("nvab,njb->nvja", P, Xh)  # (N, V, J, 3)
    uv = x[..., :2] / x[..., 2:3]
    return (uv - keypoints2d[..., :2]).norm(dim=-1)
