"""Tests for the supervised hand-prior losses (losses.supervised, losses.mesh's I2L terms)."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from handtools.core.losses.mesh import edge_length_loss, normal_loss
from handtools.core.losses.supervised import joint_l1_loss, vertex_l1_loss

TRI = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)  # (1, 3, 3)
FACE = torch.tensor([[0, 1, 2]])


def _rot_x(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _sphere():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    verts = torch.as_tensor(mesh.vertices, dtype=torch.float64)[None]  # (1, 42, 3)
    return mesh, verts, torch.as_tensor(mesh.faces)


def test_losses_zero_for_identical_inputs():
    _, verts, faces = _sphere()
    verts = verts.repeat(2, 1, 1)
    assert vertex_l1_loss(verts, verts) == 0
    assert joint_l1_loss(verts[:, :21], verts[:, :21]) == 0
    assert edge_length_loss(verts, verts, faces) == 0
    assert float(normal_loss(verts, verts, faces)) == pytest.approx(0.0, abs=1e-12)


def test_l1_losses_closed_form_and_weights():
    gt = torch.zeros(2, 4, 3)
    pred = gt.clone()
    pred[0, 1] = torch.tensor([1.0, -2.0, 3.0])  # |d| sum 6 over 2*4*3 = 24 terms
    assert float(vertex_l1_loss(pred, gt)) == pytest.approx(6 / 24)
    assert float(vertex_l1_loss(pred, gt, reduction="sum")) == pytest.approx(6)
    assert vertex_l1_loss(pred, gt, reduction="none").shape == (2, 4, 3)
    # per-point mask: only vertex 1 of sample 0 counts -> mean of |1|, |-2|, |3|
    w = torch.zeros(2, 4)
    w[0, 1] = 1
    assert float(vertex_l1_loss(pred, gt, weight=w)) == pytest.approx(2.0)
    # per-sample weight: sample 1 (all zero error) weighted 3x -> 6 / (12 + 36)
    assert float(joint_l1_loss(pred, gt, weight=torch.tensor([1.0, 3.0]))) == pytest.approx(6 / 48)
    # per-coordinate weight: only z -> 3 / 8
    wc = torch.zeros(2, 4, 3)
    wc[..., 2] = 1
    assert float(joint_l1_loss(pred, gt, weight=wc)) == pytest.approx(3 / 8)
    # all-zero weights: 0 with a finite gradient
    p = pred.clone().requires_grad_()
    loss = vertex_l1_loss(p, gt, weight=torch.zeros(2))
    loss.backward()
    assert float(loss.detach()) == 0 and torch.isfinite(p.grad).all()


def test_edge_length_loss_scaled_triangle():
    s = 1.7
    edges = torch.tensor([1.0, 1.0, math.sqrt(2.0)], dtype=torch.float64)  # edges 0-1, 0-2, 1-2
    loss = edge_length_loss(TRI * s, TRI, FACE)
    assert float(loss) == pytest.approx((s - 1) * float(edges.mean()))
    torch.testing.assert_close(edge_length_loss(TRI * s, TRI, FACE, reduction="none"), ((s - 1) * edges).view(1, 1, 3))
    # rigid motion keeps lengths
    moved = TRI @ _rot_x(0.7).T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert float(edge_length_loss(moved, TRI, FACE)) == pytest.approx(0.0, abs=1e-12)
    # per-vertex mask on vertex 2 keeps only edge 0-1 (length 1 -> error s - 1)
    w = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(edge_length_loss(TRI * s, TRI, FACE, weight=w)) == pytest.approx(s - 1)


def test_edge_length_loss_matches_trimesh_edges():
    mesh, verts, faces = _sphere()
    s = 1.3
    # every face contributes its 3 edges: sum over trimesh's per-face edges (F*3 rows)
    ref = (s - 1) * float(mesh.edges_unique_length[mesh.edges_unique_inverse].sum())
    assert float(edge_length_loss(verts * s, verts, faces, reduction="sum")) == pytest.approx(ref)
    assert len(mesh.edges) == 3 * len(mesh.faces)


def test_normal_loss_rotated_triangle():
    theta = 0.4
    pred = TRI @ _rot_x(theta).T  # gt normal is +z; predicted edges tilt out of the plane
    # edges 0-1 (1,0,0): 0; 0-2 (0,1,0): sin; 1-2 (-1,1,0)/sqrt2: sin/sqrt2
    expected = (0 + math.sin(theta) + math.sin(theta) / math.sqrt(2)) / 3
    assert float(normal_loss(pred, TRI, FACE)) == pytest.approx(expected)
    # flipping the gt normal (reversed winding) does not matter: absolute cosine
    assert float(normal_loss(pred, TRI, FACE.flip(1))) == pytest.approx(expected)
    # in-plane similarity transforms keep edges perpendicular to the normal
    rot_z = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert float(normal_loss(2.5 * TRI @ rot_z.T + 1.0, TRI, FACE)) == pytest.approx(0.0, abs=1e-12)


def test_normal_loss_uses_gt_face_normals_like_trimesh():
    mesh, verts, faces = _sphere()
    torch.manual_seed(0)
    pred = verts + 0.05 * torch.randn_like(verts)
    terms = normal_loss(pred, verts, faces, reduction="none")  # (1, F, 3)
    n = torch.tensor(mesh.face_normals)  # (F, 3) reference unit normals
    fp = pred[0, faces]
    e = torch.stack([fp[:, 1] - fp[:, 0], fp[:, 2] - fp[:, 0], fp[:, 2] - fp[:, 1]], dim=1)
    e = e / e.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(terms[0], (e * n[:, None]).sum(-1).abs())


def test_loss_gradcheck_float64():
    torch.manual_seed(0)
    gt = torch.randn(2, 4, 3, dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    w = torch.rand(2, 4, dtype=torch.float64)
    pred = (gt + 0.3 * torch.randn_like(gt)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: vertex_l1_loss(p, gt, weight=w), (pred,))
    assert torch.autograd.gradcheck(lambda p: joint_l1_loss(p, gt, reduction="sum"), (pred,))
    assert torch.autograd.gradcheck(lambda p: edge_length_loss(p, gt, faces, weight=w), (pred,))
    assert torch.autograd.gradcheck(lambda p: normal_loss(p, gt, faces), (pred,))
    assert torch.autograd.gradcheck(lambda p: normal_loss(p, gt, faces, weight=w, reduction="none"), (pred,))


def test_degenerate_edges_give_finite_gradients():
    pred = torch.zeros(1, 3, 3, dtype=torch.float64, requires_grad=True)  # all vertices coincide
    (edge_length_loss(pred, TRI, FACE) + normal_loss(pred, TRI, FACE)).backward()
    assert torch.isfinite(pred.grad).all()


def test_loss_validation():
    v = torch.zeros(1, 3, 3)
    with pytest.raises(ValueError, match="same shape"):
        vertex_l1_loss(v, torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="reduction"):
        joint_l1_loss(v, v, reduction="max")
    with pytest.raises(ValueError, match="weight"):
        vertex_l1_loss(v, v, weight=torch.ones(2))
    with pytest.raises(ValueError, match="weight"):
        edge_length_loss(v, v, FACE, weight=torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match=r"face indices must lie in \[0, 3\)"):
        edge_length_loss(v, v, torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"faces must be \(F, 3\)"):
        normal_loss(v, v, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        normal_loss(v, v, FACE.float())
    with pytest.raises(ValueError, match="3D"):
        normal_loss(v[..., :2], v[..., :2], FACE)
