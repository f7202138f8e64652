"""One renderer interface over two rasterisers: nvdiffrast on CUDA, pure PyTorch elsewhere.

``render`` draws a batch of meshes (camera frame, OpenCV axes, metres) with pixel
intrinsics and returns an antialiased silhouette, a depth map and, given
per-vertex (or per-face) colours, an RGB image lit by S2HAND's ambient +
directional light (``lighting.py``). Gradients reach vertices, colours and
light. Pixel convention: ``common.py``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from .common import FAR, NEAR, Fragments, RenderOutput, check_inputs
from .lighting import LIGHT_DIM, default_light, face_shading
from .raster_torch import TorchRasterizer

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nvdiffrast", "torch")


class Renderer:
    """Picks a backend once and exposes rasterize / interpolate / antialias / render.

    backend: "auto" (nvdiffrast when the tensors are on CUDA and it imports and
        compiles, else torch), "nvdiffrast" (CUDA only) or "torch" (any device).
    device: resolve the backend now for this device; if None, on the first call
        from the device of ``verts``.
    near, far: clipping planes in metres.
    walk_steps: torch backend only: how far its antialiasing walks across faces thinner
        than a pixel to find a silhouette edge (0 = nvdiffrast's rule; see raster_torch).
    """

    def __init__(self, backend: str = "auto", device=None, near: float = NEAR, far: float = FAR, walk_steps: int = 8):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.requested = backend
        self.near, self.far = near, far
        self.walk_steps = walk_steps
        self._impl = None
        if device is not None:
            self._resolve(torch.device(device))

    @property
    def backend(self) -> str | None:
        """Name of the chosen backend ("nvdiffrast" or "torch"), None before the first call."""
        return None if self._impl is None else self._impl.name

    def _resolve(self, device: torch.device):
        if self._impl is not None:
            if self._impl.name == "nvdiffrast" and device.type != "cuda":
                raise ValueError(f"this Renderer uses nvdiffrast (CUDA) but got tensors on {device}")
            return self._impl
        if self.requested == "torch" or (self.requested == "auto" and device.type != "cuda"):
            self._impl = TorchRasterizer(near=self.near, walk_steps=self.walk_steps)
        elif self.requested == "nvdiffrast":
            if device.type != "cuda":
                raise ValueError(f"the nvdiffrast backend needs CUDA tensors, got {device}")
            from .raster_nvdiffrast import NvdiffrastRasterizer

            self._impl = NvdiffrastRasterizer(device, near=self.near, far=self.far)
        else:  # auto on CUDA
            try:
                from .raster_nvdiffrast import NvdiffrastRasterizer

                self._impl = NvdiffrastRasterizer(device, near=self.near, far=self.far)
            except Exception as exc:  # ImportError, or the CUDA plugin failed to compile
                log.warning("nvdiffrast unavailable (%s); using the pure-PyTorch rasteriser", exc)
                self._impl = TorchRasterizer(near=self.near, walk_steps=self.walk_steps)
        return self._impl

    # -- the three primitives -------------------------------------------
    def rasterize(self, verts: Tensor, faces: Tensor, K: Tensor, image_size) -> Fragments:
        """Visible face, barycentrics and camera depth per pixel.

        verts (B, V, 3) float metres (camera frame, OpenCV axes); faces (F, 3) int64;
        K (B, 3, 3) or (3, 3) float pixels; image_size (H, W). Returns Fragments
        (face_ids (B, H, W) int64, bary (B, H, W, 3), zbuf (B, H, W) metres).
        """
        K, size = check_inputs(verts, faces, K, image_size)
        return self._resolve(verts.device).rasterize(verts, faces.long(), K, size)

    def interpolate(self, attr: Tensor, frags: Fragments) -> Tensor:
        """Per-vertex attr (B, V, C) float -> (B, H, W, C) at visible pixels, 0 elsewhere."""
        if attr.ndim != 3 or attr.shape[0] != frags.face_ids.shape[0]:
            raise ValueError(f"attr must be (B={frags.face_ids.shape[0]}, V, C), got {tuple(attr.shape)}")
        return self._resolve(attr.device).interpolate(attr, frags)

    def antialias(self, color: Tensor, frags: Fragments) -> Tensor:
        """color (B, H, W, C) float -> the same, blended across silhouette edges (differentiable wrt verts)."""
        if color.ndim != 4 or color.shape[:3] != frags.face_ids.shape:
            raise ValueError(f"color must be (B, H, W, C) matching {tuple(frags.face_ids.shape)}, got {tuple(color.shape)}")
        return self._resolve(color.device).antialias(color, frags)

    # -- everything at once ------------------------------------------------
    def render(
        self,
        verts: Tensor,
        faces: Tensor,
        K: Tensor,
        image_size,
        colors: Tensor | None = None,
        light: Tensor | None = None,
        face_colors: Tensor | None = None,
    ) -> RenderOutput:
        """Silhouette, depth and (with colours) lit RGB.

        verts (B, V, 3) float metres, camera frame (OpenCV); faces (F, 3) int64;
        K (B, 3, 3) or (3, 3) pixels; image_size (H, W);
        colors (B, V, 3) per-vertex albedo in [0, 1], or face_colors (B, F, 3)
        per-face albedo (S2HAND's texture), not both; light (B, 11), layout in
        lighting.py, default ``default_light(B)``. Shading is flat (face normals).
        """
        K, size = check_inputs(verts, faces, K, image_size)
        faces = faces.long()
        B, V = verts.shape[:2]
        F_ = faces.shape[0]
        if colors is not None and face_colors is not None:
            raise ValueError("give colors (per vertex) or face_colors (per face), not both")
        if colors is not None and tuple(colors.shape) != (B, V, 3):
            raise ValueError(f"colors must be (B={B}, V={V}, 3), got {tuple(colors.shape)}")
        if face_colors is not None and tuple(face_colors.shape) != (B, F_, 3):
            raise ValueError(f"face_colors must be (B={B}, F={F_}, 3), got {tuple(face_colors.shape)}")
        if light is not None and tuple(light.shape) != (B, LIGHT_DIM):
            raise ValueError(f"light must be (B={B}, {LIGHT_DIM}), got {tuple(light.shape)}")

        impl = self._resolve(verts.device)
        frags = impl.rasterize(verts, faces, K, size)
        mask = frags.mask  # (B, H, W) bool
        channels = [mask.to(verts.dtype)[..., None]]  # (B, H, W, 1)
        if colors is not None or face_colors is not None:
            if light is None:
                light = default_light(B, device=verts.device, dtype=verts.dtype)
            shade = face_shading(verts, faces, light.to(verts.dtype))  # (B, F, 3)
            if face_colors is not None:
                shade = shade * face_colors
            fid = frags.face_ids.clamp(min=0).reshape(B, -1, 1).expand(-1, -1, 3)  # (B, HW, 3)
            lit = shade.gather(1, fid).view(*mask.shape, 3) * mask[..., None]  # (B, H, W, 3)
            if colors is not None:
                lit = lit * impl.interpolate(colors.to(verts.dtype), frags)
            channels.append(lit)
        aa = impl.antialias(torch.cat(channels, dim=-1), frags)  # (B, H, W, 1 or 4)
        rgb = aa[..., 1:] if aa.shape[-1] > 1 else None  # not clamped: keeps gradients
        return RenderOutput(
            silhouette=aa[..., 0].clamp(0.0, 1.0),
            depth=frags.zbuf,
            rgb=rgb,
            face_ids=frags.face_ids,
            bary=frags.bary,
        )


_RENDERERS: dict[tuple[str, str], Renderer] = {}


def render(
    verts: Tensor,
    faces: Tensor,
    K: Tensor,
    image_size,
    colors: Tensor | None = None,
    light: Tensor | None = None,
    backend: str = "auto",
    face_colors: Tensor | None = None,
) -> RenderOutput:
    """Render with a cached ``Renderer(backend)`` for verts' device; see ``Renderer.render``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(verts, Tensor):
        raise ValueError(f"verts must be a tensor, got {type(verts).__name__}")
    key = (backend, str(verts.device))
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(backend, device=verts.device)
    return _RENDERERS[key].render(verts, faces, K, image_size, colors=colors, light=light, face_colors=face_colors)
