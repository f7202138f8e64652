"""Types, camera projection and input checks shared by both rasteriser backends.

Pixel convention (every module of handtools uses it): pixel ``(u, v)`` has
``u`` = column, ``v`` = row; pixel ``i`` covers ``[i, i + 1)``, so its centre is
at ``i + 0.5``. A camera-frame point ``(x, y, z)`` (OpenCV: x right, y down,
z forward, metres) lands at the plain pinhole projection::

    u = fx * x / z + s * y / z + cx        v = fy * y / z + cy

and pixel ``(row j, column i)`` is covered by a triangle when the point
``(i + 0.5, j + 0.5)`` is inside the projected triangle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

#: Near/far planes in metres. Triangles with a vertex nearer than NEAR are
#: dropped by the torch backend and clipped by nvdiffrast.
NEAR = 0.01
FAR = 10.0


@dataclass
class Fragments:
    """Rasteriser output, the same for both backends.

    face_ids: (B, H, W) int64, index into ``faces`` of the visible face, -1 where none.
    bary: (B, H, W, 3) float, perspective-correct barycentrics of the visible face
        (weights of its vertices 0, 1, 2), 0 where none; differentiable wrt verts.
    zbuf: (B, H, W) float, camera z in metres, 0 where none; differentiable wrt verts.
    context: backend-private state that ``interpolate`` and ``antialias`` need.
    """

    face_ids: Tensor
    bary: Tensor
    zbuf: Tensor
    context: Any = field(default=None, repr=False, compare=False)

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool, True where a face is visible."""
        return self.face_ids >= 0


@dataclass
class RenderOutput:
    """What ``render`` returns.

    silhouette: (B, H, W) float in [0, 1], antialiased at silhouette edges (so
        differentiable wrt verts there), exactly 0 or 1 elsewhere.
    depth: (B, H, W) float, camera z in metres, 0 where no face (not antialiased).
    rgb: (B, H, W, 3) float, lit albedo antialiased over a black background (i.e.
        premultiplied by coverage: composite with ``rgb + (1 - sil[..., None]) * bg``);
        None when no colours were given.
    face_ids: (B, H, W) int64, -1 where no face.
    bary: (B, H, W, 3) float barycentrics of the visible face.
    """

    silhouette: Tensor
    depth: Tensor
    rgb: Tensor | None
    face_ids: Tensor
    bary: Tensor


def project(verts: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole projection to pixel coordinates.

    verts (B, V, 3) float metres, camera frame; K (B, 3, 3) float pixels.
    Returns uv (B, V, 2) float pixels (u = column, v = row; centre of pixel i at
    i + 0.5) and z (B, V) float metres. Differentiable.
    """
    x, y, z = verts.unbind(-1)  # (B, V) each
    zs = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))  # avoid 0-division; such faces are culled
    fx, s, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    u = (fx * x + s * y) / zs + cx
    v = fy * y / zs + cy
    return torch.stack([u, v], dim=-1), z


def check_inputs(verts: Tensor, faces: Tensor, K: Tensor, image_size) -> tuple[Tensor, tuple[int, int]]:
    """Validate the renderer's common inputs; return K as (B, 3, 3) and (H, W) as ints.

    verts (B, V, 3) floating; faces (F, 3) integer in [0, V); K (B, 3, 3), (1, 3, 3) or (3, 3)
    (broadcast to the batch), same device as verts; image_size (H, W) positive ints.
    """
    if not isinstance(verts, Tensor) or verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be a (B, V, 3) tensor, got {_shape(verts)}")
    if not verts.is_floating_point():
        raise ValueError(f"verts must be floating point, got {verts.dtype}")
    if not isinstance(faces, Tensor) or faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be an (F, 3) tensor, got {_shape(faces)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be int32 or int64, got {faces.dtype}")
    if faces.device != verts.device:
        raise ValueError(f"faces on {faces.device} but verts on {verts.device}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ValueError(f"faces index outside [0, {verts.shape[1]})")
    if not isinstance(K, Tensor) or K.shape[-2:] != (3, 3) or K.ndim not in (2, 3):
        raise ValueError(f"K must be (B, 3, 3) or (3, 3), got {_shape(K)}")
    if K.device != verts.device:
        raise ValueError(f"K on {K.device} but verts on {verts.device}")
    K = K.to(verts.dtype)
    if K.ndim == 2 or K.shape[0] == 1:
        K = K.expand(verts.shape[0], 3, 3)
    if K.shape[0] != verts.shape[0]:
        raise ValueError(f"K has batch {K.shape[0]} but verts has batch {verts.shape[0]}")
    try:
        H, W = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (H, W), got {image_size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"image_size must be positive, got {(H, W)}")
    return K, (H, W)


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
