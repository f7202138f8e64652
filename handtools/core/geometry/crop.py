"""Hand-centred square crops: boxes, image/mask/depth warping, intrinsics and keypoints.

Coordinates: continuous pixels, pixel ``i`` covering ``[i, i + 1)`` (as everywhere in
handtools), for images, keypoints and ``K`` alike. A square box ``(x0, y0, x1, y1)``
(``x1 - x0 == y1 - y0``) cropped to ``out_size`` pixels is the affine map::

    s = out_size / (x1 - x0)
    x_crop = (x - x0) * s,   y_crop = (y - y0) * s            A = [[s, 0, -s x0],
                                                                 [0, s, -s y0],
                                                                 [0, 0, 1]]

so the crop's intrinsics are ``K_crop = A @ K`` (``f -> s f``, ``c -> s (c - x0)``) and the
crop's rays are exactly those of the original pixels.

Stereo: :func:`stereo_crop_boxes` gives both views the same size and the same rows
(``y0``, ``y1``), each centred horizontally on its own hand. The two crops then stay a
rectified pair (same ``fy``, ``cy`` and rows, epipolar lines horizontal) whose principal
points differ by the crop offsets; with ``x_offset = x0_right - x0_left``::

    disparity_original = (u_l' - u_r') / s - x_offset
    z = f' b / ((u_l' - cx_l') - (u_r' - cx_r'))               (f' = s f, exact)
"""

from __future__ import annotations

import cv2
import numpy as np

CENTER_POLICIES = ("root", "bbox", "gt")
#: Default crop side as a multiple of the hand's extent.
DEFAULT_SCALE = 1.4
#: Default smallest crop side in pixels of the original image.
DEFAULT_MIN_SIZE = 32.0
#: Joint the ``root`` policy centres on: the wrist, the project's root joint.
ROOT_JOINT = 0

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def _as_box(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {box!r}")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box must have x1 > x0 and y1 > y0, got {b.tolist()}")
    return b


def _as_square(box) -> np.ndarray:
    b = _as_box(box)
    w, h = b[2] - b[0], b[3] - b[1]
    if abs(w - h) > 1e-6 * max(w, h):
        raise ValueError(f"crop box must be square, got width {w} and height {h}")
    return b


def _check_out_size(out_size) -> int:
    if int(out_size) != out_size or int(out_size) < 1:
        raise ValueError(f"out_size must be a positive integer, got {out_size!r}")
    return int(out_size)


def square_box(center, size: float) -> np.ndarray:
    """Square box of side ``size`` pixels centred on ``center`` (u, v) pixels.

    Returns:
        (4,) float64: x0, y0, x1, y1 in pixels.
    """
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (2,) or not np.isfinite(c).all():
        raise ValueError(f"center must be (u, v), got {center!r}")
    if not size > 0:
        raise ValueError(f"size must be > 0, got {size}")
    half = 0.5 * float(size)
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def hand_crop_box(center: str = "bbox", keypoints=None, bbox=None, gt_keypoints=None,
                  scale: float = DEFAULT_SCALE, min_size: float = DEFAULT_MIN_SIZE,
                  root_joint: int = ROOT_JOINT, min_confidence: float = 0.0) -> np.ndarray:
    """Square crop box around a hand.

    Policies (``center``):
        ``bbox``: centre of ``bbox`` (or of the keypoints' tight box when no ``bbox`` is
            given); side = ``scale`` x the box's larger side.
        ``root``: the root keypoint (``root_joint``, the wrist by default) of
            ``keypoints``; side = ``scale`` x 2 x the largest horizontal or vertical
            distance of a keypoint from the root (so the whole hand fits).
        ``gt``: like ``bbox`` but from the tight box of ``gt_keypoints`` (projected
            ground-truth joints).

    Args:
        keypoints: (21, 2|3) float, u, v in pixels (+ confidence); joints with
            confidence below ``min_confidence`` are ignored.
        bbox: (4,) float, x0, y0, x1, y1 in pixels.
        gt_keypoints: (J, 2|3) float, pixels.
        scale: crop side over hand extent (> 0).
        min_size: smallest crop side in pixels.

    Returns:
        (4,) float64 square box x0, y0, x1, y1 in pixels (may extend past the image).
    """
    if center not in CENTER_POLICIES:
        raise ValueError(f"center must be one of {CENTER_POLICIES}, got {center!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")

    def points(kp, name):
        if kp is None:
            raise ValueError(f"center={center!r} needs {name}")
        p = np.asarray(kp, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] not in (2, 3) or p.shape[0] == 0:
            raise ValueError(f"{name} must be (J, 2|3) pixels, got {p.shape}")
        ok = np.isfinite(p[:, :2]).all(1)
        if p.shape[1] == 3:
            ok &= p[:, 2] >= min_confidence
        return p[:, :2], ok

    if center == "root":
        uv, ok = points(keypoints, "keypoints")
        if not ok[root_joint]:
            raise ValueError(f"root joint {root_joint} is missing or below min_confidence")
        c = uv[root_joint]
        extent = 2.0 * float(np.abs(uv[ok] - c).max())
    else:
        if center == "bbox" and bbox is not None:
            b = _as_box(bbox)
        else:
            uv, ok = points(gt_keypoints if center == "gt" else keypoints,
                            "gt_keypoints" if center == "gt" else "keypoints or bbox")
            if not ok.any():
                raise ValueError("no usable keypoint for the crop box")
            lo, hi = uv[ok].min(0), uv[ok].max(0)
            b = np.array([lo[0], lo[1], hi[0], hi[1]])
        c = 0.5 * (b[:2] + b[2:])
        extent = float(max(b[2] - b[0], b[3] - b[1]))
    return square_box(c, max(scale * extent, float(min_size), 1e-6))


def stereo_crop_boxes(box_left, box_right) -> tuple[np.ndarray, np.ndarray, float]:
    """Make the crop boxes of a rectified stereo pair a rectified pair again.

    Both boxes get the larger of the two sides and the same rows (centred on the mean
    of the two vertical centres); each keeps its own horizontal centre.

    Args:
        box_left, box_right: (4,) float, x0, y0, x1, y1 in pixels of each view.

    Returns:
        ``(box_left, box_right, x_offset)``: two (4,) float64 square boxes with equal
        ``y0``, ``y1`` and side, and ``x_offset = x0_right - x0_left`` in original pixels
        (disparity bookkeeping: ``d_original = (u_l' - u_r') / s - x_offset``).
    """
    bl, br = _as_box(box_left), _as_box(box_right)
    side = max(bl[2] - bl[0], bl[3] - bl[1], br[2] - br[0], br[3] - br[1])
    cy = 0.25 * (bl[1] + bl[3] + br[1] + br[3])
    out_l = square_box((0.5 * (bl[0] + bl[2]), cy), side)
    out_r = square_box((0.5 * (br[0] + br[2]), cy), side)
    return out_l, out_r, float(out_r[0] - out_l[0])


def crop_affine(box, out_size: int) -> np.ndarray:
    """The affine map from original pixel coordinates to crop pixel coordinates.

    Args:
        box: (4,) square box x0, y0, x1, y1 in pixels.
        out_size: crop side in pixels.

    Returns:
        (3, 3) float64 ``A`` with ``[x_crop, y_crop, 1] = A @ [x, y, 1]``.
    """
    b = _as_square(box)
    s = _check_out_size(out_size) / (b[2] - b[0])
    return np.array([[s, 0.0, -s * b[0]], [0.0, s, -s * b[1]], [0.0, 0.0, 1.0]])


def crop_K(K, box, out_size: int) -> np.ndarray:
    """Intrinsics of the crop: ``A @ K`` (``f -> s f``, ``c -> s (c - x0)``).

    The same update as :func:`handtools.core.geometry.cameras.crop_K` (a test checks they agree),
    done in numpy here because the torch round trip costs ~0.3 ms per call, a third of
    the image warp, on the per-crop hot path.

    Args:
        K: (..., 3, 3) float pinhole intrinsics in pixels of the original image.
        box: (4,) square box in pixels.
        out_size: crop side in pixels.

    Returns:
        (..., 3, 3) array of ``K``'s floating dtype (float64 for integer input).
    """
    K = np.asarray(K)
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (..., 3, 3), got {K.shape}")
    dtype = K.dtype if np.issubdtype(K.dtype, np.floating) else np.float64
    return (crop_affine(box, out_size) @ K.astype(np.float64)).astype(dtype)


def crop_points(points, box, out_size: int) -> np.ndarray:
    """Map pixel points into the crop; columns after u, v (e.g. confidence) are kept.

    Args:
        points: (..., 2+) float, u, v in original pixels.

    Returns:
        (..., 2+) array like ``points`` with u, v in crop pixels.
    """
    p = np.array(points, dtype=np.result_type(np.asarray(points).dtype, np.float32), copy=True)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"points must be (..., 2+), got {p.shape}")
    A = crop_affine(box, out_size)
    p[..., 0] = A[0, 0] * p[..., 0] + A[0, 2]
    p[..., 1] = A[1, 1] * p[..., 1] + A[1, 2]
    return p


def uncrop_points(points, box, out_size: int) -> np.ndarray:
    """Inverse of :func:`crop_points`: crop pixels back to original pixels."""
    p = np.array(points, dtype=np.result_type(np.asarray(points).dtype, np.float32), copy=True)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"points must be (..., 2+), got {p.shape}")
    A = crop_affine(box, out_size)
    p[..., 0] = (p[..., 0] - A[0, 2]) / A[0, 0]
    p[..., 1] = (p[..., 1] - A[1, 2]) / A[1, 1]
    return p


def resize_crops(images, K, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample square crops to ``out_size`` pixels and scale their intrinsics to match.

    The same continuous map as :func:`crop_image` with the whole crop as the box
    (``x' = s x``, pixel corners at integers): ``cv2.resize`` follows it (centre-aligned),
    with area averaging when shrinking (no aliasing) and bilinear when enlarging.
    Points predicted in the resized crop go back with ``uncrop_points(p, box, out_size)``,
    ``box = (0, 0, side, side)``.

    Args:
        images: (B, S, S, 3) uint8. K: (B, 3, 3) pixels of those crops.
        out_size: new side in pixels.

    Returns:
        ((B, out_size, out_size, 3) uint8, (B, 3, 3) K of K's dtype).
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[1] != imgs.shape[2]:
        raise ValueError(f"images must be square crops (B, S, S, C), got {imgs.shape}")
    n, side = _check_out_size(out_size), imgs.shape[1]
    flag = cv2.INTER_AREA if n < side else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(im, (n, n), interpolation=flag) for im in imgs]) if len(imgs) else imgs[:, :n, :n]
    return out.reshape((len(imgs), n, n) + imgs.shape[3:]), crop_K(K, (0, 0, side, side), n)


def crop_image(image, box, out_size: int, interpolation: str = "bilinear",
               border_value: float = 0) -> np.ndarray:
    """Warp the square ``box`` of an image, mask or depth map to ``out_size`` pixels.

    Uses ``cv2.warpAffine``; OpenCV puts pixel centres at integer coordinates, so the
    continuous map ``A`` becomes ``x_cv' = s x_cv + s (0.5 - x0) - 0.5`` (the same
    conversion as ``cameras.affine_to_opencv``, inlined on this hot path). Areas outside
    the image are filled with ``border_value``.

    Args:
        image: (H, W, C) or (H, W) array, uint8 or float32 (RGB image, 0/255 mask, depth
            in metres).
        box: (4,) square box in pixels.
        out_size: crop side in pixels.
        interpolation: ``'bilinear'`` for images, ``'nearest'`` for masks and depth (no
            mixed labels or depths across edges).

    Returns:
        (out_size, out_size[, C]) array of the input's dtype.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C), got {img.shape}")
    if interpolation not in _INTERPOLATION:
        raise ValueError(f"interpolation must be one of {tuple(_INTERPOLATION)}, got {interpolation!r}")
    n = _check_out_size(out_size)
    A = crop_affine(box, n)
    s = A[0, 0]
    M = np.array([[s, 0.0, A[0, 2] + 0.5 * s - 0.5],
                  [0.0, s, A[1, 2] + 0.5 * s - 0.5]])
    return cv2.warpAffine(img, M, (n, n), flags=_INTERPOLATION[interpolation],
                          borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(float(border_value),) * 4)


def full_frame_box(image_size) -> np.ndarray:
    """The square box centred on the image that holds the whole frame.

    Args:
        image_size: (W, H) in pixels.

    Returns:
        (4,) float64 box of side ``max(W, H)`` (the short side is padded when cropped).
    """
    w, h = (float(t) for t in image_size)
    if not (w > 0 and h > 0):
        raise ValueError(f"image_size must be positive (W, H), got {image_size!r}")
    return square_box((0.5 * w, 0.5 * h), max(w, h))


def _view_box(center, keypoints, bbox, gt_keypoints, scale, min_size):
    """One view's box, or None when the view holds no usable hand (see view_crop_boxes)."""
    kp = None
    if keypoints is not None:
        kp = np.asarray(keypoints, dtype=np.float64)
        conf_ok = kp[:, 2] > 0 if kp.shape[-1] == 3 else np.ones(len(kp), bool)
        if not (conf_ok & np.isfinite(kp[:, :2]).all(1)).any():
            kp = None  # a view the detector missed: confidence 0 everywhere
    if center == "gt":
        uv = np.asarray(gt_keypoints, dtype=np.float64)
        if not np.isfinite(uv).all():
            return None
        return hand_crop_box("gt", gt_keypoints=uv, scale=scale, min_size=min_size)
    if center == "root":
        if kp is None or (kp.shape[-1] == 3 and kp[ROOT_JOINT, 2] <= 0):
            return None
        return hand_crop_box("root", keypoints=kp, scale=scale, min_size=min_size,
                             min_confidence=1e-12 if kp.shape[-1] == 3 else 0.0)
    b = None if bbox is None else np.asarray(bbox, dtype=np.float64)
    if b is not None and np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1]:
        return hand_crop_box("bbox", bbox=b, scale=scale, min_size=min_size)
    if kp is not None:
        return hand_crop_box("bbox", keypoints=kp, scale=scale, min_size=min_size,
                             min_confidence=1e-12 if kp.shape[-1] == 3 else 0.0)
    return None


def view_crop_boxes(center: str, image_size, keypoints=None, bbox=None, gt_keypoints=None,
                    scale: float = DEFAULT_SCALE, min_size: float = DEFAULT_MIN_SIZE,
                    stereo: bool = False):
    """Crop boxes of all V views of one sample, stereo-consistent when asked.

    A view holds no usable hand when its inputs for the policy are missing: ``bbox``
    zero/degenerate and no keypoint with confidence > 0 (``bbox``), root keypoint with
    confidence 0 (``root``), non-finite projected joints (``gt``). Such a view is cropped
    with the other stereo view's box (``stereo``), else with :func:`full_frame_box`.

    Args:
        center: ``root``, ``bbox`` or ``gt`` (see :func:`hand_crop_box`).
        image_size: (W, H) of the views in pixels.
        keypoints: (V, 21, 2|3) float pixels (+ confidence), or None.
        bbox: (V, 4) float pixels, or None.
        gt_keypoints: (V, J, 2) float pixels (projected ground-truth joints), for ``gt``.
        scale, min_size: see :func:`hand_crop_box`.
        stereo: V == 2 rectified pair: make the boxes a rectified pair with
            :func:`stereo_crop_boxes`.

    Returns:
        ``(boxes, x_offset, found)``: (V, 4) float64 square boxes in pixels; ``x_offset``
        = ``x0_right - x0_left`` in original pixels (``stereo``) else None; (V,) bool,
        whether the view's box came from a hand.
    """
    if center not in CENTER_POLICIES:
        raise ValueError(f"center must be one of {CENTER_POLICIES}, got {center!r}")
    if center == "gt" and gt_keypoints is None:
        raise ValueError("center='gt' needs gt_keypoints")
    arrays = [a for a in (keypoints, bbox, gt_keypoints) if a is not None]
    if not arrays:
        raise ValueError("view_crop_boxes needs keypoints, bbox or gt_keypoints")
    num_views = len(arrays[0])
    if any(len(a) != num_views for a in arrays):
        raise ValueError("keypoints, bbox and gt_keypoints must have the same number of views")
    if stereo and num_views != 2:
        raise ValueError(f"stereo needs 2 views, got {num_views}")
    boxes = [_view_box(center,
                       None if keypoints is None else keypoints[v],
                       None if bbox is None else bbox[v],
                       None if gt_keypoints is None else gt_keypoints[v], scale, min_size)
             for v in range(num_views)]
    found = np.array([b is not None for b in boxes])
    if stereo:
        if found[0] != found[1]:  # one view missed: use the other view's box
            boxes = [boxes[int(found[1])]] * 2
        elif not found.any():
            boxes = [full_frame_box(image_size)] * 2
        left, right, x_offset = stereo_crop_boxes(boxes[0], boxes[1])
        return np.stack([left, right]), x_offset, found
    boxes = [b if b is not None else full_frame_box(image_size) for b in boxes]
    return np.stack(boxes), None, found
