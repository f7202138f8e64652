"""Pieces every importer shares: the sample record, camera and label conversions.

Pixel convention (``handtools.core.geometry.cameras``): pixel ``i`` covers ``[i, i + 1)``, so
the image centre is ``(W / 2, H / 2)``. Calibrations from datasets and from OpenCV
put pixel centres at integers; :func:`K_from_opencv` adds the half pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from handtools.errors import InputError

#: Called with a one-line message for each bad sample that is skipped
#: (``--skip-bad``); ``None`` means a bad sample is an error.
OnBad = Optional[Callable[[str], None]]

#: Focal length guess for images without calibration: this factor times max(W, H)
#: (a field of view of about 45 degrees across the long side, typical of phone cameras).
FOCAL_GUESS_FACTOR = 1.2


@dataclass
class Record:
    """One sample of a source: its name, the files it reads, and how to load it.

    ``load()`` reads the pixels and returns the sample: a dict of numpy arrays named
    like the shard datasets without the N axis (``images`` (V, H, W, 3) uint8,
    ``K`` (V, 3, 3) float32, ``joints3d`` (21, 3) float32 metres, ...), plus
    ``source`` (str). It raises :class:`InputError` naming the file on a bad file.
    """

    source: str
    load: Callable[[], dict]
    files: tuple[Path, ...] = field(default_factory=tuple)


def bad(on_bad: OnBad, message: str) -> None:
    """Report a bad sample: raise :class:`InputError`, or pass it to ``on_bad`` to skip it."""
    if on_bad is None:
        raise InputError(message)
    on_bad(message)


def load_all(records: Iterable[Record], on_bad: OnBad = None) -> Iterator[dict]:
    """Load records in order; a record whose files are bad is skipped via ``on_bad``."""
    for rec in records:
        try:
            yield rec.load()
        except InputError as exc:
            bad(on_bad, str(exc))


# --------------------------------------------------------------------------- cameras
def K_from_opencv(K) -> np.ndarray:
    """(…, 3, 3) intrinsics with integer pixel centres -> handtools' convention (+0.5 px)."""
    K = np.array(K, dtype=np.float64)
    K[..., 0, 2] += 0.5 * K[..., 2, 2]
    K[..., 1, 2] += 0.5 * K[..., 2, 2]
    return K.astype(np.float32)


def guess_K(hw: tuple[int, int], focal: Optional[float] = None) -> np.ndarray:
    """(3, 3) float32 pinhole intrinsics for an H x W image, principal point at the centre.

    ``focal`` in pixels; without it, the guess ``FOCAL_GUESS_FACTOR * max(W, H)``.
    """
    h, w = hw
    f = float(focal) if focal is not None else FOCAL_GUESS_FACTOR * max(h, w)
    return np.array([[f, 0, w / 2.0], [0, f, h / 2.0], [0, 0, 1]], np.float32)


def check_K(K, where: str) -> np.ndarray:
    """Validate a 3x3 intrinsics matrix from a file; errors name ``where``."""
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: intrinsics are not a 3x3 matrix of numbers") from None
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise InputError(f"{where}: intrinsics must be a finite 3x3 matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
        raise InputError(f"{where}: not a pinhole intrinsics matrix (need fx, fy > 0 and last row 0 0 1)")
    return K


def letterbox(img: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``img`` to fit inside ``size`` = (H, W) keeping its aspect, pad with black, centred.

    Args:
        img: (H0, W0, 3) uint8. K: (3, 3) intrinsics of ``img``.

    Returns:
        The (H, W, 3) uint8 image and its (3, 3) float32 intrinsics (exact: the map
        ``u' = (W1 / W0) u + x0`` in the continuous pixel convention).
    """
    import cv2

    h, w = size
    h0, w0 = img.shape[:2]
    s = min(h / h0, w / w0)
    w1, h1 = max(1, min(w, round(w0 * s))), max(1, min(h, round(h0 * s)))
    x0, y0 = (w - w1) // 2, (h - h1) // 2
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out = np.zeros((h, w, 3), np.uint8)
    out[y0 : y0 + h1, x0 : x0 + w1] = cv2.resize(img, (w1, h1), interpolation=interp)
    sx, sy = w1 / w0, h1 / h0
    A = np.array([[sx, 0, x0], [0, sy, y0], [0, 0, 1]], np.float64)
    return out, (A @ np.asarray(K, np.float64)).astype(np.float32)


# --------------------------------------------------------------------------- labels
def keypoints_and_bbox(
    joints3d: np.ndarray, K: np.ndarray, T_view: np.ndarray, hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Project ground-truth joints into every view.

    Args:
        joints3d: (21, 3) metres, frame of view 0. K: (V, 3, 3). T_view: (V, 4, 4)
            world(view 0)-to-camera. hw: image (H, W).

    Returns:
        keypoints2d (V, 21, 3) float32: u, v in pixels, confidence 1 (0 for joints
        behind the camera); bbox (V, 4) float32: the keypoints' tight box x0, y0, x1,
        y1 clipped to the image.
    """
    h, w = hw
    j = np.asarray(joints3d, np.float64)
    kps, boxes = [], []
    for Kv, Tv in zip(np.asarray(K, np.float64), np.asarray(T_view, np.float64)):
        pc = j @ Tv[:3, :3].T + Tv[:3, 3]  # (21, 3) camera frame
        front = pc[:, 2] > 1e-6
        z = np.where(front, pc[:, 2], 1.0)
        uv = (pc[:, :2] / z[:, None]) @ Kv[:2, :2].T + Kv[:2, 2]  # (21, 2)
        uv = np.where(front[:, None], uv, 0.0)
        kps.append(np.concatenate([uv, front[:, None].astype(np.float64)], 1))
        if front.any():
            lo, hi = uv[front].min(0), uv[front].max(0)
            boxes.append(np.clip([lo[0], lo[1], hi[0], hi[1]], 0, [w, h, w, h]))
        else:
            boxes.append(np.zeros(4))
    return np.asarray(kps, np.float32), np.asarray(boxes, np.float32)


def read_mask(path: Path, hw: tuple[int, int], threshold: int = 128) -> np.ndarray:
    """(H, W) uint8 0/255 mask from an image file: pixels >= ``threshold`` (any channel max) are hand."""
    import imageio.v3 as iio

    try:
        m = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for unreadable files
        raise InputError(f"{path}: unreadable mask image ({type(exc).__name__})") from None
    if m.ndim == 3:
        m = m[..., :3].max(-1)
    if m.shape != tuple(hw):
        raise InputError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, image is {hw[1]}x{hw[0]}")
    return np.where(m >= threshold, 255, 0).astype(np.uint8)


def read_views(paths: Sequence[Path], hw: Optional[tuple[int, int]] = None) -> np.ndarray:
    """(V, H, W, 3) uint8 from one file per view; all views (and ``hw`` if given) must agree."""
    from handtools.io.images import read_image

    imgs = []
    for p in paths:
        img = read_image(p)
        want = hw if hw is not None else (imgs[0].shape[:2] if imgs else None)
        if want is not None and img.shape[:2] != tuple(want):
            raise InputError(f"{p}: image is {img.shape[1]}x{img.shape[0]}, expected {want[1]}x{want[0]}")
        imgs.append(img)
    return np.stack(imgs)


def rotate_axis_angle(R: np.ndarray, axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of ``R @ rot(axis_angle)``: re-expresses a global rotation in a new frame."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_matrix(R) * Rotation.from_rotvec(np.asarray(axis_angle, np.float64))).as_rotvec()


def finite(arr, where: str, what: str, shape: tuple) -> np.ndarray:
    """``arr`` as float64 of ``shape`` with finite values, else :class:`InputError` naming ``where``."""
    try:
        a = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} is not numeric") from None
    if a.shape != shape:
        raise InputError(f"{where}: {what} has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{where}: {what} contains NaN or inf")
    return a
