"""Rectified-stereo geometry of the binocular self-supervised method (Chen et al., ICCV 2021, §3.2).

The network predicts per-vertex pixels ``(u, v)`` in the left and right views of one
rectified pair; depth comes from their disparity (eq. 1), each view is lifted to its
camera frame, the right mesh is rendered to a disparity map (eq. 2) and the left
image is warped into the right view with it (the input of eq. 3), and vice versa.

Conventions (DESIGN.md, ``cameras.py``):

* OpenCV cameras (x right, y down, z forward), metres. The right camera sits at
  ``+baseline`` along the left camera's x axis, so a point ``p`` in the left frame is
  ``p - (b, 0, 0)`` in the right frame.
* Pixel ``i`` covers ``[i, i + 1)``, its centre is ``i + 0.5``, ``u = fx x / z + cx``.
* The two views may be different crops of the rectified pair: they share rows
  (same ``fy``, ``cy`` scale for the warp) but their principal points may differ. For
  a point seen in both, ``u_l - u_r = fx b / z + (cx_l - cx_r)``: the *disparity*
  ``d = fx b / z`` excludes the principal-point offset ``cx_l - cx_r``, which the warp
  adds back.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from handtools.core.geometry.cameras import depth_to_disparity, disparity_to_depth, unproject
from handtools.core.geometry.checks import check_tensor

#: Smallest disparity (pixels of the left view) that :func:`verts_from_disparity`
#: lets through. A rectified pair has ``d = f b / z > 0`` for every point in front of
#: the cameras; a predicted ``d <= 0`` (crossed or identical u) has no finite depth.
#: 0.5 px is depth ``2 f b``: 99 m for the STB rig (f = 822.8 px, b = 0.1201 m).
MIN_DISPARITY_PX = 0.5

Direction = Literal["left_to_right", "right_to_left"]
_DIRECTIONS = ("left_to_right", "right_to_left")


# --------------------------------------------------------------------------- checks


def _per_sample(value, batch: int, like: Tensor, name: str) -> Tensor:
    """A float or a (B,) tensor as a (B,) tensor with ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        t = value.to(device=like.device, dtype=like.dtype)
    else:  # straight to like.dtype: a Python float via float32 would lose precision
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t.expand(batch)
    if tuple(t.shape) != (batch,):
        raise ValueError(f"{name} must be a float or a ({batch},) tensor, got {tuple(t.shape)}")
    return t


# --------------------------------------------------------------------------- eq. 1
def soft_min_clamp(x: Tensor, minimum: float) -> Tensor:
    """Differentiable lower bound: ``minimum + softplus(x - minimum)`` with sharpness
    ``beta = 20 / minimum``.

    Equals ``x`` exactly (torch's softplus is linear above ``beta x > 20``) for
    ``x > 2 minimum``, is ``minimum + ln 2 / beta`` at ``x = minimum`` and tends to
    ``minimum`` below it, with gradient ``sigmoid(beta (x - minimum))`` in (0, 1).
    ``minimum`` must be positive.
    """
    if not minimum > 0:
        raise ValueError(f"minimum must be positive, got {minimum}")
    beta = 20.0 / minimum
    return minimum + F.softplus(x - minimum, beta=beta, threshold=20.0)


def verts_from_disparity(
    uv_left: Tensor,
    uv_right: Tensor,
    K_left: Tensor,
    K_right: Tensor,
    baseline,
    min_disparity: float = MIN_DISPARITY_PX,
) -> tuple[Tensor, Tensor]:
    """Absolute meshes of both views from per-vertex pixels of a rectified pair (eq. 1).

    With normalised coordinates ``x = (u - cx) / fx`` (``cameras.unproject`` at z = 1,
    so any focal length per view and zero or non-zero skew), the disparity in pixels
    of the left view is ``d = fx_l (x_l - x_r)``; for equal focal lengths that is
    ``(u_l - cx_l) - (u_r - cx_r)``, eq. 1's ``|u_l - u_r|`` for crops sharing the
    principal point. Depth ``z = fx_l b / d`` is shared by both views (the paper: "the
    output hand mesh of the left and right branch have the same z coordinates"),
    and each view's ``(u, v, z)`` is unprojected with its own intrinsics.

    Where the prediction is geometrically consistent (same rows in both views), the
    meshes satisfy ``xyz_right = xyz_left - (b, 0, 0)`` exactly: the x coordinates
    always do (by construction of z, while ``d > 2 min_disparity``), the y
    coordinates only when the two views agree on ``v`` -- which the Chamfer and
    normal losses (eqs. 8-9) then enforce.

    Guard: instead of eq. 1's absolute value (which maps crossed predictions to a
    mirrored, plausible-looking depth) the disparity is bounded below by
    :func:`soft_min_clamp` at ``min_disparity`` pixels: unchanged above
    ``2 min_disparity``, smoothly saturating below (so depth stays finite and
    positive, at most about ``fx_l b / min_disparity``, and the gradient does not
    vanish abruptly). ``cameras.triangulate_rectified`` is the exact, non-clamped
    version (it raises or masks at ``d <= 0``) and is not used here for that reason.

    Args:
        uv_left, uv_right: (B, V, 2) float, pixels of each view (u column, v row).
        K_left, K_right: (B, 3, 3) float intrinsics of each (cropped) view, pixels.
        baseline: float or (B,) tensor, metres; right camera at +baseline along x.
        min_disparity: lower bound of the disparity, pixels of the left view (> 0).

    Returns:
        xyz_left: (B, V, 3) left-camera frame, metres.
        xyz_right: (B, V, 3) right-camera frame, metres (same z as ``xyz_left``).
    """
    check_tensor(uv_left, "uv_left", (None, None, 2))
    B, V = uv_left.shape[:2]
    check_tensor(uv_right, "uv_right", (B, V, 2))
    check_tensor(K_left, "K_left", (B, 3, 3))
    check_tensor(K_right, "K_right", (B, 3, 3))
    b = _per_sample(baseline, B, uv_left, "baseline")  # (B,)
    K_left, K_right = K_left.to(uv_left.dtype), K_right.to(uv_left.dtype)

    ones = torch.ones_like(uv_left[..., 0])  # (B, V)
    rays_l = unproject(uv_left, ones, K_left)  # (B, V, 3), z = 1
    rays_r = unproject(uv_right, ones, K_right)  # (B, V, 3), z = 1
    fx_l = K_left[:, 0, 0, None]  # (B, 1)
    disparity = fx_l * (rays_l[..., 0] - rays_r[..., 0])  # (B, V) pixels of the left view
    disparity = soft_min_clamp(disparity, min_disparity)  # > 0 everywhere
    z = disparity_to_depth(disparity, fx_l, b[:, None], invalid="zero")  # (B, V) metres, eq. 1
    return rays_l * z[..., None], rays_r * z[..., None]  # (B, V, 3) each


def left_from_right_frame(xyz_right: Tensor, baseline) -> Tensor:
    """Move points from the right camera's frame to the left's: ``p + (b, 0, 0)``.

    xyz_right: (B, N, 3) float metres; baseline: float or (B,) metres.
    Returns (B, N, 3), left-camera frame (the common frame of eqs. 8-9).
    """
    check_tensor(xyz_right, "xyz_right", (None, None, 3))
    b = _per_sample(baseline, xyz_right.shape[0], xyz_right, "baseline")  # (B,)
    shift = torch.zeros_like(xyz_right[:, :1, :])  # (B, 1, 3)
    shift[..., 0] = b[:, None]
    return xyz_right + shift


# --------------------------------------------------------------------------- eq. 2
def disparity_from_depth(depth: Tensor, K: Tensor, baseline) -> tuple[Tensor, Tensor]:
    """Disparity map from a rendered depth map (eq. 2): ``d = fx b / depth``.

    Args:
        depth: (B, H, W) float camera z, metres, 0 where nothing was rendered
            (``RenderOutput.depth``).
        K: (B, 3, 3) float intrinsics of the rendered view (its ``fx`` is used).
        baseline: float or (B,) tensor, metres.

    Returns:
        disparity: (B, H, W) pixels, 0 where ``depth <= 0``; differentiable wrt depth
            (no NaN gradient from the empty pixels).
        mask: (B, H, W) same dtype, 1 where ``depth > 0`` else 0.
    """
    check_tensor(depth, "depth", (None, None, None))
    B = depth.shape[0]
    check_tensor(K, "K", (B, 3, 3))
    b = _per_sample(baseline, B, depth, "baseline")  # (B,)
    fx = K[:, 0, 0].to(depth.dtype)[:, None, None]  # (B, 1, 1) pixels
    disparity = depth_to_disparity(depth, fx, b[:, None, None], invalid="zero")  # (B, H, W), 0 off the mesh
    return disparity, (depth > 0).to(depth.dtype)


# --------------------------------------------------------------------------- eq. 3 input
def warp_with_disparity(
    image_src: Tensor,
    disparity_tgt: Tensor,
    direction: Direction,
    cx_offset=0.0,
) -> tuple[Tensor, Tensor]:
    """Synthesise one view from the other by inverse warping with the target's disparity.

    For each target pixel centre ``x_t = i + 0.5`` (row ``y`` shared) the source is
    sampled bilinearly at

    * ``"left_to_right"`` (image_src = left, target = right, eq. 3's ``~I_r``):
      ``x_l = x_r + d_r + (cx_l - cx_r)``;
    * ``"right_to_left"`` (image_src = right, target = left, ``~I_l``):
      ``x_r = x_l - d_l - (cx_l - cx_r)``;

    with ``grid_sample(align_corners=False)``, whose normalised ``-1``/``+1`` are the
    outer edges of the first/last pixel, i.e. ``g = 2 x / W - 1`` in this module's
    pixel convention. A sample is *valid* where the target disparity is defined
    (``> 0``) and ``0.5 <= x_src <= W_src - 0.5`` (both bilinear neighbours inside
    the source image); invalid pixels of the warped image are 0 (the paper warps
    the hand region only and sets the background to zero). Differentiable wrt the
    source image and the disparity.

    Args:
        image_src: (B, C, H, W_src) float source view.
        disparity_tgt: (B, H, W) float disparity of the target view, pixels
            (``d = fx b / z``, 0 where undefined, e.g. from
            :func:`handtools.core.render.disparity.render_disparity`).
            The views must share rows and pixel scale (same ``fy``, ``cy``; ``fx``
            of the target is the one in ``d``).
        direction: ``"left_to_right"`` or ``"right_to_left"``.
        cx_offset: ``cx_left - cx_right`` in pixels, float or (B,) tensor (0 for
            uncropped rectified images).

    Returns:
        warped: (B, C, H, W) float target view synthesised from the source, 0 where
            invalid.
        valid: (B, H, W) {0, 1}, same dtype.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    check_tensor(image_src, "image_src", (None, None, None, None))
    B, C, H, W_src = image_src.shape
    check_tensor(disparity_tgt, "disparity_tgt", (B, H, None))
    W = disparity_tgt.shape[2]
    disparity_tgt = disparity_tgt.to(image_src.dtype)
    off = _per_sample(cx_offset, B, image_src, "cx_offset")[:, None, None]  # (B, 1, 1)

    cols = torch.arange(W, device=image_src.device, dtype=image_src.dtype) + 0.5  # (W,) pixel centres
    rows = torch.arange(H, device=image_src.device, dtype=image_src.dtype) + 0.5  # (H,)
    sign = 1.0 if direction == "left_to_right" else -1.0
    x_src = cols[None, None, :] + sign * (disparity_tgt + off)  # (B, H, W) source pixels
    y_src = rows[None, :, None].expand(B, H, W)  # (B, H, W) rows are shared
    grid = torch.stack([2.0 * x_src / W_src - 1.0, 2.0 * y_src / H - 1.0], dim=-1)  # (B, H, W, 2)
    sampled = F.grid_sample(image_src, grid, mode="bilinear", padding_mode="border",
                            align_corners=False)  # (B, C, H, W)
    valid = (disparity_tgt > 0) & (x_src >= 0.5) & (x_src <= W_src - 0.5)  # (B, H, W)
    valid = valid.to(image_src.dtype)
    return sampled * valid[:, None], valid
