"""Panels of stored samples: meshes (and joints) of view 0 drawn in any camera of a shard.

Pure torch/numpy over :func:`~handtools.core.render.visualize.render_panels`;
``handtools render`` reads the arrays from shards and writes what comes back.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from handtools.core.geometry.cameras import points_between_views
from handtools.core.render.visualize import OVERLAY_ALPHA, draw_label, render_panels


def panels_in_view(renderer, hand, images, verts0: Tensor, K: Tensor, joints0: Tensor | None = None,
                   T_view: Tensor | None = None, view: int = 0, colors: Tensor | None = None,
                   alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The panel strips ``input | mesh | skeleton | side | top`` of samples seen by camera ``view``.

    Args:
        renderer: a ``handtools.core.render.Renderer``.
        hand: the ``HandModel`` whose topology the meshes have (faces; joint
            regressor when ``joints0`` is None).
        images: (B, H, W, 3) uint8 RGB of camera ``view``.
        verts0: (B, V, 3) float, metres, camera frame of view 0 (the shard convention).
        K: (B, 3, 3) float, intrinsics of camera ``view``, pixels of ``images``.
        joints0: optional (B, 21, 3) float, metres, view-0 frame; default the
            joints regressed from the meshes (:meth:`HandModel.regress_joints`).
        T_view: (B, V', 4, 4) world-to-camera of every view; needed when ``view`` > 0.
        view: camera to draw in.
        colors: optional (B, V, 3) per-vertex albedo in [0, 1] (a predicted texture).
        alpha: opacity of the mesh over the image.

    Returns:
        (B, H, 5 W, 3) uint8 (see ``render_panels``).
    """
    if joints0 is None:
        joints0 = hand.regress_joints(verts0)  # (B, 21, 3)
    verts, joints = verts0, joints0
    if view > 0:
        if T_view is None:
            raise ValueError(f"panels_in_view: view {view} needs T_view")
        verts = points_between_views(verts0, T_view[:, 0], T_view[:, view])  # (B, V, 3) camera `view`
        joints = points_between_views(joints0, T_view[:, 0], T_view[:, view])  # (B, 21, 3)
    return render_panels(renderer, images, verts, hand.faces, K, joints, colors, alpha=alpha)


#: Colours of the 2D annotations (RGB uint8).
BOX_COLOR = (255, 214, 0)
MASK_COLOR = (0, 200, 120)
MASK_ALPHA = 0.45
#: Keypoints under this confidence are drawn hollow (below ``0`` never: zero rows mean "no hand").
LOW_CONFIDENCE = 0.5


def annotate_view(image, keypoints=None, bbox=None, mask=None) -> np.ndarray:
    """One camera's image with its 2D annotations drawn over it: mask, box, keypoints.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: optional (21, 3) float: u, v in pixels (centre of pixel ``i`` at
            ``i + 0.5``) and confidence in [0, 1]; an all-zero row set means "no hand"
            and draws nothing. Joints with confidence below ``LOW_CONFIDENCE`` are drawn
            hollow; the mean confidence is written in the corner.
        bbox: optional (4,) float ``x0, y0, x1, y1`` in pixels; empty boxes are skipped.
        mask: optional (H, W) uint8, non-zero on the hand: tinted ``MASK_COLOR``.

    Returns:
        (H, W, 3) uint8, a new image.
    """
    import cv2

    from handtools.core.render.visualize import draw_skeleton

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"annotate_view: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    img = img.copy()
    h, w = img.shape[:2]
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (h, w):
            raise ValueError(f"annotate_view: mask is {m.shape}, image is {(h, w)}")
        on = m > 0
        tint = np.asarray(MASK_COLOR, np.float32)
        img[on] = (img[on].astype(np.float32) * (1 - MASK_ALPHA) + tint * MASK_ALPHA + 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, MASK_COLOR, 1, cv2.LINE_8)
    if bbox is not None:
        b = np.asarray(bbox, np.float64).reshape(-1)
        if b.shape != (4,):
            raise ValueError(f"annotate_view: bbox must be (4,), got {np.shape(bbox)}")
        if np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1]:
            t = max(1, min(h, w) // 160)
            cv2.rectangle(img, (int(round(b[0])), int(round(b[1]))), (int(round(b[2])) - 1, int(round(b[3])) - 1),
                          BOX_COLOR, t, cv2.LINE_8)
    if keypoints is not None:
        kp = np.asarray(keypoints, np.float64)
        if kp.shape != (21, 3):
            raise ValueError(f"annotate_view: keypoints must be (21, 3), got {kp.shape}")
        if np.any(kp != 0):
            conf = np.clip(kp[:, 2], 0.0, 1.0)
            img = draw_skeleton(img, kp[:, :2], visible=conf > 0)
            low = (conf > 0) & (conf < LOW_CONFIDENCE)
            r = max(2, min(h, w) // 60)
            for j in np.flatnonzero(low):  # a dark ring marks an uncertain joint
                c = (int(round(kp[j, 0] - 0.5)), int(round(kp[j, 1] - 0.5)))
                cv2.circle(img, c, r, (0, 0, 0), max(1, r // 2), cv2.LINE_AA)
            draw_label(img, f"conf {conf.mean():.2f}", bottom=True)  # the top-left holds the sheet's caption
    return img


def annotated_views(images, keypoints=None, bbox=None, masks=None) -> np.ndarray:
    """Every view of a batch annotated (:func:`annotate_view`) and set side by side (stereo pairs, rigs).

    Args:
        images: (B, V, H, W, 3) uint8.
        keypoints: optional (B, V, 21, 3) float. bbox: optional (B, V, 4) float.
        masks: optional (B, V, H, W) uint8.

    Returns:
        (B, H, V * W + 2 (V - 1), 3) uint8: views left to right, 2-pixel dark gaps between them.
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"annotated_views: images must be (B, V, H, W, 3), got {images.shape}")
    b, v, h = images.shape[:3]
    gap = np.full((h, 2, 3), 20, np.uint8)
    out = []
    for i in range(b):
        tiles = []
        for k in range(v):
            if k:
                tiles.append(gap)
            tiles.append(annotate_view(images[i, k], None if keypoints is None else keypoints[i, k],
                                       None if bbox is None else bbox[i, k], None if masks is None else masks[i, k]))
        out.append(np.concatenate(tiles, axis=1))
    return np.stack(out)
