"""Supervised losses for hand-prior pre-training (Chen et al., ICCV 2021, §3.1; I2L-MeshNet, Moon & Lee, ECCV 2020).

The prior is learnt from ground-truth mesh vertices; following I2L-MeshNet (§3.4,
"loss functions") the mesh is supervised by an L1 vertex loss, an L1 loss on the
joints regressed from the mesh, an edge-length loss and a surface-normal loss (those two
work on the mesh topology and live in :mod:`handtools.core.losses.mesh`).

Units are the caller's: the losses work on any coordinates (pixels, metres, or
I2L's heatmap units) as long as prediction and target share them.

Weights and reductions (same for every loss here):

* ``weight`` masks or weights the terms. Accepted shapes: (B,) per sample,
  (B, N) per vertex/joint, and for the L1 losses also (B, N, C) per coordinate.
  The edge and normal losses turn per-vertex weights into per-edge/per-face
  weights by multiplying the weights of the vertices involved (I2L's valid masks).
* ``reduction="mean"``: ``sum(w * l) / sum(w)`` over every term (broadcast weights
  count once per term; without weights a plain mean). All-zero weights give 0.
  ``"sum"``: ``sum(w * l)``. ``"none"``: the weighted terms ``w * l``, shaped as documented.
"""

from __future__ import annotations

import torch

from handtools.core.losses.reduction import check_pair, check_reduction, reduce_terms, weight_to

_REDUCTIONS = ("mean", "sum", "none")


def _coord_l1(pred, gt, weight, reduction, name):
    check_reduction(reduction, _REDUCTIONS, name)
    check_pair(pred, gt, name)
    w = weight_to(weight, pred, (1, 2, 3), name)
    return reduce_terms((pred - gt).abs(), w, reduction)  # (B, N, C) terms


def vertex_l1_loss(
    pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Mesh vertex loss (I2L-MeshNet L_vertex): ``L = mean_{b,v,c} |V_pred - V_gt|``.

    Args:
        pred, gt: (B, N, C) float, N vertices (778), C coordinates (2 or 3), same units.
        weight: optional (B,), (B, N) or (B, N, C) weights/mask.
        reduction: ``"mean"`` (weighted mean), ``"sum"`` or ``"none"`` → (B, N, C).

    Returns:
        Scalar (or (B, N, C)), same units as the inputs.
    """
    return _coord_l1(pred, gt, weight, reduction, "vertex_l1_loss")


def joint_l1_loss(
    pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Joint loss on joints regressed from the mesh (I2L-MeshNet L_joint): ``L = mean_{b,j,c} |J R(V_pred) - J_gt|``.

    Args:
        pred: (B, J, C) float, joints regressed from the predicted mesh
            (e.g. :func:`handtools.core.learning.nets.prior.regress_joints21`), J = 21.
        gt: (B, J, C) float, ground-truth joints, same units.
        weight: optional (B,), (B, J) (e.g. keypoint visibility) or (B, J, C).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` → (B, J, C).

    Returns:
        Scalar (or (B, J, C)), same units as the inputs.
    """
    return _coord_l1(pred, gt, weight, reduction, "joint_l1_loss")
