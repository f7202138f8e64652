"""Tests for the bundled open hand model (handtools.core.hand.open_hand)."""

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

from handtools.core.hand.joint_limits import sample_poses
from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_PARENTS, NUM_FACES, NUM_VERTICES
from handtools.core.hand.open_hand import build_model, bundled_model_path
from handtools.core.hand.open_hand_rig import FINGER_OF_MANO_JOINT


@pytest.fixture(scope="module")
def model():
    return dict(np.load(bundled_model_path()))


def _layer(model, **kw):
    kw = dict(use_pca=False, flat_hand_mean=True) | kw
    return smplx.MANO(str(bundled_model_path().parent), is_rhand=True,
                      data_struct=Struct(**model), **kw)


def _edges(faces):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return e


def test_shipped_file_equals_regenerated(model):
    # bit-identical on one platform; allclose guards against BLAS differences elsewhere
    fresh = build_model()
    assert set(fresh) == set(model)
    for k in fresh:
        if fresh[k].dtype.kind in "iU":
            np.testing.assert_array_equal(fresh[k], model[k], err_msg=k)
        else:
            np.testing.assert_allclose(fresh[k], model[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_keys_shapes_dtypes(model):
    shapes = {"v_template": (778, 3), "f": (1538, 3), "shapedirs": (778, 3, 10),
              "posedirs": (778, 3, 135), "J_regressor": (16, 778), "weights": (778, 16),
              "kintree_table": (2, 16), "hands_components": (45, 45), "hands_mean": (45,)}
    for k, s in shapes.items():
        assert model[k].shape == s, k
        assert model[k].dtype == (np.int64 if k in ("f", "kintree_table") else np.float64), k
    assert (NUM_VERTICES, NUM_FACES) == (778, 1538)
    assert tuple(model["kintree_table"][0]) == MANO_PARENTS
    assert tuple(model["kintree_table"][1]) == tuple(range(16))


def test_loads_with_smplx_and_matches_joint_regressor(model):
    for use_pca, comps in ((False, 45), (True, 6), (True, 45)):
        for flat in (True, False):
            layer = _layer(model, use_pca=use_pca, num_pca_comps=comps, flat_hand_mean=flat)
            out = layer()
            assert out.vertices.shape == (1, 778, 3)
            assert torch.isfinite(out.vertices).all()
    out = _layer(model)()
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), model["v_template"], atol=1e-6)
    np.testing.assert_allclose(out.joints[0].detach().numpy(), model["J_regressor"] @ model["v_template"],
                               atol=1e-6)


def test_manifold_open_at_the_wrist(model):
    f = model["f"]
    assert f.min() == 0 and f.max() == 777 and len(np.unique(f)) == 778
    e = _edges(f)
    directed = {tuple(x) for x in e.tolist()}
    assert len(directed) == len(e)  # consistent orientation: no directed edge repeated
    und, counts = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    assert set(counts.tolist()) <= {1, 2}
    boundary = und[counts == 1]
    assert len(boundary) == 16
    # one loop: every boundary vertex has degree 2 and the loop is connected
    verts, deg = np.unique(boundary, return_counts=True)
    assert len(verts) == 16 and np.all(deg == 2)
    adj = {v: [] for v in verts.tolist()}
    for a, b in boundary.tolist():
        adj[a].append(b)
        adj[b].append(a)
    seen, cur, prev = {verts[0]}, adj[verts[0]][0], verts[0]
    while cur != verts[0]:
        seen.add(cur)
        prev, cur = cur, [x for x in adj[cur] if x != prev][0]
    assert len(seen) == 16
    assert 778 - len(und) + 1538 == 1  # Euler characteristic of a disk
    # no degenerate triangles
    v = model["v_template"]
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-8


def test_normals_point_outward(model):
    v, f = model["v_template"], model["f"]
    e = np.sort(_edges(f), axis=1)
    und, counts = np.unique(e, axis=0, return_counts=True)
    loop = np.unique(und[counts == 1])
    # close the wrist hole with a fan around its centroid, oriented like the surface
    c = v[loop].mean(axis=0)
    vv = np.vstack([v, c])
    cap = [(b, a, 778) for a, b in _edges(f).tolist() if a in set(loop) and b in set(loop)
           and tuple(sorted((a, b))) in {tuple(x) for x in und[counts == 1].tolist()}]
    ff = np.vstack([f, np.array(cap)])
    vol = np.einsum("ij,ij->i", vv[ff[:, 0]], np.cross(vv[ff[:, 1]], vv[ff[:, 2]])).sum() / 6
    assert vol > 0
    assert 1.5e-4 < vol < 6e-4  # an adult hand is ~300-500 ml


def test_skinning_weights(model):
    w = model["weights"]
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # fingertips are driven by their last joint
    for tip, j in zip(FINGERTIP_VERTICES, (15, 3, 6, 12, 9)):
        assert w[tip].argmax() == j
    # smooth: weights of neighbouring vertices differ little
    e = _edges(model["f"])
    jump = np.abs(w[e[:, 0]] - w[e[:, 1]]).max(axis=1)
    assert jump.max() < 0.65 and np.percentile(jump, 99) < 0.45  # largest at the finger webs


def test_joint_regressor(model):
    jr = model["J_regressor"]
    assert np.all(jr >= 0)
    np.testing.assert_allclose(jr.sum(axis=1), 1.0, atol=1e-12)
    # each joint is a local average (<= 3 cm from its vertices)
    j = jr @ model["v_template"]
    for k in range(16):
        idx = np.nonzero(jr[k])[0]
        assert np.linalg.norm(model["v_template"][idx] - j[k], axis=1).max() < 0.03


def test_adult_proportions_and_frame(model):
    j = model["J_regressor"] @ model["v_template"]
    assert abs(np.linalg.norm(j[5] - j[4]) - 0.028) < 0.004  # middle1 -> middle2
    v = model["v_template"]
    tips = v[list(FINGERTIP_VERTICES)]
    # fingers point along -x, thumb on +z side, little finger on -z side
    assert np.all(tips[:, 0] < j[0, 0] - 0.1)
    assert tips[0, 2] > tips[1, 2] > tips[2, 2] > tips[3, 2] > tips[4, 2]
    hand_length = j[0, 0] - tips[2, 0]
    assert 0.15 < hand_length < 0.2


def test_fingertips_are_the_extreme_vertices(model):
    v = model["v_template"]
    j = model["J_regressor"] @ v
    w = model["weights"]
    for tip, last in zip(FINGERTIP_VERTICES, (15, 3, 6, 12, 9)):
        root = [k for k in range(1, 16) if FINGER_OF_MANO_JOINT[k] == FINGER_OF_MANO_JOINT[last]][0]
        d = (j[last] - j[root]) / np.linalg.norm(j[last] - j[root])
        finger = np.nonzero(w[:, last] > 0.5)[0]
        proj = (v[finger] - j[0]) @ d
        assert finger[np.argmax(proj)] == tip


def test_posed_meshes_are_sane(model):
    layer = _layer(model)
    poses = torch.tensor(sample_poses(64, np.random.default_rng(0)), dtype=torch.float32)
    betas = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    out = layer(hand_pose=poses, betas=betas, global_orient=torch.randn(64, 3) * 0.5)
    v = out.vertices.detach().double().numpy()
    assert np.isfinite(v).all()
    e = _edges(model["f"])
    rest = np.linalg.norm(model["v_template"][e[:, 0]] - model["v_template"][e[:, 1]], axis=1)
    posed = np.linalg.norm(v[:, e[:, 0]] - v[:, e[:, 1]], axis=2)
    ratio = posed / rest
    # a few edges are squeezed at strongly flexed creases or stretched across the thumb
    # web (as with MANO's LBS); the bulk keeps its length
    assert ratio.min() > 0.05 and ratio.max() < 5.0
    assert np.percentile(ratio, 0.1) > 0.4 and np.percentile(ratio, 99.9) < 2.2
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    # pose blend shapes are non-trivial but small corrections
    pd = model["posedirs"]
    assert 1e-4 < np.abs(pd).max() < 0.05
    assert tuple(layer.posedirs.shape) == (135, 2334)


def test_shape_components_change_proportions_smoothly(model):
    layer = _layer(model)
    betas = torch.zeros(9, 10)
    betas[:, 0] = torch.linspace(-2, 2, 9)
    out = layer(betas=betas, global_orient=torch.zeros(9, 3), hand_pose=torch.zeros(9, 45))
    j = out.joints.detach().double().numpy()
    v = out.vertices.detach().double().numpy()
    tip = v[:, FINGERTIP_VERTICES[2]]
    length = np.linalg.norm(tip - j[:, 0], axis=1)  # wrist -> middle fingertip
    steps = np.diff(length)
    assert np.all(steps > 0) or np.all(steps < 0)  # monotonic
    assert np.allclose(steps, steps[0], rtol=0.05)  # linear in beta
    assert 0.01 < abs(length[-1] - length[0]) < 0.08  # +-2 sd changes size by cm
    # every component changes the mesh, components are orthogonal
    sd = model["shapedirs"].reshape(-1, 10)
    assert np.all(np.linalg.norm(sd, axis=0) > 1e-4)
    g = sd.T @ sd
    assert np.abs(g - np.diag(np.diag(g))).max() < 1e-6 * np.diag(g).max()
    # joints follow shape changes through the regressor (not fixed)
    assert np.abs(j[-1] - j[0]).max() > 0.005


def test_pose_pca(model):
    comps, mean = model["hands_components"], model["hands_mean"]
    var = np.linalg.norm(comps, axis=1)
    assert np.all(np.diff(var) <= 1e-12)  # ordered by decreasing std
    g = comps @ comps.T
    np.testing.assert_allclose(g, np.diag(np.diag(g)), atol=1e-9)
    assert np.all(np.isfinite(mean)) and np.abs(mean).max() < 1.5
