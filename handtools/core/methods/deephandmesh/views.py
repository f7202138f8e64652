"""Depth maps of a capture cut to square windows around the hand (the paper renders 256 x 256
depth maps, §7; a CPU run uses smaller ones). Pure numpy."""

from __future__ import annotations

import numpy as np


def crop_depth_views(depth: np.ndarray, K: np.ndarray, T_view: np.ndarray, joints: np.ndarray, size: int,
                     margin: float = 1.5, aligned: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Square windows around the hand in every view, resampled (nearest) to ``size`` pixels.

    Args:
        depth: (F, C, H, W) metres, 0 = none. K: (F, C, 3, 3). T_view: (F, C, 4, 4)
            world-to-camera. joints: (F, 21, 3) metres, world frame (NaN allowed where
            unknown; at least one joint per frame must be finite).
        size: output side in pixels. margin: window side / the joints' extent in the image
            (at least; ``aligned`` rounds it up).
        aligned: step a whole number of image pixels per window pixel, with window pixel
            centres on image pixel centres, so each window pixel holds the measured depth of
            exactly the ray the renderer casts through it. Otherwise (``False``) the window
            is exactly ``margin`` times the extent and a window pixel takes the nearest image
            pixel, whose ray is up to half an image pixel away: on a hand's slanted and
            occluding surfaces that is millimetres of depth (the true mesh at its true pose
            then sits 2.9 mm mean / 0.6 mm median from the 48² crops of 128² renders).

    Returns:
        depth (F, C, size, size) float32 and the intrinsics of the windows (F, C, 3, 3)
        float32 (a pixel centre maps to the same ray as in the full image).
    """
    f, c, h, w = depth.shape
    out = np.zeros((f, c, size, size), np.float32)
    k_out = np.asarray(K, np.float64).copy()
    for i in range(f):
        pts = joints[i][np.isfinite(joints[i]).all(1)]
        for v in range(c):
            xc = pts @ T_view[i, v, :3, :3].T + T_view[i, v, :3, 3]
            uv = xc[:, :2] / xc[:, 2:3] * K[i, v, [0, 1], [0, 1]] + K[i, v, :2, 2]
            centre = (uv.min(0) + uv.max(0)) / 2
            side = max(float((uv.max(0) - uv.min(0)).max()) * margin, 8.0)
            if aligned:  # a whole number of image pixels per window pixel, centres on image pixel centres
                s = float(max(1, int(np.ceil(side / size))))
                # x0 + (a + 0.5) s must be an image pixel centre n + a s + 0.5: x0 = n + 0.5 - s / 2
                x0, y0 = np.round(centre - size * s / 2) + 0.5 - s / 2
            else:
                x0, y0 = centre - side / 2
                s = side / size  # full-image pixels per window pixel
            # window pixel (a, b) centre -> full-image position x0 + (a + 0.5) s (pixel centres at +0.5)
            xs = np.floor(x0 + (np.arange(size) + 0.5) * s).astype(int)
            ys = np.floor(y0 + (np.arange(size) + 0.5) * s).astype(int)
            ok_x, ok_y = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
            win = depth[i, v][np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)]
            out[i, v] = win * ok_y[:, None] * ok_x[None, :]
            kk = k_out[i, v]
            kk[0, 0] /= s
            kk[1, 1] /= s
            kk[0, 2] = (kk[0, 2] - x0) / s
            kk[1, 2] = (kk[1, 2] - y0) / s
    return out, k_out.astype(np.float32)


def crop_image_views(images: np.ndarray, K: np.ndarray, T_view: np.ndarray, joints: np.ndarray, size: int,
                     margin: float = 1.5) -> np.ndarray:
    """The same windows as :func:`crop_depth_views` (``aligned``) cut from RGB images, nearest
    resampling: the encoder's input (§4.2). images (F, C, H, W, 3) uint8 -> (F, C, size,
    size, 3) uint8; a window pixel outside the image is black."""
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"images must be (F, C, H, W, 3), got {images.shape}")
    chans = [crop_depth_views(images[..., k].astype(np.float32), K, T_view, joints, size, margin)[0]
             for k in range(3)]
    return np.stack(chans, -1).round().clip(0, 255).astype(np.uint8)
