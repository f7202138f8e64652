"""Disparity maps rendered from a mesh (eq. 2 of Chen et al., ICCV 2021): the renderer's
depth turned into disparity by :func:`handtools.core.geometry.stereo.disparity_from_depth`."""

from __future__ import annotations

from torch import Tensor

from handtools.core.geometry.checks import check_tensor
from handtools.core.geometry.stereo import disparity_from_depth
from handtools.core.render.renderer import render


def render_disparity(
    verts_cam: Tensor,
    faces: Tensor,
    K: Tensor,
    image_size: tuple[int, int],
    baseline,
    renderer=None,
) -> tuple[Tensor, Tensor]:
    """Render a mesh's depth and turn it into a disparity map (eq. 2).

    Args:
        verts_cam: (B, V, 3) float, metres, in the camera frame of the rendered view
            (e.g. ``xyz_right`` to get ``disp_r``).
        faces: (F, 3) int vertex indices.
        K: (B, 3, 3) float intrinsics of that view, pixels.
        image_size: (H, W) of the view.
        baseline: float or (B,) tensor, metres.
        renderer: a ``handtools.core.render.Renderer``; None uses the cached
            ``render(..., backend="auto")``.

    Returns:
        disparity (B, H, W) pixels (0 off the mesh) and mask (B, H, W) {0, 1} where a
        face is visible; see :func:`disparity_from_depth`. To also get the
        silhouette for the mask loss from the same pass, call the renderer yourself
        and use :func:`disparity_from_depth`.
    """
    check_tensor(verts_cam, "verts_cam", (None, None, 3))
    if renderer is None:
        out = render(verts_cam, faces, K, image_size)
    else:
        out = renderer.render(verts_cam, faces, K, image_size)
    return disparity_from_depth(out.depth, K, baseline)
