"""Drawing and compositing for visualisations: mesh overlays, skeletons, side/top views, sheets.

Pure numpy / torch / OpenCV (no CLI or file code) so ``render``, ``demo`` and the
docs scripts share it. Images are RGB uint8 ``(H, W, 3)``; meshes are in a camera
frame (OpenCV axes: x right, y down, z forward; metres); pixel coordinates follow
the handtools convention (pixel ``i`` covers ``[i, i + 1)``, centre ``i + 0.5``;
``handtools.core.render.common``), converted here for OpenCV, whose pixel centres
are at integers.

The per-sample panel (:func:`render_panels`) is five images side by side::

    input | mesh (shaded, semi-transparent, over the input) | skeleton | side | top

``side`` and ``top`` show the mesh from a virtual camera moved 90 degrees around
the mesh's centroid: to the right of the hand about the camera's vertical (y)
axis, and above it about the camera's horizontal (x) axis (:func:`novel_view`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from handtools.core.hand.joints import BONES, FINGER_OF_JOINT, NUM_JOINTS

#: Panel names of :func:`render_panels`, left to right.
PANELS = ("input", "mesh", "skeleton", "side", "top")

#: Bone and joint colour per finger (thumb, index, middle, ring, little), RGB uint8.
FINGER_COLORS = (
    (230, 60, 60),  # thumb: red
    (240, 200, 40),  # index: yellow
    (60, 200, 80),  # middle: green
    (50, 150, 240),  # ring: blue
    (200, 80, 220),  # little: magenta
)
#: Wrist joint colour, RGB uint8.
WRIST_COLOR = (245, 245, 245)
#: Albedo of an untextured mesh, RGB in [0, 1] (a light blue that stands out on skin).
MESH_COLOR = (0.62, 0.74, 0.94)
#: Background of the side and top views, RGB uint8.
BACKGROUND = (36, 36, 40)
#: Opacity of the mesh drawn over the input image.
OVERLAY_ALPHA = 0.7

#: Rotations that turn camera-frame points so a virtual camera sees them from the
#: front (unchanged), from the right (+x side; 90 deg about y) or from above
#: (-y side, OpenCV y points down; 90 deg about x). Each maps the direction
#: towards the new viewpoint onto -z, towards the camera.
VIEW_ROTATIONS = {
    "front": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "side": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)),
    "top": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}
#: Smallest square field of view (metres across) of the side/top views: a whole
#: adult hand (about 0.19 m) fits, so meshes of plausible size share one scale.
MIN_VIEW_EXTENT_M = 0.25
#: Distance of the virtual camera from the mesh centroid (metres), at least.
VIEW_DISTANCE_M = 0.6


# ----------------------------------------------------------------------------- checks
def _check_image(image, name: str = "image") -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got {a.dtype} {tuple(a.shape)}")
    return a


def _check_images(images, name: str = "images") -> np.ndarray:
    a = np.asarray(images)
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ValueError(f"{name} must be a (B, H, W, 3) uint8 RGB array, got {a.dtype} {tuple(a.shape)}")
    return a


def _check_size(image_size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (H, W), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {(h, w)}")
    return h, w


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- 2D drawing
def _cv_point(uv: np.ndarray, shift: int) -> tuple[int, int]:
    """handtools pixel coordinates -> OpenCV fixed-point ones (centres at integers)."""
    s = 1 << shift
    return int(round((uv[0] - 0.5) * s)), int(round((uv[1] - 0.5) * s))


def draw_skeleton(image, keypoints, visible=None, thickness: int | None = None,
                  radius: int | None = None) -> np.ndarray:
    """Draw the 21-joint hand skeleton, each finger in its colour (``FINGER_COLORS``).

    Args:
        image: (H, W, 3) uint8 RGB; not modified.
        keypoints: (21, 2) or (21, 3) float, pixels (u = column, v = row; pixel
            centre at ``i + 0.5``), FreiHAND joint order; a third column is ignored.
        visible: optional (21,) bool; bones and joints touching a hidden joint are
            not drawn (e.g. joints behind the camera). Non-finite keypoints are hidden.
        thickness: bone width in pixels; default ``max(1, min(H, W) // 120)``.
        radius: joint dot radius in pixels; default ``thickness + 1``.

    Returns:
        (H, W, 3) uint8, a new image.
    """
    img = _check_image(image).copy()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != NUM_JOINTS or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (21, 2) or (21, 3), got {tuple(kp.shape)}")
    uv = kp[:, :2]
    vis = np.ones(NUM_JOINTS, bool) if visible is None else np.asarray(visible, bool).reshape(-1)
    if vis.shape != (NUM_JOINTS,):
        raise ValueError(f"visible must be (21,), got {tuple(np.shape(visible))}")
    # Far-away points overflow OpenCV's int coordinates: treat them as hidden.
    vis = vis & np.isfinite(uv).all(1) & (np.abs(uv) < 1e5).all(1)
    h, w = img.shape[:2]
    t = max(1, min(h, w) // 120) if thickness is None else int(thickness)
    r = t + 1 if radius is None else int(radius)
    shift = 4  # sub-pixel accuracy: coordinates in 1/16 px
    for parent, child in BONES:
        if vis[parent] and vis[child]:
            color = FINGER_COLORS[FINGER_OF_JOINT[child]]
            cv2.line(img, _cv_point(uv[parent], shift), _cv_point(uv[child], shift), color, t,
                     cv2.LINE_AA, shift)
    for j in range(NUM_JOINTS):
        if vis[j]:
            color = WRIST_COLOR if FINGER_OF_JOINT[j] < 0 else FINGER_COLORS[FINGER_OF_JOINT[j]]
            cv2.circle(img, _cv_point(uv[j], shift), r << shift, color, -1, cv2.LINE_AA, shift)
    return img


def put_label(image, text: str) -> np.ndarray:
    """Write a small caption in the top-left corner (:func:`draw_label`); returns a new image."""
    img = _check_image(image).copy()
    draw_label(img, text)
    return img


def draw_label(img: np.ndarray, text: str, bottom: bool = False) -> None:
    """Write ``text`` white on a darkened band in the top-left (or bottom-left) corner of an
    (H, W, 3) uint8 image, in place.

    The band (the text's box at 35 % brightness) keeps the caption legible on white
    backgrounds too, where a thin dark outline alone turns it into black blobs."""
    h = img.shape[0]
    scale = max(0.3, 0.45 * h / 240.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (3, h - 4 - int(round(2 * scale)) if bottom else 3 + int(round(18 * scale)))
    y0, y1 = max(0, org[1] - th - 2), min(h, org[1] + base + 1)
    band = img[y0:y1, : min(img.shape[1], org[0] + tw + 3)]
    band[...] = (band.astype(np.uint16) * 35 // 100).astype(np.uint8)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def composite(rgb, silhouette, background, alpha: float = 1.0) -> np.ndarray:
    """Blend a render over a background: ``bg * (1 - alpha * sil) + alpha * rgb``.

    Args:
        rgb: (H, W, 3) float in [0, 1], premultiplied by coverage (``RenderOutput.rgb``).
        silhouette: (H, W) float in [0, 1] (``RenderOutput.silhouette``).
        background: (H, W, 3) uint8 image, or one RGB uint8 colour.
        alpha: opacity of the mesh in [0, 1].

    Returns:
        (H, W, 3) uint8.
    """
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    sil = np.clip(np.asarray(silhouette, dtype=np.float32), 0.0, 1.0)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or sil.shape != rgb.shape[:2]:
        raise ValueError(f"rgb must be (H, W, 3) and silhouette (H, W), got {rgb.shape} and {sil.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    bg = np.asarray(background)
    if bg.ndim == 1:
        bg = np.broadcast_to(bg.astype(np.uint8), rgb.shape)
    bg = _check_image(bg, "background")
    if bg.shape != rgb.shape:
        raise ValueError(f"background is {bg.shape} but the render is {rgb.shape}")
    out = bg.astype(np.float32) / 255.0 * (1.0 - alpha * sil[..., None]) + alpha * rgb
    return _to_uint8(out)


def hstack(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Images of equal height side by side -> (H, sum W, 3) uint8."""
    if not panels:
        raise ValueError("hstack: no panels")
    ims = [_check_image(p, "panel") for p in panels]
    if len({p.shape[0] for p in ims}) != 1:
        raise ValueError(f"hstack: panels of different heights {[p.shape[0] for p in ims]}")
    return np.concatenate(ims, axis=1)


def contact_sheet(tiles: Sequence[np.ndarray], cols: int | None = None, max_width: int = 4096,
                  captions: Sequence[str] | None = None, pad: int = 2,
                  background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Tiles in a grid, row by row, shrunk so the sheet is at most ``max_width`` wide.

    Args:
        tiles: n (h, w, 3) uint8 images of one size.
        cols: columns; default ``ceil(sqrt(n))``.
        max_width: sheet width limit in pixels (tiles are downscaled, never enlarged).
        captions: optional n strings drawn on the tiles (e.g. sample names).
        pad: pixels between tiles and around the grid.
        background: RGB uint8 colour of the padding and of empty cells.

    Returns:
        (rows * h' + (rows + 1) * pad, cols * w' + (cols + 1) * pad, 3) uint8.
    """
    if not tiles:
        raise ValueError("contact_sheet: no tiles")
    ims = [_check_image(t, "tile") for t in tiles]
    if len({t.shape for t in ims}) != 1:
        raise ValueError("contact_sheet: tiles must all have one shape")
    if captions is not None and len(captions) != len(ims):
        raise ValueError(f"contact_sheet: {len(captions)} captions for {len(ims)} tiles")
    n = len(ims)
    cols = max(1, min(n, int(cols) if cols else math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    h, w = ims[0].shape[:2]
    scale = min(1.0, (max_width - (cols + 1) * pad) / float(cols * w))
    if scale <= 0:
        raise ValueError(f"contact_sheet: max_width {max_width} too small for {cols} columns")
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    sheet = np.empty((rows * th + (rows + 1) * pad, cols * tw + (cols + 1) * pad, 3), np.uint8)
    sheet[:] = np.asarray(background, np.uint8)
    for k, tile in enumerate(ims):
        if (th, tw) != (h, w):
            tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
        if captions is not None:
            tile = put_label(tile, str(captions[k]))
        r, c = divmod(k, cols)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        sheet[y : y + th, x : x + tw] = tile
    return sheet


def pad_to_multiple(image, multiple: int = 16, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Pad bottom/right so height and width are multiples of ``multiple`` (video encoders need it)."""
    img = _check_image(image)
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return img
    return cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=tuple(int(c) for c in color))


# ----------------------------------------------------------------------------- 3D views
def novel_view(verts: Tensor, view: str, image_size, extent_m: float | None = None) -> tuple[Tensor, Tensor]:
    """Turn meshes about their centroids and place a virtual camera that frames them.

    Args:
        verts: (B, V, 3) float, metres, camera frame (OpenCV axes).
        view: ``"front"``, ``"side"`` (seen from the right, +x) or ``"top"`` (from
            above, -y); see ``VIEW_ROTATIONS``.
        image_size: (H, W) of the virtual image.
        extent_m: width in metres of the square field of view at the centroid;
            default per sample ``max(MIN_VIEW_EXTENT_M, 1.3 * diameter in the view
            plane)`` so the mesh fits with a margin.

    Returns:
        ``(verts_cam (B, V, 3), K (B, 3, 3))``: the turned meshes with their
        centroid on the optical axis at ``max(VIEW_DISTANCE_M, 3 * extent)`` and
        pinhole intrinsics with the principal point at the image centre. Same
        device and dtype as ``verts``.
    """
    if not isinstance(verts, Tensor) or verts.ndim != 3 or verts.shape[-1] != 3 or not verts.is_floating_point():
        raise ValueError(f"verts must be a (B, V, 3) float tensor, got {getattr(verts, 'shape', type(verts))}")
    if view not in VIEW_ROTATIONS:
        raise ValueError(f"view must be one of {tuple(VIEW_ROTATIONS)}, got {view!r}")
    h, w = _check_size(image_size)
    rot = torch.tensor(VIEW_ROTATIONS[view], dtype=verts.dtype, device=verts.device)  # (3, 3)
    centred = verts - verts.mean(1, keepdim=True)  # (B, V, 3)
    turned = centred @ rot.T  # (B, V, 3)
    if extent_m is None:
        radius = turned[..., :2].norm(dim=-1).amax(1)  # (B,) metres, in the image plane
        extent = torch.clamp(2.6 * radius, min=MIN_VIEW_EXTENT_M)  # 1.3 x the diameter
    else:
        if not extent_m > 0:
            raise ValueError(f"extent_m must be positive, got {extent_m}")
        extent = torch.full(verts.shape[:1], float(extent_m), dtype=verts.dtype, device=verts.device)
    dist = torch.clamp(3.0 * extent, min=VIEW_DISTANCE_M)  # (B,) far enough for a mild perspective
    cam = turned + torch.stack([torch.zeros_like(dist), torch.zeros_like(dist), dist], -1)[:, None]
    f = min(h, w) * dist / extent  # (B,) pixels: `extent` metres at the centroid span the short side
    K = torch.zeros(verts.shape[0], 3, 3, dtype=verts.dtype, device=verts.device)
    K[:, 0, 0], K[:, 1, 1] = f, f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = w / 2.0, h / 2.0, 1.0
    return cam, K


def shade_mesh(renderer, verts: Tensor, faces: Tensor, K: Tensor, image_size,
               colors: Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render meshes flat-shaded under the default headlight (``lighting.default_light``).

    Args:
        renderer: a ``handtools.core.render.Renderer``.
        verts: (B, V, 3) float, metres, camera frame. faces: (F, 3) int64.
        K: (B, 3, 3) float, pixels. image_size: (H, W).
        colors: optional (B, V, 3) per-vertex albedo in [0, 1]; default ``MESH_COLOR``.

    Returns:
        ``(rgb (B, H, W, 3) float32 premultiplied by coverage, silhouette (B, H, W) float32)``, numpy.
    """
    if colors is None:
        colors = torch.tensor(MESH_COLOR, dtype=verts.dtype, device=verts.device).expand(*verts.shape[:2], 3)
    with torch.no_grad():
        out = renderer.render(verts, faces, K, image_size, colors=colors.to(verts.dtype).clamp(0.0, 1.0))
    return (out.rgb.clamp(0.0, 1.0).float().cpu().numpy(), out.silhouette.float().cpu().numpy())


def render_panels(renderer, images, verts: Tensor, faces: Tensor, K: Tensor, joints: Tensor | None = None,
                  colors: Tensor | None = None, alpha: float = OVERLAY_ALPHA, labels: bool = True) -> np.ndarray:
    """The per-sample panel strip ``input | mesh | skeleton | side | top`` (``PANELS``).

    Args:
        renderer: a ``handtools.core.render.Renderer``.
        images: (B, H, W, 3) uint8 RGB, the camera's images.
        verts: (B, V, 3) float, metres, in that camera's frame. faces: (F, 3) int64.
        K: (B, 3, 3) float, pixels of ``images``.
        joints: optional (B, 21, 3) float, metres, same frame, FreiHAND order; the
            skeleton panel shows their projection (joints behind the camera are
            skipped); without them it shows the plain input.
        colors: optional (B, V, 3) per-vertex albedo in [0, 1] (e.g. a predicted
            texture); default ``MESH_COLOR``.
        alpha: opacity of the mesh over the input.
        labels: write the panel names on the panels.

    Returns:
        (B, H, 5 W, 3) uint8.
    """
    ims = _check_images(images)
    b, h, w = ims.shape[:3]
    if not isinstance(verts, Tensor) or verts.ndim != 3 or verts.shape[0] != b or verts.shape[-1] != 3:
        raise ValueError(f"verts must be a (B={b}, V, 3) tensor, got {getattr(verts, 'shape', type(verts))}")
    if not isinstance(K, Tensor) or tuple(K.shape) != (b, 3, 3):
        raise ValueError(f"K must be a (B={b}, 3, 3) tensor, got {getattr(K, 'shape', type(K))}")
    if joints is not None and (not isinstance(joints, Tensor) or tuple(joints.shape) != (b, NUM_JOINTS, 3)):
        raise ValueError(f"joints must be a (B={b}, 21, 3) tensor, got {getattr(joints, 'shape', type(joints))}")
    K = K.to(verts.dtype)
    rgb, sil = shade_mesh(renderer, verts, faces, K, (h, w), colors)  # (B, H, W, 3), (B, H, W)
    side_v, side_k = novel_view(verts, "side", (h, w))
    top_v, top_k = novel_view(verts, "top", (h, w))
    side = shade_mesh(renderer, side_v, faces, side_k, (h, w), colors)
    top = shade_mesh(renderer, top_v, faces, top_k, (h, w), colors)
    uv = vis = None
    if joints is not None:
        j = joints.to(verts.dtype)
        z = j[..., 2]  # (B, 21)
        uvw = j @ K.transpose(1, 2)  # (B, 21, 3)
        uv = (uvw[..., :2] / torch.where(z.abs() > 1e-9, z, torch.ones_like(z))[..., None]).cpu().numpy()
        vis = (z > 1e-3).cpu().numpy()  # in front of the camera
    bg = np.asarray(BACKGROUND, np.uint8)
    strips = np.empty((b, h, len(PANELS) * w, 3), np.uint8)
    for i in range(b):
        panels = {
            "input": ims[i],
            "mesh": composite(rgb[i], sil[i], ims[i], alpha),
            "skeleton": draw_skeleton(ims[i], uv[i], vis[i]) if uv is not None else ims[i],
            "side": composite(side[0][i], side[1][i], bg),
            "top": composite(top[0][i], top[1][i], bg),
        }
        if labels:
            panels = {k: put_label(p, k) for k, p in panels.items()}
        strips[i] = hstack([panels[k] for k in PANELS])
    return strips
