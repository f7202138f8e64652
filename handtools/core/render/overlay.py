"""Panels of stored samples: meshes (and joints) of view 0 drawn in any camera of a shard.

Pure torch/numpy over :func:`~handtools.core.render.visualize.render_panels`;
``handtools render`` reads the arrays from shards and writes what comes back.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from handtools.core.geometry.cameras import points_between_views
from handtools.core.render.visualize import OVERLAY_ALPHA, render_panels


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
