"""Differentiable mesh renderer: silhouette, depth and lit per-vertex colour.

One interface, two backends (``--renderer auto|nvdiffrast|torch``): nvdiffrast on
CUDA, a pure-PyTorch rasteriser structured like it (rasterize -> interpolate ->
antialias) everywhere else. Pixel convention and camera in ``common.py``,
light layout in ``lighting.py``.

    >>> out = render(verts, faces, K, (224, 224), colors=albedo, light=light)
    >>> out.silhouette, out.depth, out.rgb    # (B, H, W), (B, H, W), (B, H, W, 3)
"""

from .common import FAR, NEAR, Fragments, RenderOutput, project
from .lighting import (
    DEFAULT_LIGHT,
    LIGHT_AMBIENT_COLOR,
    LIGHT_AMBIENT_INTENSITY,
    LIGHT_DIM,
    LIGHT_DIRECTION,
    LIGHT_DIRECTIONAL_COLOR,
    LIGHT_DIRECTIONAL_INTENSITY,
    default_light,
    face_normals,
    face_shading,
)
from .renderer import BACKENDS, Renderer, render

__all__ = [
    "BACKENDS",
    "DEFAULT_LIGHT",
    "FAR",
    "Fragments",
    "LIGHT_AMBIENT_COLOR",
    "LIGHT_AMBIENT_INTENSITY",
    "LIGHT_DIM",
    "LIGHT_DIRECTION",
    "LIGHT_DIRECTIONAL_COLOR",
    "LIGHT_DIRECTIONAL_INTENSITY",
    "NEAR",
    "RenderOutput",
    "Renderer",
    "default_light",
    "face_normals",
    "face_shading",
    "project",
    "render",
]
