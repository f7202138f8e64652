"""Left hands as right hands: S2HAND's network sees right hands only, so a left hand's
crop is mirrored (u -> W - u) before the network and its outputs mirrored back."""

from __future__ import annotations

import numpy as np


def mirror_crop(image: np.ndarray, K: np.ndarray, keypoints: np.ndarray | None = None):
    """Mirror one crop left-right.

    image (H, W, 3); K (3, 3) pixels; keypoints (21, 2 or 3) pixels or None.
    Mirroring the image is negating the camera x axis: with ``u' = W - u`` the
    intrinsics become ``cx' = W - cx`` and skew ``s' = -s``. Returns the three (copies).
    """
    W = image.shape[1]
    img = np.ascontiguousarray(image[:, ::-1])
    K2 = np.array(K, dtype=np.float32, copy=True)
    K2[0, 2] = W - K2[0, 2]
    K2[0, 1] = -K2[0, 1]
    kp = None
    if keypoints is not None:
        kp = np.array(keypoints, dtype=np.float32, copy=True)
        kp[:, 0] = W - kp[:, 0]
    return img, K2, kp


def unmirror_points(x: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Camera-frame points (B, N, 3) of mirrored crops back to the real camera: x -> -x
    where ``left`` (B,) is true."""
    x = np.array(x, copy=True)
    x[left, :, 0] *= -1
    return x
