"""DeepHandMesh's image encoder (§4): the tanh·π head, joint training with the decoder on a
tiny synthetic subject (the loss falls), exact resumption, rigid placement (§5.2)."""

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from handtools.core.data.subject import make_test_subject
from handtools.core.hand.mano_io import load_mano
from handtools.core.hand.open_hand import bundled_model_path
from handtools.core.methods.deephandmesh.config import CPU
from handtools.core.methods.deephandmesh.encoder import (
    ImageFrames,
    PoseEncoder,
    aligned_forward,
    encoder_poses,
    fit_encoder,
    step_batch,
)
from handtools.core.methods.deephandmesh.fit import FrameData, palm_vertices
from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss, render_depth
from handtools.core.methods.deephandmesh.model import PersonalHandModel
from handtools.core.render import Renderer

S = 32  # image and depth side, px
CFG = replace(CPU, encoder="resnet18", image_size=S, depth_size=S, batch_size=4, render_views=3, lr=1e-3,
              milestones=(), w_penet=0.0, w_l2_pose=0.01)


def _rig(views: int = 3):
    """Cameras on an arc around a hand 0.5 m in front of view 0: K (C, 3, 3), T_view (C, 4, 4)."""
    K = torch.tensor([[70.0, 0, S / 2], [0, 70.0, S / 2], [0, 0, 1]])
    c0 = torch.tensor([0.0, 0.0, 0.5])
    Ts = []
    for a in np.linspace(-0.8, 0.8, views):
        R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=torch.float32)
        T = torch.eye(4)
        T[:3, :3], T[:3, 3] = R, c0 - R @ c0
        Ts.append(T)
    return K.expand(views, 3, 3), torch.stack(Ts)


@pytest.fixture(scope="module")
def tiny():
    """4 frames x 3 views of the test subject: joints, depth and shaded-depth images, S x S."""
    subject = make_test_subject(load_mano(bundled_model_path()), seed=0)
    truth = PersonalHandModel(subject, replace(CFG, init_std=0.0)).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    n = 4
    pose = torch.randn(n, 48, generator=g) * 0.25
    pose[:, :3] = torch.tensor([math.pi / 2, 0.0, 0.0]) + torch.randn(n, 3, generator=g) * 0.2  # palm to camera
    root = truth.rest_joints()[0]
    out = truth(pose, (torch.tensor([0.0, 0.0, 0.5]) - root).expand(n, 3))
    K, T = _rig()
    Kf, Tf = K[None].expand(n, -1, -1, -1), T[None].expand(n, -1, -1, -1)
    depth = render_depth(Renderer("torch"), out["verts"], truth.faces, Kf, Tf, S)  # (n, 3, S, S)
    shade = torch.where(depth > 0, 255 - (depth - 0.42).clamp(0, 0.16) / 0.16 * 200, torch.zeros(()))
    images = shade[..., None].expand(-1, -1, -1, -1, 3).round().to(torch.uint8)  # (n, 3, S, S, 3)
    frames = FrameData(out["joints"], torch.ones(n, 21, dtype=torch.bool), depth, Kf.clone(), Tf.clone())
    return ImageFrames(frames, images)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    base = load_mano(bundled_model_path())
    model = PersonalHandModel(base, CFG, seed=seed)
    encoder = PoseEncoder(model.pose_dim, CFG.encoder)
    loss = DeepHandMeshLoss(CFG, model.faces, palm_vertices(model.weights), Renderer("torch"))
    return model, encoder, loss


def test_head_is_tanh_times_pi():
    enc = PoseEncoder(5, "resnet18")
    with torch.no_grad():
        enc.fc[2].weight.zero_()
        enc.fc[2].bias.copy_(torch.tensor([-3.0, -0.5, 0.0, 0.5, 30.0]))
    out = enc(torch.rand(2, 3, 32, 32))
    expect = math.pi * torch.tanh(torch.tensor([-3.0, -0.5, 0.0, 0.5, 30.0]))
    assert torch.allclose(out, expect.expand(2, -1), atol=1e-6)
    assert (out.abs() <= math.pi).all()
    with pytest.raises(ValueError, match="images must be"):
        enc(torch.rand(2, 32, 32, 3))


def test_rigid_placement_recovers_a_moved_hand():
    model, _, _ = _setup()
    pose = torch.zeros(2, 48)
    pose[:, 3:] = torch.randn(2, 45, generator=torch.Generator().manual_seed(3)) * 0.2
    target = model(pose)["joints"]
    R = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.4, 0.2], [0.4, 0.0, -0.3], [-0.2, 0.3, 0.0]]))
    moved = target @ R.T + torch.tensor([0.1, -0.05, 0.6])
    out = aligned_forward(model, pose, moved)
    assert torch.allclose(out["joints"], moved, atol=1e-5)


def test_encoder_and_decoder_train_jointly_on_a_tiny_subject(tiny):
    model, encoder, loss = _setup()
    totals, pose_terms = [], []
    steps = 24

    def on_step(step, terms, opt):
        totals.append(terms["total"])
        pose_terms.append(terms["pose"])

    fit_encoder(model, encoder, tiny, replace(CFG, steps=steps), loss, steps, on_step=on_step)
    assert all(np.isfinite(totals))
    first, last = np.mean(totals[:4]), np.mean(totals[-4:])
    assert last < 0.9 * first, (first, last)  # the loss falls (by 18 % when written)
    assert np.mean(pose_terms[-4:]) < np.mean(pose_terms[:4])
    poses = encoder_poses(encoder, tiny.images.flatten(0, 1))
    assert poses.shape == (12, model.pose_dim) and poses.abs().max() <= math.pi + 1e-6  # tanh may round to 1 in float32


def test_resumed_training_equals_the_uninterrupted_run(tiny):
    model, encoder, loss = _setup()
    m2, e2 = copy.deepcopy(model), copy.deepcopy(encoder)
    fit_encoder(model, encoder, tiny, CFG, loss, 4, seed=5)  # straight through
    opt = fit_encoder(m2, e2, tiny, CFG, loss, 2, seed=5)  # "interrupted" after 2 steps ...
    state = copy.deepcopy({"model": m2.state_dict(), "encoder": e2.state_dict(), "opt": opt.state_dict()})
    m3, e3 = _setup()[:2]
    m3.load_state_dict(state["model"])
    e3.load_state_dict(state["encoder"])
    fit_encoder(m3, e3, tiny, CFG, loss, 4, seed=5, optimizer_state=state["opt"], start_step=2)  # ... resumed
    for a, b in zip(list(model.state_dict().values()) + list(encoder.state_dict().values()),
                    list(m3.state_dict().values()) + list(e3.state_dict().values())):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_batches_depend_on_seed_and_step_only():
    a = step_batch(10, 6, CFG, seed=1, step=7)
    b = step_batch(10, 6, CFG, seed=1, step=7)
    c = step_batch(10, 6, CFG, seed=1, step=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
