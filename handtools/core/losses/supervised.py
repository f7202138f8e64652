"""Supervised losses for hand-prior pre-training (Chen et al., ICCV 2021, §3.1; I2L-MeshNet, Moon & Lee, ECCV 2020).

The prior is learnt from ground-truth mesh vertices; following I2L-MeshNet (§3.4,
"loss functions") the mesh is supervised by an L1 vertex loss, an L1 loss on the
joints regressed from the mesh, an edge-length loss and a surface-normal loss.
The self-supervised (binocular) losses live in a separate module.

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
from torch.nn import functional as F

_REDUCTIONS = ("mean", "sum", "none")

#: Vertex pairs of the three edges of a face (I2L-MeshNet order).
_FACE_EDGES = ((0, 1), (0, 2), (1, 2))


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, name: str) -> None:
    if pred.ndim != 3:
        raise ValueError(f"{name}: pred must be (B, N, C), got {tuple(pred.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    if not pred.is_floating_point():
        raise ValueError(f"{name}: pred must be floating point, got {pred.dtype}")


def _weight_to(weight: torch.Tensor | None, like: torch.Tensor, shapes: tuple[int, ...], name: str) -> torch.Tensor | None:
    """Weight as a tensor broadcastable to ``like`` (B, N, C); ``shapes``: accepted ndims."""
    if weight is None:
        return None
    weight = torch.as_tensor(weight, device=like.device).to(like.dtype)
    b, n, c = like.shape
    allowed = {1: (b,), 2: (b, n), 3: (b, n, c)}
    if weight.ndim not in shapes or tuple(weight.shape) != allowed[weight.ndim]:
        expected = " or ".join(str(allowed[d]) for d in shapes)
        raise ValueError(f"{name}: weight must be {expected}, got {tuple(weight.shape)}")
    while weight.ndim < 3:
        weight = weight[..., None]
    return weight


def _reduce(terms: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if weight is None:
        if reduction == "mean":
            return terms.mean()
        return terms.sum() if reduction == "sum" else terms
    weighted = terms * weight
    if reduction == "none":
        return weighted
    total = weighted.sum()
    if reduction == "sum":
        return total
    denom = weight.expand_as(terms).sum()
    return total / denom.clamp_min(torch.finfo(terms.dtype).tiny)


def _check_reduction(reduction: str, name: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _coord_l1(pred, gt, weight, reduction, name):
    _check_reduction(reduction, name)
    _check_pair(pred, gt, name)
    w = _weight_to(weight, pred, (1, 2, 3), name)
    return _reduce((pred - gt).abs(), w, reduction)  # (B, N, C) terms


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


def _faces_to(faces, num_vertices: int, device: torch.device, name: str) -> torch.Tensor:
    faces = torch.as_tensor(faces, device=device)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] < 1:
        raise ValueError(f"{name}: faces must be (F, 3) with F >= 1, got {tuple(faces.shape)}")
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise ValueError(f"{name}: faces must be integer vertex indices, got {faces.dtype}")
    faces = faces.long()
    if int(faces.min()) < 0 or int(faces.max()) >= num_vertices:
        raise ValueError(f"{name}: face indices must lie in [0, {num_vertices}), got [{int(faces.min())}, {int(faces.max())}]")
    return faces


def _mesh_weight(weight, pred: torch.Tensor, faces: torch.Tensor, pairs, name: str) -> torch.Tensor | None:
    """Per-vertex or per-sample weights → (B, F, len(pairs)) weights on face edges/faces."""
    if weight is None:
        return None
    w = _weight_to(weight, pred, (1, 2), name)[..., 0]  # (B, N) or (B, 1)
    if w.shape[1] == 1:
        return w[:, :, None]  # (B, 1, 1)
    per_face_vertex = w[:, faces]  # (B, F, 3)
    cols = [per_face_vertex[..., list(p)].prod(-1) for p in pairs]
    return torch.stack(cols, dim=-1)  # (B, F, len(pairs))


def edge_length_loss(
    pred_verts: torch.Tensor,
    gt_verts: torch.Tensor,
    faces,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Edge-length loss (I2L-MeshNet L_edge): ``L = mean_f mean_{(i,j) in f} | ||v_i - v_j|| - ||v*_i - v*_j|| |``.

    Every face contributes its three edges (0-1, 0-2, 1-2), so an edge shared by two
    faces counts twice, as in I2L-MeshNet. ``v`` predicted, ``v*`` ground truth.

    Args:
        pred_verts, gt_verts: (B, N, 3) float (or (B, N, 2)), same units.
        faces: (F, 3) integer vertex indices (tensor or array).
        weight: optional (B,) per sample or (B, N) per vertex (edge weight = product
            of its two vertices' weights).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` → (B, F, 3).

    Returns:
        Scalar (or (B, F, 3)), units of the vertices. The gradient at a zero-length
        predicted edge is taken as 0 (no NaN).
    """
    name = "edge_length_loss"
    _check_reduction(reduction, name)
    _check_pair(pred_verts, gt_verts, name)
    faces = _faces_to(faces, pred_verts.shape[1], pred_verts.device, name)

    def lengths(verts: torch.Tensor) -> torch.Tensor:
        fv = verts[:, faces]  # (B, F, 3, C)
        edges = torch.stack([fv[:, :, j] - fv[:, :, i] for i, j in _FACE_EDGES], dim=2)  # (B, F, 3, C)
        return torch.linalg.vector_norm(edges, dim=-1)  # (B, F, 3)

    terms = (lengths(pred_verts) - lengths(gt_verts)).abs()  # (B, F, 3)
    return _reduce(terms, _mesh_weight(weight, pred_verts, faces, _FACE_EDGES, name), reduction)


def normal_loss(
    pred_verts: torch.Tensor,
    gt_verts: torch.Tensor,
    faces,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Surface-normal loss (I2L-MeshNet L_normal): ``L = mean_f mean_{(i,j) in f} |< (v_i - v_j)/||v_i - v_j||, n*_f >|``.

    ``n*_f`` is the unit normal of face f of the ground-truth mesh,
    ``normalize((v*_1 - v*_0) x (v*_2 - v*_0))``; each of the face's three predicted
    edges (0-1, 0-2, 1-2), normalised, should be perpendicular to it.

    Args:
        pred_verts, gt_verts: (B, N, 3) float, same units.
        faces: (F, 3) integer vertex indices (tensor or array).
        weight: optional (B,) per sample or (B, N) per vertex (the three edges of a
            face are weighted by the product of the face's three vertex weights).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` → (B, F, 3).

    Returns:
        Scalar (or (B, F, 3)), dimensionless in [0, 1] per term.
    """
    name = "normal_loss"
    _check_reduction(reduction, name)
    _check_pair(pred_verts, gt_verts, name)
    if pred_verts.shape[-1] != 3:
        raise ValueError(f"{name}: vertices must be 3D (B, N, 3), got {tuple(pred_verts.shape)}")
    faces = _faces_to(faces, pred_verts.shape[1], pred_verts.device, name)

    fp = pred_verts[:, faces]  # (B, F, 3, 3)
    edges = torch.stack([fp[:, :, j] - fp[:, :, i] for i, j in _FACE_EDGES], dim=2)  # (B, F, 3, 3)
    edges = F.normalize(edges, dim=-1)
    fg = gt_verts[:, faces]  # (B, F, 3, 3)
    normal = F.normalize(torch.linalg.cross(fg[:, :, 1] - fg[:, :, 0], fg[:, :, 2] - fg[:, :, 0]), dim=-1)  # (B, F, 3)
    terms = (edges * normal[:, :, None]).sum(-1).abs()  # (B, F, 3)
    face_weight = _mesh_weight(weight, pred_verts, faces, ((0, 1, 2),) * 3, name)
    return _reduce(terms, face_weight, reduction)
