"""Pinhole camera geometry: projection, crops, stereo disparity and triangulation.

Conventions (DESIGN.md): OpenCV-style cameras (x right, y down, z forward), metres,
intrinsics ``K`` in pixels of the stored image, ``T_view`` world-to-camera 4x4.

**Pixel coordinates are continuous with pixel ``i`` covering ``[i, i + 1)``**: the
centre of pixel ``(i, j)`` is ``(i + 0.5, j + 0.5)`` and ``u = fx x / z + cx``. With
this convention, cropping and resizing are exact affine maps of ``(u, v)`` with no
half-pixel terms (:func:`crop_affine`); :func:`affine_to_opencv` converts such a map
for ``cv2.warpAffine``, whose pixel centres are at integers.

Every function takes torch tensors (device and dtype from the inputs; leading batch
dimensions broadcast) and also accepts numpy arrays; when the first argument is a
numpy array the result is numpy too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Invalid = Literal["raise", "zero", "nan"]


# --------------------------------------------------------------------------- helpers
def _prepare(*xs):
    """Convert inputs to tensors sharing one floating dtype and the first tensor's device.

    Returns (tensors, to_numpy) where to_numpy says whether the first input was numpy.
    """
    first_numpy = isinstance(xs[0], np.ndarray)
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtypes = [x.dtype for x in tensors if x.is_floating_point()]
    dtypes += [torch.from_numpy(np.asarray(x)).dtype for x in xs
               if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)]
    dtype = torch.float32
    for d in dtypes:
        dtype = torch.promote_types(dtype, d)
    # Python numbers go straight to ``dtype`` (via float32 they would lose precision).
    out = [None if x is None
           else torch.as_tensor(x, device=device).to(dtype)
           if isinstance(x, (torch.Tensor, np.ndarray))
           else torch.as_tensor(x, dtype=dtype, device=device)
           for x in xs]
    return out, first_numpy


def _out(x: torch.Tensor, to_numpy: bool):
    return x.detach().cpu().numpy() if to_numpy else x


def _check_last(x: torch.Tensor, name: str, *dims: int) -> None:
    if x.ndim < len(dims) or tuple(x.shape[x.ndim - len(dims):]) != dims:
        want = ", ".join(["..."] + [str(d) for d in dims])
        raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")


def _guard(value: torch.Tensor, bad: torch.Tensor, invalid: Invalid, what: str):
    """Apply the invalid-value policy: raise, or replace entries where ``bad`` by 0 / NaN."""
    if invalid == "raise":
        if bool(bad.any()):
            raise ValueError(f"{int(bad.sum())} {what}; pass invalid='zero' or "
                             "invalid='nan' to mask them instead")
        return value
    if invalid not in ("zero", "nan"):
        raise ValueError(f"invalid must be 'raise', 'zero' or 'nan', got {invalid!r}")
    fill = 0.0 if invalid == "zero" else float("nan")
    return torch.where(bad, torch.full_like(value, fill), value)


# --------------------------------------------------------------------------- projection
def project(points, K):
    """Project camera-frame points to pixels.

    Args:
        points: (..., N, 3) camera frame, metres, z > 0 (not checked: z <= 0 gives
            inf or mirrored pixels).
        K: (..., 3, 3) intrinsics, pixels; batch dims broadcast with ``points``.

    Returns:
        (..., N, 2) pixel coordinates ``u = fx x / z + s y / z + cx``, ``v = fy y / z + cy``
        (any K whose last row is (0, 0, 1), e.g. after :func:`update_K`).
    """
    (points, K), to_np = _prepare(points, K)
    _check_last(points, "points", 3)
    _check_last(K, "K", 3, 3)
    uvw = points @ K.transpose(-1, -2)  # (..., N, 3)
    return _out(uvw[..., :2] / uvw[..., 2:3], to_np)


def unproject(uv, z, K):
    """Back-project pixels at known depth to camera-frame points (inverse of :func:`project`).

    Args:
        uv: (..., N, 2) pixels. z: (..., N) or (..., N, 1) depth along the optical
            axis, metres. K: (..., 3, 3) intrinsics.

    Returns:
        (..., N, 3) camera-frame points, metres.
    """
    (uv, z, K), to_np = _prepare(uv, z, K)
    _check_last(uv, "uv", 2)
    _check_last(K, "K", 3, 3)
    if z.ndim == uv.ndim - 1:
        z = z[..., None]
    if z.shape[-1] != 1:
        raise ValueError(f"z must have shape (..., N) or (..., N, 1), got {tuple(z.shape)}")
    homo = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)  # (..., N, 3)
    rays = homo @ torch.linalg.inv(K).transpose(-1, -2)  # (..., N, 3), z = 1
    return _out(rays * z, to_np)


# --------------------------------------------------------------------------- crops
def update_K(K, A):
    """Intrinsics after an affine map of pixel coordinates ``uv' = A @ (u, v, 1)``.

    Args:
        K: (..., 3, 3) intrinsics. A: (..., 2, 3) affine map in the continuous pixel
            convention of this module (e.g. from :func:`crop_affine`).

    Returns:
        (..., 3, 3) ``[A; 0 0 1] @ K``: projecting with it equals mapping the pixels
        projected with ``K`` by ``A`` (rotations or shear give a general 3x3 K).
    """
    (K, A), to_np = _prepare(K, A)
    _check_last(K, "K", 3, 3)
    _check_last(A, "A", 2, 3)
    last = torch.zeros_like(A[..., :1, :])
    last[..., 0, 2] = 1.0
    A3 = torch.cat([A, last], dim=-2)  # (..., 3, 3)
    return _out(A3 @ K, to_np)


def crop_affine(box, out_size: tuple[int, int]):
    """Affine map of pixel coordinates for cropping ``box`` and resizing it to ``out_size``.

    Args:
        box: (..., 4) x0, y0, x1, y1 in pixels (continuous; may exceed the image).
        out_size: (width, height) of the output crop in pixels.

    Returns:
        (..., 2, 3) ``A`` with ``u' = (u - x0) * W / (x1 - x0)``, ``v' = (v - y0) * H / (y1 - y0)``:
        scale then translate, exact for the edges-at-integers convention.
    """
    (box,), to_np = _prepare(box)
    _check_last(box, "box", 4)
    width, height = out_size
    if width <= 0 or height <= 0:
        raise ValueError(f"out_size must be positive (width, height), got {out_size}")
    x0, y0, x1, y1 = box.unbind(-1)
    if bool(((x1 <= x0) | (y1 <= y0)).any()):
        raise ValueError("box must have x1 > x0 and y1 > y0")
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    zero = torch.zeros_like(sx)
    A = torch.stack([torch.stack([sx, zero, -sx * x0], -1),
                     torch.stack([zero, sy, -sy * y0], -1)], -2)  # (..., 2, 3)
    return _out(A, to_np)


def crop_K(K, box, out_size: tuple[int, int]):
    """Intrinsics of the crop ``box`` (x0, y0, x1, y1) of an image resized to ``out_size``
    (width, height). K: (..., 3, 3), box: (..., 4) -> (..., 3, 3)."""
    return update_K(K, crop_affine(box, out_size))


def affine_to_opencv(A):
    """Convert an affine pixel map from this module's convention (pixel ``i`` covers
    ``[i, i+1)``) to OpenCV's (pixel ``i`` centred at ``i``), for ``cv2.warpAffine``.

    A: (..., 2, 3) -> (..., 2, 3), same linear part, translation
    ``t + 0.5 * (a_0 + a_1) - 0.5`` per row.
    """
    (A,), to_np = _prepare(A)
    _check_last(A, "A", 2, 3)
    out = A.clone()
    out[..., 2] = A[..., 2] + 0.5 * (A[..., 0] + A[..., 1]) - 0.5
    return _out(out, to_np)


# --------------------------------------------------------------------------- depth
def depth_to_disparity(z, f, baseline, invalid: Invalid = "raise"):
    """Disparity of a rectified pair, ``d = f * b / z``.

    Args:
        z: (...) depth, metres. f: focal length, pixels. baseline: metres.
            ``f`` and ``baseline`` are floats or tensors broadcasting with ``z``.
        invalid: what to do where ``z <= 0`` (e.g. 0 = no measurement): ``"raise"``
            ValueError, ``"zero"`` or ``"nan"`` put that value there.

    Returns:
        (...) disparity, pixels.
    """
    (z, f, baseline), to_np = _prepare(z, f, baseline)
    bad = z <= 0
    d = f * baseline / torch.where(bad, torch.ones_like(z), z)
    return _out(_guard(d, bad, invalid, "non-positive depths"), to_np)


def disparity_to_depth(d, f, baseline, invalid: Invalid = "raise"):
    """Depth from disparity of a rectified pair, ``z = f * b / d``.

    Args:
        d: (...) disparity, pixels. f: focal length, pixels. baseline: metres.
        invalid: what to do where ``d <= 0`` (no finite depth): ``"raise"``
            ValueError, ``"zero"`` (DESIGN's "no measurement") or ``"nan"``.

    Returns:
        (...) depth, metres.
    """
    (d, f, baseline), to_np = _prepare(d, f, baseline)
    bad = d <= 0
    z = f * baseline / torch.where(bad, torch.ones_like(d), d)
    return _out(_guard(z, bad, invalid, "non-positive disparities"), to_np)


# --------------------------------------------------------------------------- rigid motion
def transform_points(T, points):
    """Apply 4x4 transforms: ``R @ p + t``.

    T: (..., 4, 4) (e.g. world-to-camera ``T_view``). points: (..., N, 3) -> (..., N, 3).
    """
    (T, points), to_np = _prepare(T, points)
    _check_last(T, "T", 4, 4)
    _check_last(points, "points", 3)
    out = points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]
    return _out(out, to_np)


def points_between_views(points, T_from, T_to):
    """Move points from one camera's frame to another's.

    Args:
        points: (..., N, 3) in the frame of the view whose world-to-camera is ``T_from``.
        T_from, T_to: (..., 4, 4) world-to-camera transforms.

    Returns:
        (..., N, 3) in the frame of ``T_to``: ``T_to @ T_from^-1 @ p``.
    """
    (points, T_from, T_to), to_np = _prepare(points, T_from, T_to)
    _check_last(T_from, "T_from", 4, 4)
    _check_last(T_to, "T_to", 4, 4)
    rel = T_to @ torch.linalg.inv(T_from)  # (..., 4, 4)
    return _out(transform_points(rel, points), to_np)


# --------------------------------------------------------------------------- stereo
def rectified_stereo_K_T(f, cx, cy, baseline, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None):
    """Intrinsics and world-to-camera transforms of a rectified stereo pair.

    View 0 is the left camera and the world frame (identity ``T``); view 1 is the
    right camera, ``baseline`` metres along +x, so its world-to-camera translation
    is ``(-baseline, 0, 0)``. Both share ``f`` (pixels) and the principal point.

    Args: floats or tensors of one shape ``(...)``; tensors set dtype and device.

    Returns:
        K: (..., 2, 3, 3) and T_view: (..., 2, 4, 4).
    """
    ref = next((x for x in (f, cx, cy, baseline) if isinstance(x, torch.Tensor)), None)
    if ref is not None:
        dtype = ref.dtype if ref.is_floating_point() else dtype
        device = ref.device
    f, cx, cy, baseline = (torch.as_tensor(x, dtype=dtype, device=device)
                           for x in (f, cx, cy, baseline))
    f, cx, cy, baseline = torch.broadcast_tensors(f, cx, cy, baseline)
    zero, one = torch.zeros_like(f), torch.ones_like(f)
    K = torch.stack([torch.stack([f, zero, cx], -1),
                     torch.stack([zero, f, cy], -1),
                     torch.stack([zero, zero, one], -1)], -2)  # (..., 3, 3)
    K = torch.stack([K, K], -3)  # (..., 2, 3, 3)
    T = torch.eye(4, dtype=dtype, device=device).expand(*f.shape, 2, 4, 4).clone()
    T[..., 1, 0, 3] = -baseline
    return K, T


def triangulate_rectified(uv_left, uv_right, K_left, K_right, baseline,
                          invalid: Invalid = "raise"):
    """Triangulate matches of a rectified pair, in the left camera's frame.

    The views may be different crops/resizes of the rectified pair (different principal
    points and focal lengths): with normalised coordinates ``x = (u - cx) / fx``,
    ``z = b / (x_l - x_r)``; for equal ``fx`` that is ``fx * b / d`` with disparity
    ``d = (u_l - cx_l) - (u_r - cx_r)``. ``y`` comes from the left view.

    Args:
        uv_left, uv_right: (..., N, 2) pixels in each view.
        K_left, K_right: (..., 3, 3) intrinsics of the (cropped) views, zero skew.
        baseline: metres, float or (...) tensor; right camera at +baseline along x.
        invalid: where the disparity is not positive: ``"raise"``, ``"zero"`` or ``"nan"``.

    Returns:
        (..., N, 3) points in the left camera frame, metres.
    """
    (uv_left, uv_right, K_left, K_right, baseline), to_np = _prepare(
        uv_left, uv_right, K_left, K_right, baseline)
    _check_last(uv_left, "uv_left", 2)
    _check_last(uv_right, "uv_right", 2)
    _check_last(K_left, "K_left", 3, 3)
    _check_last(K_right, "K_right", 3, 3)
    fxl, fyl = K_left[..., None, 0, 0], K_left[..., None, 1, 1]  # (..., 1)
    cxl, cyl = K_left[..., None, 0, 2], K_left[..., None, 1, 2]
    fxr, cxr = K_right[..., None, 0, 0], K_right[..., None, 0, 2]
    xl = (uv_left[..., 0] - cxl) / fxl  # (..., N)
    yl = (uv_left[..., 1] - cyl) / fyl
    xr = (uv_right[..., 0] - cxr) / fxr
    disparity = xl - xr  # normalised disparity, = d / f
    bad = disparity <= 0
    b = baseline[..., None] if baseline.ndim > 0 else baseline
    z = b / torch.where(bad, torch.ones_like(disparity), disparity)
    pts = torch.stack([xl * z, yl * z, z], dim=-1)  # (..., N, 3)
    pts = _guard(pts, bad[..., None].expand_as(pts), invalid, "non-positive disparities")
    return _out(pts, to_np)
