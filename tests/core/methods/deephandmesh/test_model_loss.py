"""DeepHandMesh on MANO topology: LBS vs HandModel, each loss vs a closed form, sphere proxies
vs brute force, export round trip through HandModel and smplx, the test subject."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from handtools.core.data.subject import make_test_subject
from handtools.core.hand.mano_io import load_mano, validate_mano_arrays
from handtools.core.hand.model import HandModel
from handtools.core.hand.open_hand import bundled_model_path
from handtools.core.methods.deephandmesh.config import CPU, PAPER
from handtools.core.methods.deephandmesh.export import export_mano, resolve_regressor
from handtools.core.methods.deephandmesh.loss import (
    FINGER_BONES,
    TIP_BONES,
    SphereProxies,
    depth_loss,
    nonrigid_penetration,
    pose_loss,
    rigid_penetration,
)
from handtools.core.methods.deephandmesh.model import PersonalHandModel, initial_global_pose


@pytest.fixture(scope="module")
def base():
    return load_mano(bundled_model_path())


def _perturb(model, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def test_zero_correctives_is_the_base_hand_model(base):
    model = PersonalHandModel(base, replace(CPU, init_std=0.0))
    hand = HandModel(base)
    pose = torch.randn(3, 48, generator=torch.Generator().manual_seed(1)) * 0.4
    out, ref = model(pose), hand(pose, torch.zeros(3, 10))
    assert torch.allclose(out["verts"], ref.verts, atol=1e-6)
    assert torch.allclose(out["joints"], ref.joints, atol=1e-6)


def test_skeleton_corrective_moves_bones_and_rigid_alignment_recovers_global_pose(base):
    model = PersonalHandModel(base, replace(CPU, init_std=0.0))
    with torch.no_grad():
        model.skeleton_dec[2].bias[3 * 2:3 * 2 + 3] = torch.tensor([5.0, 0.0, 0.0])  # +5 mm on bone 1->2
    j0 = model.J_regressor @ model.v_template
    j = model.rest_joints()
    assert torch.allclose(j[2] - j0[2], torch.tensor([5e-3, 0, 0]), atol=1e-7)
    assert torch.allclose(j[3] - j0[3], torch.tensor([5e-3, 0, 0]), atol=1e-7)  # children follow
    assert torch.allclose(j[4], j0[4], atol=1e-7)  # other fingers do not
    pose = torch.zeros(2, 48)
    pose[:, :3] = torch.tensor([[0.3, -0.2, 1.0], [-1.2, 0.4, 0.1]])
    trans = torch.tensor([[0.01, 0.02, 0.5], [0.0, -0.1, 0.4]])
    rot, t = initial_global_pose(model, model(pose, trans)["joints"])
    assert torch.allclose(rot, pose[:, :3], atol=1e-4) and torch.allclose(t, trans, atol=1e-5)


def test_pose_loss_closed_form():
    pred = torch.zeros(2, 21, 3)
    gt = torch.zeros(2, 21, 3)
    gt[0, 3] = torch.tensor([0.001, -0.002, 0.003])  # |.|_1 = 6 mm on one of 42 joints
    assert pose_loss(pred, gt).item() == pytest.approx(6.0 / 42)
    valid = torch.ones(2, 21, dtype=torch.bool)
    valid[1] = False
    gt[1] = float("nan")
    assert pose_loss(pred, gt, valid).item() == pytest.approx(6.0 / 21)


def test_depth_loss_closed_form():
    r = torch.zeros(1, 2, 4, 4)
    g = torch.zeros(1, 2, 4, 4)
    r[0, 0, :2, :2] = 0.500
    g[0, 0, :2, :2] = 0.5005  # 0.5 mm: SmoothL1 = 0.5 * 0.5^2 = 0.125
    g[0, 0, 0, 0] = 0.503  # 3 mm: 3 - 0.5 = 2.5
    r[0, 1, 0, 0] = 0.5  # view 1: no pixel with both depths
    g[0, 1, 1, 1] = 0.5
    want = (3 * 0.125 + 2.5) / 4
    assert depth_loss(r, g).item() == pytest.approx(want, rel=1e-4)
    assert depth_loss(r, g, "all").item() == pytest.approx((3 * 0.125 + 2.5) / 32, rel=1e-4)


def test_sphere_proxies_against_brute_force(base):
    model = PersonalHandModel(base, replace(CPU, init_std=0.0)).requires_grad_(False)
    rest = model(torch.zeros(1, 48))
    sp = SphereProxies(rest["joints"][0], rest["verts"][0], k=10)
    J, Vt = rest["joints"][0].numpy(), rest["verts"][0].numpy()
    for b, (p, c) in enumerate(FINGER_BONES):
        for k in range(10):
            centre = J[p] + k / 9 * (J[c] - J[p])
            assert np.allclose(sp.centres(rest["joints"])[0, b, k].numpy(), centre, atol=1e-7)
            assert sp.radii[b, k].item() == pytest.approx(np.linalg.norm(Vt - centre, axis=1).min(), abs=1e-7)
    # the rigid term against a loop over every sphere pair of bones sharing no joint
    pose = torch.randn(1, 48, generator=torch.Generator().manual_seed(3)) * 0.6
    out = model(pose)
    centres = sp.centres(out["joints"])[0].numpy()
    radii = sp.radii.numpy()
    total = 0.0
    for a in range(len(FINGER_BONES)):
        for b in range(a + 1, len(FINGER_BONES)):
            if set(FINGER_BONES[a]) & set(FINGER_BONES[b]):
                continue
            for k in range(10):
                for kk in range(10):
                    d = np.linalg.norm(centres[a, k] - centres[b, kk])
                    total += max(radii[a, k] + radii[b, kk] - d, 0.0)
    got = rigid_penetration(sp.centres(out["joints"]), sp.radii, sp.pairs).item()
    assert got == pytest.approx(total * 1000, rel=1e-4, abs=1e-4)


def test_rigid_and_nonrigid_penetration_closed_form():
    # two parallel bones of 3 spheres, radius 1 cm, 1.5 cm apart: each pair k, k' overlaps by
    # 2 - sqrt(1.5^2 + (dk)^2) cm where positive
    centres = torch.zeros(1, 2, 3, 3)
    centres[0, 0, :, 0] = torch.tensor([0.0, 0.01, 0.02])
    centres[0, 1, :, 0] = torch.tensor([0.0, 0.01, 0.02])
    centres[0, 1, :, 1] = 0.015
    radii = torch.full((2, 3), 0.01)
    pairs = torch.tensor([[False, True], [False, False]])
    want = sum(max(20 - np.hypot(15, 10 * (k - kk)), 0) for k in range(3) for kk in range(3))
    assert rigid_penetration(centres, radii, pairs).item() == pytest.approx(want, rel=1e-5)
    # non-rigid: a fingertip bone whose spheres 1 and 2 (of 0..3) are within r of a palm point
    c = torch.zeros(1, 1, 4, 3)
    c[0, 0, :, 0] = torch.tensor([0.0, 0.01, 0.02, 0.03])
    r = torch.full((1, 4), 0.006)
    palm = torch.tensor([[[0.015, 0.002, 0.0]]])
    d = np.hypot(np.array([0.0, 0.01, 0.02, 0.03]) - 0.015, 0.002)  # distances to the palm point
    first = int(np.argmax(d < 0.006))
    assert first == 1
    want = sum(abs(d[k] - 0.006) for k in range(first, 4)) * 1000
    assert nonrigid_penetration(c, r, palm, [0]).item() == pytest.approx(want, rel=1e-5)
    palm_far = palm + torch.tensor([0.0, 0.1, 0.0])
    assert nonrigid_penetration(c, r, palm_far, [0]).item() == 0.0
    assert TIP_BONES == (2, 5, 8, 11, 14)


def test_regressor_resolve_is_exact(base):
    rng = np.random.default_rng(0)
    T = base["v_template"] + rng.normal(0, 0.002, size=base["v_template"].shape)
    J = base["J_regressor"] @ base["v_template"] + rng.normal(0, 0.003, size=(16, 3))
    R = resolve_regressor(base["J_regressor"], T, J)
    assert np.abs(R @ T - J).max() < 1e-10
    assert np.allclose(R.sum(1), 1.0)
    assert ((R != 0) == (base["J_regressor"] != 0)).all()  # stays on the rows' support


@pytest.mark.parametrize("cfg", [CPU, replace(CPU, skin_corrective=True)])
def test_export_round_trip_through_hand_model(base, cfg):
    model = PersonalHandModel(base, cfg)
    _perturb(model)
    arrays, report = export_mano(model, base, {"test": True})
    validate_mano_arrays(arrays)
    assert report["regressor_residual_m"] < 1e-9 and report["posedirs_residual_m"] == 0.0
    hand = HandModel(arrays)
    pose = torch.randn(4, 48, generator=torch.Generator().manual_seed(5)) * 0.5
    trans = torch.randn(4, 3) * 0.1
    with torch.no_grad():
        out = model(pose, trans)
    ref = hand(pose, torch.zeros(4, 10), trans=trans)
    assert (out["verts"] - ref.verts).abs().max() < 1e-5
    assert (out["joints"] - ref.joints).abs().max() < 1e-5


def test_export_mlp_corrective_reports_its_residual(base):
    model = PersonalHandModel(base, replace(PAPER, hidden=32, skeleton_hidden=16))
    _perturb(model, scale=0.02)
    poses = torch.randn(64, 28, generator=torch.Generator().manual_seed(2)) * 0.3
    with pytest.raises(ValueError, match="needs the poses"):
        export_mano(model, base, {})
    arrays, report = export_mano(model, base, {}, fit_poses=poses)
    assert 0.0 < report["posedirs_residual_m"] < 0.05
    validate_mano_arrays(arrays)


def test_test_subject_is_outside_the_shape_space(base):
    subj = make_test_subject(base, seed=0)
    validate_mano_arrays(subj)
    d = subj["v_template"] - base["v_template"]
    S = base["shapedirs"].reshape(-1, 10)
    A = np.concatenate([S, np.tile(np.eye(3), (len(d), 1))], 1)
    x, *_ = np.linalg.lstsq(A, d.reshape(-1), rcond=None)
    residual = np.linalg.norm((d.reshape(-1) - A @ x).reshape(-1, 3), axis=1).mean()
    assert residual > 0.001  # > 1 mm per vertex left after the best shape vector and a shift
    J0, J1 = base["J_regressor"] @ base["v_template"], subj["J_regressor"] @ subj["v_template"]
    ratio = np.linalg.norm(J1[2] - J1[1]) / np.linalg.norm(J0[2] - J0[1])
    assert 0.85 < ratio < 1.15 and abs(ratio - 1) > 0.04
    assert np.abs(subj["posedirs"]).max() > 2 * np.abs(base["posedirs"]).max()


def test_depth_crops_match_rendering_with_the_crop_intrinsics(base):
    from handtools.core.methods.deephandmesh.loss import render_depth
    from handtools.core.methods.deephandmesh.views import crop_depth_views
    from handtools.core.render import Renderer

    model = PersonalHandModel(base, replace(CPU, init_std=0.0)).requires_grad_(False)
    out = model(torch.zeros(1, 48), torch.tensor([[-0.05, 0.0, 0.4]]))
    K = torch.tensor([[[[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]]]])  # (1, 1, 3, 3)
    T = torch.eye(4)[None, None]
    r = Renderer("torch")
    full = render_depth(r, out["verts"], model.faces, K, T, 128)  # (1, 1, 128, 128)
    errors = {}
    for aligned in (True, False):
        crop, Kc = crop_depth_views(full.numpy(), K.numpy(), T.numpy(), out["joints"].numpy(), 32, margin=1.5,
                                    aligned=aligned)
        direct = render_depth(r, out["verts"], model.faces, torch.as_tensor(Kc), T, 32)[0, 0].numpy()
        both = (crop[0, 0] > 0) & (direct > 0)
        assert both.sum() > 50 and ((crop[0, 0] > 0) == (direct > 0)).mean() > 0.9
        assert np.median(np.abs(crop[0, 0][both] - direct[both])) < 0.002
        errors[aligned] = np.abs(crop[0, 0] - direct).max()
    # aligned: each window pixel is the measured depth of the very ray rendered through it
    assert errors[True] < 1e-5 and errors[False] > 1e-3


def test_closed_faces_make_the_hand_watertight_and_outward(base):
    from handtools.core.methods.deephandmesh.loss import closed_faces

    faces = torch.as_tensor(np.asarray(base["f"], np.int64))
    closed = closed_faces(faces)
    edges = torch.cat([closed[:, [0, 1]], closed[:, [1, 2]], closed[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == len(edges)  # consistent winding: no directed edge twice
    assert all((b, a) in directed for a, b in directed)  # every edge has its twin: watertight
    assert len(closed) - len(faces) == len(set(closed[len(faces):].flatten().tolist())) - 2  # a fan on the loop
    v = torch.as_tensor(np.asarray(base["v_template"]))
    tri = v[closed]
    volume = (tri[:, 0] * torch.cross(tri[:, 1], tri[:, 2], dim=1)).sum() / 6
    assert volume > 0  # faces point out of the hand
    assert torch.equal(closed_faces(closed), closed)  # already closed: unchanged


def test_corrective_l2_parts_and_their_weights(base):
    from handtools.core.methods.deephandmesh.fit import palm_vertices
    from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss

    cfg = replace(CPU, init_std=0.0, w_penet=0.0, w_l2=0.5, w_l2_pose=2.0)
    model = PersonalHandModel(base, cfg)
    with torch.no_grad():
        model.identity_dec[2].bias.fill_(1.0)  # ΔM_β = (1, 1, 1) mm everywhere: 3 mm²
        model.pose_linear.fill_(0.0)
        model.pose_linear[0, 0] = 2.0  # one vertex coordinate, 2 mm per unit of (R - I)[0, 0]
    pose = torch.zeros(1, 48)
    pose[0, 3] = 0.5  # joint 1 about x: (R - I)[0, 0] = 0
    pose[0, 4] = 0.7  # and about y: (R - I)[0, 0] != 0
    out = model(pose)
    ident, pose_l2 = model.corrective_l2(out["aa"], out["rot"])
    rot = out["rot"][0, 1]
    assert ident.item() == pytest.approx(3.0, rel=1e-5)
    assert pose_l2.item() == pytest.approx((2.0 * (rot[0, 0] - 1)).item() ** 2 / model.num_verts, rel=1e-4)
    loss = DeepHandMeshLoss(cfg, model.faces, palm_vertices(model.weights))
    total, terms = loss(model, out, {"joints": out["joints"].detach()}, use_penet=False)
    lap = cfg.lambda_lap * terms["lap"]
    assert total.item() == pytest.approx(lap + 0.5 * 3.0 + 2.0 * pose_l2.item(), rel=1e-5)


def test_shape_only_baseline_learns_only_beta(base):
    cfg = replace(CPU, skeleton_corrective=False, identity_corrective=False, pose_corrective="none")
    model = PersonalHandModel(base, cfg, shape_space=True)
    assert [n for n, _ in model.named_parameters()] == ["betas"]
    arrays, report = export_mano(model, base, {})
    np.testing.assert_allclose(arrays["posedirs"], np.asarray(base["posedirs"], np.float64), atol=1e-8)  # float32 buffer
