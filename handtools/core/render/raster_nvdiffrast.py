"""nvdiffrast backend (CUDA). ``nvdiffrast`` is imported only when this backend is built.

Install with ``pip install diffrp-nvdiffrast`` (import name ``nvdiffrast``); it
compiles its CUDA plugin with ``torch.utils.cpp_extension`` the first time a
context is created (needs nvcc and ninja), then caches it.

Clip space from pixel intrinsics. nvdiffrast maps NDC x = -1 to the left edge
of column 0 and NDC y = -1 to the top edge of row 0 (its images are stored with
row 0 at y = -1), and samples pixel centres at half-integers, so with the pinhole
``u = (fx x + s y) / z + cx``, ``v = fy y / z + cy`` (common.py) we want
``x_ndc = 2u/W - 1`` and ``y_ndc = 2v/H - 1`` -- no y flip. With w = z::

    [x_c]   [2fx/W  2s/W   2cx/W - 1           0        ] [x]
    [y_c] = [0      2fy/H  2cy/H - 1           0        ] [y]
    [z_c]   [0      0      (f+n)/(f-n)   -2fn/(f-n)     ] [z]
    [w_c]   [0      0      1                   0        ] [1]

n, f = NEAR, FAR (common.py); depth is z/w in [-1, 1], monotonic in camera z.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import FAR, NEAR, Fragments


def clip_space(verts: Tensor, K: Tensor, image_size: tuple[int, int], near: float = NEAR, far: float = FAR) -> Tensor:
    """Camera-frame verts (B, V, 3) metres, K (B, 3, 3) -> clip coords (B, V, 4) (matrix in module docstring)."""
    H, W = image_size
    x, y, z = verts.unbind(-1)  # (B, V)
    fx, s, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    xc = (2 * fx / W) * x + (2 * s / W) * y + (2 * cx / W - 1) * z
    yc = (2 * fy / H) * y + (2 * cy / H - 1) * z
    zc = (far + near) / (far - near) * z - 2 * far * near / (far - near)
    return torch.stack([xc, yc, zc, z], dim=-1)


class NvdiffrastRasterizer:
    """CUDA backend over ``nvdiffrast.torch`` (RasterizeCudaContext). float32 inside."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device, near: float = NEAR, far: float = FAR):
        import nvdiffrast.torch as dr  # lazy: a CPU install never touches it

        self._dr = dr
        self.device = torch.device(device)
        self.near, self.far = near, far
        self._ctx = dr.RasterizeCudaContext(device=self.device)  # compiles the plugin on first use
        self._faces_key: Tensor | None = None
        self._tri: Tensor | None = None
        self._topology = None

    def _triangles(self, faces: Tensor):
        key = self._faces_key
        if key is None or key.shape != faces.shape or not torch.equal(key, faces):
            self._faces_key = faces.clone()
            self._tri = faces.to(torch.int32).contiguous()
            self._topology = self._dr.antialias_construct_topology_hash(self._tri)
        return self._tri, self._topology

    def rasterize(self, verts: Tensor, faces: Tensor, K: Tensor, image_size: tuple[int, int]) -> Fragments:
        """verts (B, V, 3) metres CUDA, faces (F, 3), K (B, 3, 3), image_size (H, W)."""
        dr = self._dr
        H, W = image_size
        tri, topology = self._triangles(faces)
        pos = clip_space(verts.float(), K.float(), image_size, self.near, self.far).contiguous()  # (B, V, 4)
        rast, _ = dr.rasterize(self._ctx, pos, tri, resolution=(H, W), grad_db=False)  # (B, H, W, 4)
        face_ids = rast[..., 3].to(torch.int64) - 1  # nvdiffrast stores triangle id + 1, 0 = empty
        mask = (face_ids >= 0).to(rast.dtype)
        u, v = rast[..., 0], rast[..., 1]  # weights of vertices 0 and 1
        bary = torch.stack([u, v, 1.0 - u - v], dim=-1) * mask[..., None]
        zattr = verts[..., 2:3].float().contiguous()  # (B, V, 1) camera z, affine over a face
        zbuf, _ = dr.interpolate(zattr, rast, tri)
        zbuf = zbuf[..., 0] * mask
        dtype = verts.dtype
        ctx = (rast, pos, tri, topology)
        return Fragments(face_ids, bary.to(dtype), zbuf.to(dtype), ctx)

    def interpolate(self, attr: Tensor, frags: Fragments) -> Tensor:
        """attr (B, V, C) per-vertex -> (B, H, W, C), 0 where no face."""
        rast, _, tri, _ = frags.context
        out, _ = self._dr.interpolate(attr.float().contiguous(), rast, tri)
        return out.to(attr.dtype)

    def antialias(self, color: Tensor, frags: Fragments) -> Tensor:
        """color (B, H, W, C) -> antialiased across silhouette edges (nvdiffrast's analytic AA)."""
        rast, pos, tri, topology = frags.context
        out = self._dr.antialias(color.float().contiguous(), rast, pos, tri, topology_hash=topology)
        return out.to(color.dtype)
