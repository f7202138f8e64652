"""Mesh losses over one triangle-mesh topology, shared by every method.

* :class:`MeshTopology`: unique edges and neighbourhoods of a mesh, computed once.
* Supervised (I2L-MeshNet, Moon & Lee, ECCV 2020, §3.4): :func:`edge_length_loss`
  (L_edge) and :func:`normal_loss` (L_normal) against a ground-truth mesh.
* Self-supervised (Chen et al., ICCV 2021, §3.2): :func:`edge_loss` (eq. 5, against
  pseudo labels), :func:`laplacian_loss` (eq. 6), :func:`chamfer_loss` (eq. 8),
  :func:`normal_consistency_loss` (eq. 9).

Units are the vertices' (squared for eqs. 5, 6, 8). Per-sample ``weight`` (B,) gives
a weighted batch mean (:func:`handtools.core.losses.reduction.batch_mean`).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor
from torch.nn import functional as F

from handtools.core.geometry.checks import check_tensor
from handtools.core.losses.reduction import batch_mean, check_pair, check_reduction, reduce_terms, weight_to

#: Vertex pairs of the three edges of a triangle (I2L-MeshNet order).
FACE_EDGES = ((0, 1), (0, 2), (1, 2))
_SUPERVISED_REDUCTIONS = ("mean", "sum", "none")
_SUM_OR_MEAN = ("sum", "mean")


def check_faces(faces, num_verts: int, device, name: str) -> Tensor:
    faces = torch.as_tensor(faces, device=device)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] < 1:
        raise ValueError(f"{name}: faces must be (F, 3) with F >= 1, got {tuple(faces.shape)}")
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise ValueError(f"{name}: faces must be integer vertex indices, got {faces.dtype}")
    faces = faces.long()
    if int(faces.min()) < 0 or int(faces.max()) >= num_verts:
        raise ValueError(f"{name}: face indices must lie in [0, {num_verts}), got "
                         f"[{int(faces.min())}, {int(faces.max())}]")
    return faces



class MeshTopology:
    """Unique edges and uniform-Laplacian neighbourhoods of a triangle mesh, computed once.

    Args:
        faces: (F, 3) integer vertex indices (tensor or array).
        num_verts: number of vertices V (778 for MANO).

    Attributes (on ``faces``' device; ``.to(device)`` returns a moved copy):
        faces: (F, 3) int64.
        edges: (E, 2) int64 unique undirected edges, ``i < j`` (eq. 5's ``e_i``).
        degree: (V,) int64, ``|N(v)|`` of eq. 6 (0 for isolated vertices).
    """

    def __init__(self, faces, num_verts: int):
        faces = check_faces(faces, num_verts, getattr(faces, "device", None), "MeshTopology")
        self.num_verts = int(num_verts)
        self.faces = faces  # (F, 3)
        pairs = torch.cat([faces[:, list(p)] for p in FACE_EDGES], dim=0)  # (3F, 2)
        pairs = torch.sort(pairs, dim=1).values  # i < j
        self.edges = torch.unique(pairs, dim=0)  # (E, 2)
        self.degree = torch.bincount(self.edges.flatten(), minlength=self.num_verts)  # (V,)

    def to(self, device) -> MeshTopology:
        out = object.__new__(MeshTopology)
        out.num_verts = self.num_verts
        out.faces, out.edges, out.degree = (t.to(device) for t in (self.faces, self.edges, self.degree))
        return out

    def neighbour_mean(self, verts: Tensor) -> Tensor:
        """(B, V, C) -> (B, V, C) mean of each vertex's neighbours (0 where none).

        Written with index_add over the edge list rather than a sparse matrix:
        same cost, any dtype/device, deterministic shapes.
        """
        i, j = self.edges[:, 0], self.edges[:, 1]  # (E,)
        total = torch.zeros_like(verts)
        total = total.index_add(1, i, verts[:, j]).index_add(1, j, verts[:, i])  # (B, V, C)
        deg = self.degree.clamp_min(1).to(verts.dtype)[None, :, None]  # (1, V, 1)
        return total / deg


@lru_cache(maxsize=16)
def _cached_topology(key: bytes, num_faces: int, num_verts: int, device: str) -> MeshTopology:
    faces = torch.frombuffer(bytearray(key), dtype=torch.int64).view(num_faces, 3)
    return MeshTopology(faces.to(device), num_verts)


def mesh_topology(faces, num_verts: int, device=None) -> MeshTopology:
    """Cached :class:`MeshTopology` for ``faces`` (keyed by their values, so building it
    once per run costs one small host copy per call; pass a MeshTopology to the
    losses to skip even that)."""
    if isinstance(faces, MeshTopology):
        if faces.num_verts != num_verts:
            raise ValueError(f"MeshTopology has {faces.num_verts} vertices, the mesh {num_verts}")
        return faces if device is None or faces.edges.device == torch.device(device) else faces.to(device)
    f = check_faces(faces, num_verts, "cpu", "mesh_topology")
    dev = str(torch.device(device)) if device is not None else "cpu"
    return _cached_topology(f.contiguous().numpy().tobytes(), f.shape[0], num_verts, dev)



# --------------------------------------------------------------------------- supervised (I2L-MeshNet)
def _mesh_weight(weight, pred: torch.Tensor, faces: torch.Tensor, pairs, name: str) -> torch.Tensor | None:
    """Per-vertex or per-sample weights → (B, F, len(pairs)) weights on face edges/faces."""
    if weight is None:
        return None
    w = weight_to(weight, pred, (1, 2), name)[..., 0]  # (B, N) or (B, 1)
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
    check_reduction(reduction, _SUPERVISED_REDUCTIONS, name)
    check_pair(pred_verts, gt_verts, name)
    faces = check_faces(faces, pred_verts.shape[1], pred_verts.device, name)

    def lengths(verts: torch.Tensor) -> torch.Tensor:
        fv = verts[:, faces]  # (B, F, 3, C)
        edges = torch.stack([fv[:, :, j] - fv[:, :, i] for i, j in FACE_EDGES], dim=2)  # (B, F, 3, C)
        return torch.linalg.vector_norm(edges, dim=-1)  # (B, F, 3)

    terms = (lengths(pred_verts) - lengths(gt_verts)).abs()  # (B, F, 3)
    return reduce_terms(terms, _mesh_weight(weight, pred_verts, faces, FACE_EDGES, name), reduction)


def _edge_normal_terms(verts_a: Tensor, verts_b: Tensor, faces: Tensor) -> Tensor:
    """``|<unit edge of face f of a, unit normal of face f of b>|`` for the 3 edges of each face.

    The term shared by I2L-MeshNet's L_normal and the binocular paper's eq. 9.
    verts_a, verts_b: (B, V, 3); faces: (F, 3) long, checked. Returns (B, F, 3) in [0, 1].
    """
    fa = verts_a[:, faces]  # (B, F, 3, 3)
    edges = F.normalize(torch.stack([fa[:, :, j] - fa[:, :, i] for i, j in FACE_EDGES], dim=2), dim=-1)
    fb = verts_b[:, faces]  # (B, F, 3, 3)
    normal = F.normalize(torch.linalg.cross(fb[:, :, 1] - fb[:, :, 0], fb[:, :, 2] - fb[:, :, 0]), dim=-1)
    return (edges * normal[:, :, None]).sum(-1).abs()


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
    check_reduction(reduction, _SUPERVISED_REDUCTIONS, name)
    check_pair(pred_verts, gt_verts, name)
    if pred_verts.shape[-1] != 3:
        raise ValueError(f"{name}: vertices must be 3D (B, N, 3), got {tuple(pred_verts.shape)}")
    faces = check_faces(faces, pred_verts.shape[1], pred_verts.device, name)

    terms = _edge_normal_terms(pred_verts, gt_verts, faces)  # (B, F, 3)
    face_weight = _mesh_weight(weight, pred_verts, faces, ((0, 1, 2),) * 3, name)
    return reduce_terms(terms, face_weight, reduction)


# --------------------------------------------------------------------------- eq. 5
def edge_loss(
    pred_verts: Tensor,
    pseudo_verts: Tensor,
    faces,
    weight: Tensor | None = None,
    reduction: str = "sum",
) -> Tensor:
    """Edge loss (eq. 5): ``sum_i (||e_i|| - ||~e_i||)^2`` over the mesh's unique edges.

    ``~e_i`` are the edges of the predicted mesh, ``e_i`` those of the pseudo label
    (the initial model's prediction on the same image), so the loss keeps the
    hand's shape (edge lengths) without fixing its pose.

    Args:
        pred_verts, pseudo_verts: (B, V, 3) float, same units (e.g. metres).
        faces: (F, 3) integer indices, or a :class:`MeshTopology`.
        weight: optional (B,) per-sample weights.
        reduction: ``"sum"`` over edges (eq. 5) or ``"mean"``.

    Returns:
        Scalar, units squared. Zero-length edges get gradient 0, not NaN.
    """
    name = "edge_loss"
    check_reduction(reduction, _SUM_OR_MEAN, name)
    check_tensor(pred_verts, "pred_verts", (None, None, 3))
    check_tensor(pseudo_verts, "pseudo_verts", tuple(pred_verts.shape))
    topo = mesh_topology(faces, pred_verts.shape[1], pred_verts.device)
    i, j = topo.edges[:, 0], topo.edges[:, 1]  # (E,)

    def lengths(v: Tensor) -> Tensor:
        return torch.linalg.vector_norm(v[:, j] - v[:, i], dim=-1)  # (B, E)

    sq = (lengths(pseudo_verts.to(pred_verts.dtype)) - lengths(pred_verts)) ** 2  # (B, E)
    per_sample = sq.sum(1) if reduction == "sum" else sq.mean(1)  # (B,)
    return batch_mean(per_sample, weight, name)


# --------------------------------------------------------------------------- eq. 6
def laplacian_loss(verts: Tensor, faces, weight: Tensor | None = None) -> Tensor:
    """Uniform Laplacian smoothness (eq. 6): ``1/V sum_v ||v - 1/|N(v)| sum_{v' in N(v)} v'||^2``.

    Eq. 6 prints the Laplacian vector without a norm; the squared Euclidean norm
    (as in Pixel2Mesh, where the paper's edge/normal/Chamfer terms come from) makes
    it a smooth scalar. Neighbourhoods are the mesh's edges (:class:`MeshTopology`,
    built once and cached).

    Args:
        verts: (B, V, 3) float.
        faces: (F, 3) integer indices, or a :class:`MeshTopology`.
        weight: optional (B,) per-sample weights.

    Returns:
        Scalar, units squared.
    """
    name = "laplacian_loss"
    check_tensor(verts, "verts", (None, None, 3))
    topo = mesh_topology(faces, verts.shape[1], verts.device)
    delta = verts - topo.neighbour_mean(verts)  # (B, V, 3)
    per_sample = (delta ** 2).sum(-1).mean(1)  # (B,)
    return batch_mean(per_sample, weight, name)


# --------------------------------------------------------------------------- eq. 8
def _nearest_sq(a: Tensor, b: Tensor) -> Tensor:
    """(B, N, 3), (B, M, 3) -> (B, N) squared distance from each a to its nearest b."""
    with torch.no_grad():
        # Brute force (778 x 778 is small). Centre both sets on one point first so the
        # expanded form |a|^2 + |b|^2 - 2 a.b loses little precision at metres from the camera.
        centre = torch.cat([a, b], dim=1).mean(1, keepdim=True)  # (B, 1, 3)
        idx = torch.cdist(a - centre, b - centre).argmin(-1)  # (B, N)
    nearest = torch.gather(b, 1, idx[..., None].expand(-1, -1, b.shape[-1]))  # (B, N, 3)
    return ((a - nearest) ** 2).sum(-1)  # (B, N), exact and smooth in a and b


def chamfer_loss(a: Tensor, b: Tensor, weight: Tensor | None = None) -> Tensor:
    """Chamfer distance loss (eq. 8):
    ``1/N (sum_{a} min_{b} ||a - b||^2 + sum_{b} min_{a} ||b - a||^2)``.

    Symmetric, squared distances. With different sizes each direction is averaged
    over its own points (eq. 8 for N = M). Give both meshes in one frame (the left
    and right predictions, e.g. the right one through
    ``stereo.left_from_right_frame``).

    Args:
        a: (B, N, 3) float. b: (B, M, 3) float, same units.
        weight: optional (B,) per-sample weights.

    Returns:
        Scalar, units squared.
    """
    name = "chamfer_loss"
    check_tensor(a, "a", (None, None, 3))
    check_tensor(b, "b", (a.shape[0], None, 3))
    b = b.to(a.dtype)
    per_sample = _nearest_sq(a, b).mean(1) + _nearest_sq(b, a).mean(1)  # (B,)
    return batch_mean(per_sample, weight, name)


# --------------------------------------------------------------------------- eq. 9
def normal_consistency_loss(
    verts_a: Tensor,
    verts_b: Tensor,
    faces,
    weight: Tensor | None = None,
    reduction: str = "sum",
) -> Tensor:
    """Normal loss (eq. 9): ``sum_f sum_{{i,j} in f} |<(v_i^a - v_j^a) / ||v_i^a - v_j^a||, n_f^b>|``.

    Every edge of face f of mesh ``a`` (the left mesh in eq. 9) should be
    perpendicular to the unit normal of the same face of mesh ``b`` (the right
    mesh): zero when the two meshes' faces are parallel. For a triangle of ``b``
    tilted by ``theta`` about an axis in the plane of ``a``'s triangle, each edge of
    ``a`` contributes ``sin(theta) |sin(angle between edge and axis)|``. Eq. 9 is not
    symmetric; call it both ways and add for a symmetric loss.

    Args:
        verts_a, verts_b: (B, V, 3) float, same frame (see :func:`chamfer_loss`).
        faces: (F, 3) integer indices, or a :class:`MeshTopology`.
        weight: optional (B,) per-sample weights.
        reduction: ``"sum"`` over faces and edges (eq. 9) or ``"mean"`` (over 3F terms).

    Returns:
        Scalar, dimensionless (each term in [0, 1]). Degenerate edges/faces
        contribute 0 with finite gradients.
    """
    name = "normal_consistency_loss"
    check_reduction(reduction, _SUM_OR_MEAN, name)
    check_tensor(verts_a, "verts_a", (None, None, 3))
    check_tensor(verts_b, "verts_b", tuple(verts_a.shape))
    topo = mesh_topology(faces, verts_a.shape[1], verts_a.device)
    terms = _edge_normal_terms(verts_a, verts_b.to(verts_a.dtype), topo.faces)  # (B, F, 3)
    per_sample = terms.flatten(1).sum(1) if reduction == "sum" else terms.flatten(1).mean(1)
    return batch_mean(per_sample, weight, name)
