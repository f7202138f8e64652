"""The 11-d lighting of S2HAND: one ambient and one directional light, flat shaded.

S2HAND (Chen et al., CVPR 2021, Sec. 3.3) regresses an 11-d light vector and
renders with its fork of neural_renderer (``TerenceCYJ/neural_renderer``,
``lighting.py``). Its ``models_new.py`` slices the vector as below; this module
is the one place that layout lives, so S2HAND's head, ``synth`` and the
renderer agree::

    light[:, 0]    ambient intensity        LIGHT_AMBIENT_INTENSITY
    light[:, 1]    directional intensity    LIGHT_DIRECTIONAL_INTENSITY
    light[:, 2:5]  ambient colour (RGB)     LIGHT_AMBIENT_COLOR
    light[:, 5:8]  directional colour (RGB) LIGHT_DIRECTIONAL_COLOR
    light[:, 8:11] direction (x, y, z)      LIGHT_DIRECTION

Shading is per face (flat), exactly neural_renderer's formula::

    n     = normalize((v0 - v1) x (v2 - v1))          # per face, camera frame
    shade = amb_int * amb_col + dir_int * dir_col * max(0, n . direction)
    rgb   = albedo * shade

``direction`` is not normalised (neural_renderer does not either). For faces
wound counter-clockwise seen from outside (MANO's winding) ``n`` is the
*inward* normal, so ``direction`` is the direction the light travels, from the
light to the surface: ``(0, 0, 1)`` lights the side of the hand that faces the
camera (OpenCV camera frame, z forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LIGHT_DIM = 11
LIGHT_AMBIENT_INTENSITY = slice(0, 1)
LIGHT_DIRECTIONAL_INTENSITY = slice(1, 2)
LIGHT_AMBIENT_COLOR = slice(2, 5)
LIGHT_DIRECTIONAL_COLOR = slice(5, 8)
LIGHT_DIRECTION = slice(8, 11)

#: neural_renderer's default intensities (0.5 + 0.5, white), lit from the camera.
DEFAULT_LIGHT = (0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0)


def default_light(batch_size: int, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Default light: ambient 0.5 white, directional 0.5 white along +z (a headlight).

    Returns (B, 11) in the layout of this module's docstring.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    light = torch.tensor(DEFAULT_LIGHT, device=device, dtype=dtype)
    return light.expand(batch_size, LIGHT_DIM).clone()


def face_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """neural_renderer's face normals ``normalize((v0 - v1) x (v2 - v1))``.

    verts (B, V, 3) float, faces (F, 3) int64 -> (B, F, 3) unit vectors
    (inward for counter-clockwise-outside winding; see the module docstring).
    """
    tri = verts[:, faces]  # (B, F, 3, 3)
    n = torch.cross(tri[:, :, 0] - tri[:, :, 1], tri[:, :, 2] - tri[:, :, 1], dim=-1)
    return F.normalize(n, dim=-1, eps=1e-5)  # (B, F, 3); eps as neural_renderer


def face_shading(verts: Tensor, faces: Tensor, light: Tensor) -> Tensor:
    """Per-face light factor ``amb_int*amb_col + dir_int*dir_col*max(0, n.d)``.

    verts (B, V, 3) float metres (camera frame), faces (F, 3) int64,
    light (B, 11) float -> (B, F, 3) float; multiply the albedo by it.
    Differentiable wrt verts and light.
    """
    if light.ndim != 2 or light.shape[-1] != LIGHT_DIM or light.shape[0] != verts.shape[0]:
        raise ValueError(f"light must be (B={verts.shape[0]}, {LIGHT_DIM}), got {tuple(light.shape)}")
    n = face_normals(verts, faces)  # (B, F, 3)
    d = light[:, LIGHT_DIRECTION]  # (B, 3)
    cos = torch.relu((n * d[:, None, :]).sum(-1))  # (B, F)
    ambient = light[:, LIGHT_AMBIENT_INTENSITY] * light[:, LIGHT_AMBIENT_COLOR]  # (B, 3)
    directional = light[:, LIGHT_DIRECTIONAL_INTENSITY] * light[:, LIGHT_DIRECTIONAL_COLOR]  # (B, 3)
    return ambient[:, None, :] + directional[:, None, :] * cos[..., None]  # (B, F, 3)
