"""Tests for handtools.core.hand.model.HandModel against smplx and a numpy LBS reference."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial.transform import Rotation

from handtools.core.hand import mano_io
from handtools.core.hand.model import HandModel
from handtools.core.hand.joints import (
    FINGERTIP_VERTICES,
    JOINT_NAMES,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
)
from handtools.core.hand.mano_io import synthetic_mano_arrays

F64 = torch.float64
SIGN45 = np.tile([1.0, -1.0, -1.0], 15)


@pytest.fixture(scope="module")
def arrays():
    return synthetic_mano_arrays(seed=7)


@pytest.fixture(scope="module")
def model(arrays):
    return HandModel(arrays, identity="synthetic", dtype=F64)


def _smplx_mano(arrays, **kwargs):
    return smplx.MANO("", data_struct=smplx.utils.Struct(**arrays), dtype=F64,
                      create_betas=False, create_global_orient=False,
                      create_hand_pose=False, create_transl=False, **kwargs)


def _random(rng, *shape, scale=0.5):
    return torch.tensor(rng.normal(scale=scale, size=shape), dtype=F64)


def _lbs_reference(arrays, full_pose, betas):
    """MANO's linear blend skinning written out in numpy (Romero et al. 2017, eqs. 1-4)."""
    rots = Rotation.from_rotvec(full_pose.reshape(16, 3)).as_matrix()  # (16, 3, 3)
    v = arrays["v_template"] + arrays["shapedirs"][:, :, :10] @ betas  # (778, 3)
    joints = arrays["J_regressor"] @ v  # (16, 3)
    v = v + arrays["posedirs"] @ (rots[1:] - np.eye(3)).reshape(-1)
    world = np.zeros((16, 4, 4))
    for k, p in enumerate(MANO_PARENTS):
        local = np.eye(4)
        local[:3, :3] = rots[k]
        local[:3, 3] = joints[k] - (joints[p] if p >= 0 else 0)
        world[k] = local if p < 0 else world[p] @ local
    posed_joints = world[:, :3, 3].copy()
    world[:, :3, 3] -= np.einsum("kij,kj->ki", world[:, :3, :3], joints)
    per_vertex = np.einsum("vk,kij->vij", arrays["weights"], world)  # (778, 4, 4)
    verts = np.einsum("vij,vj->vi", per_vertex[:, :3, :3], v) + per_vertex[:, :3, 3]
    return verts, posed_joints


def _mirrored_arrays(arrays):
    """The left-hand model as the exact mirror (x -> -x) of the right one."""
    s = np.array([-1.0, 1.0, 1.0])
    feature_sign = np.tile(np.outer(s, s).reshape(-1), 15)  # (R - I)_ij -> s_i s_j (R - I)_ij
    out = dict(arrays)
    out["v_template"] = arrays["v_template"] * s
    out["shapedirs"] = arrays["shapedirs"] * s[None, :, None]
    out["posedirs"] = arrays["posedirs"] * s[None, :, None] * feature_sign
    out["hands_components"] = arrays["hands_components"] * SIGN45
    out["hands_mean"] = arrays["hands_mean"] * SIGN45
    return out


def _flip_x(x):
    return x * torch.tensor([-1.0, 1.0, 1.0], dtype=x.dtype)


@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_matches_smplx_and_numpy_lbs(arrays, flat_hand_mean):
    rng = np.random.default_rng(0)
    ours = HandModel(arrays, flat_hand_mean=flat_hand_mean, dtype=F64)
    ref = _smplx_mano(arrays, use_pca=False, flat_hand_mean=flat_hand_mean)
    pose, shape = _random(rng, 3, 48), _random(rng, 3, 10, scale=1.0)
    out = ours(pose, shape)
    direct = ref(betas=shape, global_orient=pose[:, :3], hand_pose=pose[:, 3:])
    torch.testing.assert_close(out.verts, direct.vertices, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.mano_joints, direct.joints, rtol=0, atol=1e-12)
    full = ours.full_pose(pose).numpy()
    for i in range(3):
        verts, joints = _lbs_reference(arrays, full[i], shape[i].numpy())
        np.testing.assert_allclose(out.verts[i].numpy(), verts, atol=1e-7)
        np.testing.assert_allclose(out.mano_joints[i].numpy(), joints, atol=1e-7)


def test_freihand_order(model):
    rng = np.random.default_rng(1)
    out = model(_random(rng, 2, 48), _random(rng, 2, 10))
    tips = [JOINT_NAMES.index(f"{f}4") for f in ("thumb", "index", "middle", "ring", "little")]
    torch.testing.assert_close(out.joints[:, tips], out.verts[:, list(FINGERTIP_VERTICES)])
    for j, name in enumerate(JOINT_NAMES):  # every non-tip joint is the MANO joint of that name
        if name in MANO_JOINT_NAMES:
            torch.testing.assert_close(out.joints[:, j],
                                       out.mano_joints[:, MANO_JOINT_NAMES.index(name)])


@pytest.mark.parametrize("ncomps", [12, 45])
def test_pca_path_equals_axis_angle(arrays, ncomps):
    rng = np.random.default_rng(2)
    pca = HandModel(arrays, use_pca=True, num_pca_comps=ncomps, flat_hand_mean=False,
                    dtype=F64)
    flat = HandModel(arrays, use_pca=False, flat_hand_mean=True, dtype=F64)
    assert pca.pose_dim == 3 + ncomps
    coef, glob, shape = _random(rng, 2, ncomps), _random(rng, 2, 3), _random(rng, 2, 10)
    comps = torch.tensor(arrays["hands_components"][:ncomps])
    mean = torch.tensor(arrays["hands_mean"])
    aa = torch.cat([glob, coef @ comps + mean], dim=1)
    a = pca(torch.cat([glob, coef], dim=1), shape)
    b = flat(aa, shape)
    torch.testing.assert_close(a.verts, b.verts)
    torch.testing.assert_close(a.joints, b.joints)
    torch.testing.assert_close(pca.full_pose(torch.cat([glob, coef], dim=1)), aa)
    if ncomps < 45:  # and smplx's own PCA path agrees
        ref = _smplx_mano(arrays, use_pca=True, num_pca_comps=ncomps, flat_hand_mean=False)
        torch.testing.assert_close(a.verts, ref(betas=shape, global_orient=glob,
                                                hand_pose=coef).vertices)


def test_mirroring_definition_and_involution(model):
    rng = np.random.default_rng(3)
    pose, shape = _random(rng, 2, 48), _random(rng, 2, 10)
    left = model(pose, shape, is_left=True)
    right_of_mirror = model(model.mirror_pose(pose), shape)
    torch.testing.assert_close(left.verts, _flip_x(right_of_mirror.verts))
    torch.testing.assert_close(left.joints, _flip_x(right_of_mirror.joints))
    torch.testing.assert_close(model.mirror_pose(model.mirror_pose(pose)), pose)
    back = model(model.mirror_pose(pose), shape, is_left=True)
    torch.testing.assert_close(_flip_x(back.verts), model(pose, shape).verts)


@pytest.mark.parametrize("use_pca", [False, True])
def test_mirroring_equals_mirrored_left_model(arrays, use_pca):
    """Our mirrored right model equals an explicitly mirrored left MANO run on the raw pose."""
    rng = np.random.default_rng(4)
    kwargs = dict(use_pca=use_pca, num_pca_comps=9 if use_pca else 45, flat_hand_mean=False)
    ours = HandModel(arrays, dtype=F64, **kwargs)
    left_model = _smplx_mano(_mirrored_arrays(arrays), is_rhand=False, **kwargs)
    pose, shape = _random(rng, 2, ours.pose_dim), _random(rng, 2, 10)
    out = ours(pose, shape, is_left=True)
    ref = left_model(betas=shape, global_orient=pose[:, :3], hand_pose=pose[:, 3:])
    torch.testing.assert_close(out.verts, ref.vertices, rtol=0, atol=1e-7)
    torch.testing.assert_close(out.mano_joints, ref.joints, rtol=0, atol=1e-7)


def test_mixed_batch_and_left_faces(model):
    rng = np.random.default_rng(5)
    pose, shape = _random(rng, 3, 48), _random(rng, 3, 10)
    mask = torch.tensor([True, False, True])
    mixed = model(pose, shape, is_left=mask)
    for i in range(3):
        single = model(pose[i:i + 1], shape[i:i + 1], is_left=bool(mask[i]))
        torch.testing.assert_close(mixed.verts[i:i + 1], single.verts)
    # Reversed winding on the mirrored mesh gives the mirror of the right mesh's normals.
    right = model(pose[:1], shape[:1]).verts[0]
    left = _flip_x(right)

    def normals(v, f):
        return torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=1)

    torch.testing.assert_close(normals(left, model.faces_for(True)),
                               _flip_x(normals(right, model.faces)))
    assert model.faces_for(mask).shape == (3, 1538, 3)
    assert torch.equal(model.faces_for(mask)[1], model.faces)


def test_similarity_closed_form(model):
    rng = np.random.default_rng(6)
    pose, shape = _random(rng, 2, 48), _random(rng, 2, 10)
    scale = torch.tensor([[0.7], [1.9]], dtype=F64)
    rot, trans = _random(rng, 2, 3, scale=1.0), _random(rng, 2, 3)
    base = model(pose, shape, is_left=torch.tensor([False, True]))
    out = model(pose, shape, scale=scale, rot=rot, trans=trans,
                is_left=torch.tensor([False, True]))
    for i in range(2):
        r = Rotation.from_rotvec(rot[i].numpy()).as_matrix()
        for got, ref in ((out.verts, base.verts), (out.joints, base.joints),
                         (out.mano_joints, base.mano_joints)):
            want = scale[i].item() * ref[i].numpy() @ r.T + trans[i].numpy()
            np.testing.assert_allclose(got[i].numpy(), want, atol=1e-7)
    flat_scale = model(pose, shape, scale=scale[:, 0])
    torch.testing.assert_close(flat_scale.verts, model(pose, shape, scale=scale).verts)


def test_gradients(model):
    rng = np.random.default_rng(8)
    pose = _random(rng, 1, 48).requires_grad_(True)
    shape = _random(rng, 1, 10).requires_grad_(True)
    rot = _random(rng, 1, 3).requires_grad_(True)
    trans = _random(rng, 1, 3).requires_grad_(True)
    scale = torch.tensor([[1.3]], dtype=F64, requires_grad=True)
    weights = _random(rng, 21, 3)

    def joints(p, s, sc, r, t):
        out = model(p, s, scale=sc, rot=r, trans=t, is_left=True)
        return (out.joints * weights).sum(-1)  # (1, 21)

    assert torch.autograd.gradcheck(joints, (pose, shape, scale, rot, trans), eps=1e-6,
                                    atol=1e-5, fast_mode=True)


def test_float32_default_and_to(arrays):
    m = HandModel(arrays)
    assert m.v_template.dtype == torch.float32 and m.faces.dtype == torch.int64
    out = m(torch.zeros(1, 48), torch.zeros(1, 10))
    assert out.verts.dtype == torch.float32
    # Zero pose with flat_hand_mean: rest mesh and rest joints.
    torch.testing.assert_close(out.verts[0], m.template)
    torch.testing.assert_close(out.mano_joints[0], m.rest_joints)
    assert m.joint_regressor.shape == (16, 778) and m.weights.shape == (778, 16)
    assert m.parents.tolist() == list(MANO_PARENTS)
    m64 = m.to(F64)  # in place, like every nn.Module
    assert m64.dtype == F64 and m64.faces.dtype == torch.int64
    assert m64(torch.zeros(1, 48, dtype=F64), torch.zeros(1, 10, dtype=F64)).verts.dtype == F64


def test_boundary_errors(model):
    z = torch.zeros(2, 48, dtype=F64)
    s = torch.zeros(2, 10, dtype=F64)
    with pytest.raises(ValueError, match="48 columns"):
        model(torch.zeros(2, 45, dtype=F64), s)
    with pytest.raises(ValueError, match="shape must have shape"):
        model(z, torch.zeros(2, 9, dtype=F64))
    with pytest.raises(ValueError, match="float32"):
        model(z.float(), s)
    with pytest.raises(ValueError, match="trans"):
        model(z, s, trans=torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="is_left"):
        model(z, s, is_left=torch.tensor([True]))
    with pytest.raises(ValueError, match="num_pca_comps"):
        HandModel(synthetic_mano_arrays(), use_pca=True, num_pca_comps=46)


def test_no_stdout_on_construction(arrays):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        HandModel(arrays)
    assert buf.getvalue() == ""


def test_from_path_env(tmp_path, monkeypatch, arrays):
    path = tmp_path / "MANO_RIGHT.npz"
    np.savez(path, **arrays)
    monkeypatch.setenv(mano_io.MANO_ENV, str(path))
    m = HandModel.from_path(None, device="cpu", dtype=F64)
    assert not m.is_bundled and m.identity.startswith("MANO_RIGHT.npz sha256:")
    assert m.v_template.dtype == F64


def _bundled_path():
    try:
        from handtools.core.hand.open_hand import bundled_model_path
    except ImportError:
        return None
    path = bundled_model_path()
    return path if path.is_file() else None


@pytest.mark.skipif(_bundled_path() is None, reason="bundled open hand model not generated yet")
def test_bundled_model(monkeypatch):
    monkeypatch.delenv(mano_io.MANO_ENV, raising=False)
    m = HandModel.from_path(None)
    assert m.is_bundled and m.identity.startswith("open-hand sha256:")
    out = m(torch.zeros(1, 48), torch.zeros(1, 10))
    torch.testing.assert_close(out.joints[0, [4, 8, 12, 16, 20]],
                               m.template[list(FINGERTIP_VERTICES)])


def test_regress_joints_from_posed_meshes(arrays):
    # Unposed (flat hand) and moved by a similarity, the joints regressed from the mesh are the model's
    # joints: the regressor's rows sum to 1, so it commutes with the similarity; tips are vertices either way.
    rng = np.random.default_rng(4)
    ours = HandModel(arrays, flat_hand_mean=True, dtype=F64)
    out = ours(torch.zeros(2, 48, dtype=F64), _random(rng, 2, 10, scale=1.0), scale=torch.tensor([0.9, 1.2], dtype=F64),
               rot=_random(rng, 2, 3), trans=_random(rng, 2, 3))
    torch.testing.assert_close(ours.regress_joints(out.verts), out.joints, rtol=0, atol=1e-7)  # 10 nm
    posed = ours(_random(rng, 2, 48), _random(rng, 2, 10))
    assert ours.regress_joints(posed.verts.float()).dtype == torch.float32  # follows the meshes
