"""Self-supervised losses of the binocular method (Chen et al., ICCV 2021, §3.2, eqs. 3-9).

Photo-consistency (eq. 3, with SSIM eq. 4), edge (eq. 5), Laplacian (eq. 6), mask
(eq. 7), Chamfer (eq. 8) and normal (eq. 9). Each function computes the paper's
per-sample term and returns its mean over the batch, or the weighted mean
``sum_b w_b l_b / sum_b w_b`` with optional per-sample ``weight`` (B,) (all-zero
weights give 0). The loss weights (eq. 10) are not here: the ``selfsup-stereo``
command holds the paper's values (photo 100, edge 1, Laplacian 10, mask 0.1,
Chamfer 0.001, normal 0.001). Conventions and the choices the paper leaves open
are in ``docs/selfsup-stereo-losses.md``.

Units: the geometric losses work in the units of the vertices (squared for eqs. 5,
6, 8); images are float in [0, 1].
"""

from __future__ import annotations

from functools import lru_cache

import torch
from pytorch_msssim import ssim
from torch import Tensor
from torch.nn import functional as F

from handtools.core.geometry.checks import check_tensor

#: SSIM / L1 balance of eq. 3. The paper does not give its value; 0.85 is
#: Monodepth's (Godard et al., CVPR 2017), whose loss has the same form.
PHOTO_ALPHA = 0.85
#: Gaussian SSIM window (pytorch_msssim): 7 px, sigma 1.5 -- the usual sigma with a
#: window small enough for 64-256 px crops (pytorch_msssim's default is 11).
SSIM_WIN_SIZE = 7
SSIM_WIN_SIGMA = 1.5

_REDUCTIONS = ("sum", "mean")
#: Vertex pairs of the three edges of a triangle.
_FACE_EDGES = ((0, 1), (0, 2), (1, 2))


# --------------------------------------------------------------------------- helpers


def _batch_mean(per_sample: Tensor, weight, name: str) -> Tensor:
    """(B,) per-sample losses -> scalar mean, or weighted mean with (B,) ``weight``."""
    if weight is None:
        return per_sample.mean()
    w = torch.as_tensor(weight, dtype=per_sample.dtype, device=per_sample.device)
    if tuple(w.shape) != tuple(per_sample.shape):
        raise ValueError(f"{name}: weight must be ({per_sample.shape[0]},), got {tuple(w.shape)}")
    return (w * per_sample).sum() / w.sum().clamp_min(torch.finfo(per_sample.dtype).tiny)


def _check_reduction(reduction: str, name: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _faces(faces, num_verts: int, device, name: str) -> Tensor:
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


# --------------------------------------------------------------------------- mesh topology
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
        faces = _faces(faces, num_verts, getattr(faces, "device", None), "MeshTopology")
        self.num_verts = int(num_verts)
        self.faces = faces  # (F, 3)
        pairs = torch.cat([faces[:, list(p)] for p in _FACE_EDGES], dim=0)  # (3F, 2)
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
    f = _faces(faces, num_verts, "cpu", "mesh_topology")
    dev = str(torch.device(device)) if device is not None else "cpu"
    return _cached_topology(f.contiguous().numpy().tobytes(), f.shape[0], num_verts, dev)


# --------------------------------------------------------------------------- eq. 3-4
def photo_consistency_loss(
    img_tgt: Tensor,
    img_warped: Tensor,
    mask: Tensor,
    alpha: float = PHOTO_ALPHA,
    weight: Tensor | None = None,
    win_size: int = SSIM_WIN_SIZE,
    win_sigma: float = SSIM_WIN_SIGMA,
) -> Tensor:
    """Photo-consistency loss (eq. 3, SSIM eq. 4):
    ``alpha / 2 (1 - SSIM(~I M, I M)) + (1 - alpha) ||(~I - I) M||_1``.

    As in the paper, both images are multiplied by the mask (hand region only,
    background zero in both) and SSIM is the mean SSIM of these masked images
    (``pytorch_msssim.ssim``, Gaussian window, K = (0.01, 0.03), data range 1; that
    library returns per-image means, not per-pixel maps, which is what eq. 3 uses).
    The L1 term is the mean absolute difference over mask pixels and channels.

    Args:
        img_tgt: (B, C, H, W) float in [0, 1], the real view (``I_r``).
        img_warped: (B, C, H, W) float, the other view warped into it (``~I_r``,
            from ``stereo.warp_with_disparity``; 0 where the warp is invalid).
        mask: (B, H, W) or (B, 1, H, W) float/bool in [0, 1], the hand mask ``M_r``
            (the paper: the ground-truth / skin mask of the target view). Pixels
            where the mask is on but the warp is invalid count as mismatches, which
            pulls the mesh over the mask.
        alpha: SSIM weight in [0, 1]; the paper does not state it, 0.85 is Monodepth's.
        weight: optional (B,) per-sample weights.
        win_size, win_sigma: Gaussian SSIM window (odd size <= H, W) and sigma, pixels.

    Returns:
        Scalar, dimensionless (0 for identical masked images).
    """
    name = "photo_consistency_loss"
    check_tensor(img_tgt, "img_tgt", (None, None, None, None))
    B, C, H, W = img_tgt.shape
    check_tensor(img_warped, "img_warped", (B, C, H, W))
    if mask.ndim == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"{name}: mask must be (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
        mask = mask[:, 0]
    if tuple(mask.shape) != (B, H, W):
        raise ValueError(f"{name}: mask must be ({B}, {H}, {W}), got {tuple(mask.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha}")
    if win_size % 2 != 1 or win_size > min(H, W):
        raise ValueError(f"{name}: win_size must be odd and <= min(H, W) = {min(H, W)}, got {win_size}")
    m = mask.to(img_tgt.dtype)[:, None]  # (B, 1, H, W)
    x = img_warped.to(img_tgt.dtype) * m  # (B, C, H, W)
    y = img_tgt * m
    ssim_b = ssim(x, y, data_range=1.0, size_average=False, win_size=win_size,
                  win_sigma=win_sigma)  # (B,)
    area = (m.flatten(1).sum(1) * C).clamp_min(1.0)  # (B,)
    l1_b = (x - y).abs().flatten(1).sum(1) / area  # (B,)
    per_sample = 0.5 * alpha * (1.0 - ssim_b) + (1.0 - alpha) * l1_b  # (B,)
    return _batch_mean(per_sample, weight, name)


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
    _check_reduction(reduction, name)
    check_tensor(pred_verts, "pred_verts", (None, None, 3))
    check_tensor(pseudo_verts, "pseudo_verts", tuple(pred_verts.shape))
    topo = mesh_topology(faces, pred_verts.shape[1], pred_verts.device)
    i, j = topo.edges[:, 0], topo.edges[:, 1]  # (E,)

    def lengths(v: Tensor) -> Tensor:
        return torch.linalg.vector_norm(v[:, j] - v[:, i], dim=-1)  # (B, E)

    sq = (lengths(pseudo_verts.to(pred_verts.dtype)) - lengths(pred_verts)) ** 2  # (B, E)
    per_sample = sq.sum(1) if reduction == "sum" else sq.mean(1)  # (B,)
    return _batch_mean(per_sample, weight, name)


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
    return _batch_mean(per_sample, weight, name)


# --------------------------------------------------------------------------- eq. 7
def mask_loss(silhouette: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mask loss (eq. 7): ``||M - ~M||^2``, as the mean over pixels of the squared difference.

    (The mean, not the sum, so the value does not depend on the crop size; for
    binary images it is the fraction of pixels that disagree, i.e. also their L1.)

    Args:
        silhouette: (B, H, W) float in [0, 1], rendered from the predicted mesh
            (``RenderOutput.silhouette``, antialiased so it has gradients).
        mask: (B, H, W) float or bool in [0, 1], the ground-truth / skin mask.
        weight: optional (B,) per-sample weights.

    Returns:
        Scalar, dimensionless in [0, 1].
    """
    name = "mask_loss"
    check_tensor(silhouette, "silhouette", (None, None, None))
    if tuple(mask.shape) != tuple(silhouette.shape):
        raise ValueError(f"{name}: mask must be {tuple(silhouette.shape)}, got {tuple(mask.shape)}")
    per_sample = ((silhouette - mask.to(silhouette.dtype)) ** 2).flatten(1).mean(1)  # (B,)
    return _batch_mean(per_sample, weight, name)


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
    return _batch_mean(per_sample, weight, name)


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
    _check_reduction(reduction, name)
    check_tensor(verts_a, "verts_a", (None, None, 3))
    check_tensor(verts_b, "verts_b", tuple(verts_a.shape))
    topo = mesh_topology(faces, verts_a.shape[1], verts_a.device)
    fa = verts_a[:, topo.faces]  # (B, F, 3, 3)
    edges = torch.stack([fa[:, :, j] - fa[:, :, i] for i, j in _FACE_EDGES], dim=2)  # (B, F, 3, 3)
    edges = F.normalize(edges, dim=-1)
    fb = verts_b.to(verts_a.dtype)[:, topo.faces]  # (B, F, 3, 3)
    normal = F.normalize(torch.linalg.cross(fb[:, :, 1] - fb[:, :, 0], fb[:, :, 2] - fb[:, :, 0]),
                         dim=-1)  # (B, F, 3)
    terms = (edges * normal[:, :, None]).sum(-1).abs()  # (B, F, 3)
    per_sample = terms.flatten(1).sum(1) if reduction == "sum" else terms.flatten(1).mean(1)
    return _batch_mean(per_sample, weight, name)
