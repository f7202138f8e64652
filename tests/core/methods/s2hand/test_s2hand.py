"""S2HAND: encoders, every loss term against a closed form or an independent computation,
finite-difference gradients through the renderer, and the objective's minimum at the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handtools.core.hand.joint_limits import JOINT_LIMITS_DEG, anatomical_axes, sample_poses
from handtools.core.hand.joints import BONES
from handtools.core.learning.nets.efficientnet import EfficientNetEncoder, load_efficientnet_weights
from handtools.core.methods.s2hand import PAPER, S2HandLoss, S2HandNet, decode, mano_hand, term_weights
from handtools.core.methods.s2hand import loss as L
from handtools.core.methods.s2hand.config import stage_losses
from handtools.core.render import Renderer


@pytest.fixture(scope="module")
def hand():
    return mano_hand()


# -- encoders ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, published, low, high", [
    ("efficientnet_b0", 5_288_548, 24, 1280),  # torchvision's documented num_params (with the classifier)
    ("efficientnet_b3", 12_233_232, 32, 1536),
])
def test_efficientnet_matches_torchvision(arch, published, low, high):
    enc = EfficientNetEncoder(arch)
    n = sum(p.numel() for p in enc.parameters()) + high * 1000 + 1000  # + Linear(high, 1000)
    assert n == published
    assert enc.low_channels == low and enc.out_channels == high
    names = enc.state_dict()
    assert names["features.0.0.weight"].shape == (32 if arch.endswith("b0") else 40, 3, 3, 3)
    assert "features.1.0.block.1.fc1.weight" in names and "features.8.1.running_var" in names
    m_l, m_h = enc(torch.zeros(1, 3, 64, 64))
    assert m_l.shape == (1, low, 16, 16) and m_h.shape == (1, high, 2, 2)


def test_efficientnet_weights_load_by_name(tmp_path):
    a, b = EfficientNetEncoder("efficientnet_b0"), EfficientNetEncoder("efficientnet_b0")
    state = {"module." + k: v for k, v in a.state_dict().items()}
    state["module.classifier.1.weight"] = torch.zeros(1000, 1280)
    torch.save(state, tmp_path / "w.pth")
    load_efficientnet_weights(b, tmp_path / "w.pth")
    assert torch.equal(a.features[3][0].block[0][0].weight, b.features[3][0].block[0][0].weight)
    with pytest.raises(ValueError, match="does not match"):
        load_efficientnet_weights(EfficientNetEncoder("efficientnet_b3"), tmp_path / "w.pth")


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet_b0"])
def test_network_outputs_and_mean_hand(encoder, hand):
    net = S2HandNet(encoder, 64).eval()
    K = torch.tensor([[[120.0, 0, 30], [0, 120, 34], [0, 0, 1]]])
    with torch.no_grad():
        c = net(torch.rand(1, 3, 64, 64), K)
    assert c["theta"].shape == (1, 30) and c["beta"].shape == (1, 10) and c["texture"].shape == (1, 778, 3)
    assert c["light"].shape == (1, 11) and ((c["texture"] > 0) & (c["texture"] < 1)).all()
    # at initialisation the hand origin projects near the crop centre and fills the crop
    with torch.no_grad():
        h = decode(c, hand)
    uv = (h["verts"] @ K[0].T)
    uv = uv[..., :2] / uv[..., 2:]
    assert 20 < float(uv[..., 0].mean()) < 44 and 20 < float(uv[..., 1].mean()) < 50
    assert float(uv[..., 1].max() - uv[..., 1].min()) > 20
    with torch.no_grad():  # a batch of one trains (BatchNorm1d falls back to running statistics)
        net.train()(torch.rand(1, 3, 64, 64), K)


# -- each term against a closed form ---------------------------------------------------------
def test_joint_location_loss_closed_form():
    det = torch.zeros(1, 21, 2)
    pred = torch.zeros(1, 21, 2)
    pred[0, 3] = torch.tensor([0.5, 3.0])  # SmoothL1: 0.5 * 0.25 + (3 - 0.5) = 2.625
    conf = torch.full((1, 21), 0.5)
    assert float(L.joint_location_loss(pred, det, conf)) == pytest.approx(0.5 * 2.625 / 21)
    # the code's form: Huber on the distance, d = sqrt(9.25) < 5 -> d^2 / 10, weights (con w)^2
    w = (0.5 * np.array(L.CODE_KEYPOINT_WEIGHTS)) ** 2
    assert float(L.joint_location_loss(pred, det, conf, "code")) == pytest.approx(w[3] * 0.925 / w.sum(), rel=1e-5)


def test_bone_orientation_loss_closed_form():
    det = torch.zeros(1, 21, 2)
    for p, c in BONES:  # every detected bone points along +u
        det[0, c] = det[0, p] + torch.tensor([1.0, 0.0])
    pred = det.clone()
    assert float(L.bone_orientation_loss(pred, det, torch.ones(1, 21))) == pytest.approx(0.0, abs=1e-6)
    rot = pred.clone()
    rot[..., 0], rot[..., 1] = -pred[..., 1], pred[..., 0]  # every bone turned by 90 degrees: ||nu_d - nu_p||^2 = 2
    assert float(L.bone_orientation_loss(rot, det, torch.ones(1, 21))) == pytest.approx(2.0, rel=1e-5)
    flip = det.clone()
    flip[..., 0] = -det[..., 0]  # every bone reversed: ||nu_d - nu_p||^2 = 4
    assert float(L.bone_orientation_loss(flip, det, torch.ones(1, 21))) == pytest.approx(4.0, rel=1e-5)
    conf = torch.ones(1, 21)
    conf[0, 20] = 0.0  # the little fingertip's bone does not count
    assert float(L.bone_orientation_loss(rot, det, conf)) == pytest.approx(2.0 * 19 / 20, rel=1e-5)


def test_photometric_and_ssim_closed_form():
    img = torch.full((1, 3, 16, 16), 0.5)
    sil = torch.zeros(1, 16, 16)
    sil[:, 4:12, 4:12] = 1.0
    ren = torch.zeros(1, 3, 16, 16)
    ren[:, :, 4:12, 4:12] = 0.2  # difference 0.3 per channel inside S: L2 = 0.3 * sqrt(3)
    assert float(L.photometric_loss(img, ren, sil, torch.tensor([21.0]))) == pytest.approx(21 * 0.3 * math.sqrt(3), rel=1e-5)
    same = img * sil[:, None]
    assert float(L.ssim_loss(img, same, sil)) == pytest.approx(0.0, abs=1e-5)
    assert float(L.ssim_loss(img, ren, sil)) > 0.05


def test_shape_texture_scale_terms(hand):
    beta = torch.tensor([[3.0, 4.0] + [0.0] * 8])
    assert float(L.shape_loss(beta)) == pytest.approx(5.0)
    assert float(L.shape_loss(beta, "mse")) == pytest.approx(2.5)
    rng = np.random.default_rng(0)
    tex = rng.uniform(0.4, 0.6, (2, 50, 3))
    tex[0, 7] = (1.0, 0.0, 1.0)  # an outlier
    m, s = tex.mean(1, keepdims=True), tex.std(1, ddof=1, keepdims=True)
    out = ~np.all((tex > m - 2 * s) & (tex < m + 2 * s), -1)
    f = np.where(out, ((tex - m) ** 2).sum(-1), 0.0).mean(1)
    w = np.array([21.0, 10.0])
    assert float(L.texture_loss(torch.tensor(tex), torch.tensor(w))) == pytest.approx((w * f).mean(), rel=1e-6)
    assert f[0] > 0
    j = torch.zeros(1, 21, 3)
    j[0, 10, 1] = 0.03
    assert float(L.scale_loss(j)) == pytest.approx((0.03 - 0.0282) ** 2, rel=1e-4)


def test_joint_angle_hinge():
    loss = L.JointAngleLoss()
    ok = np.concatenate([np.zeros((4, 3)), sample_poses(4, np.random.default_rng(1))], 1)
    assert float(loss(torch.tensor(ok, dtype=torch.float32))) == pytest.approx(0.0, abs=1e-6)
    over = np.zeros((1, 48))
    delta = 0.2
    flex_max = math.radians(JOINT_LIMITS_DEG[1, 0, 1])  # PIP of the index finger, flexion
    over[0, 6:9] = anatomical_axes()[1, 0] * (flex_max + delta)
    assert float(loss(torch.tensor(over, dtype=torch.float32))) == pytest.approx(delta / 15, rel=1e-4)
    under = np.zeros((1, 48))
    twist_min = math.radians(JOINT_LIMITS_DEG[1, 2, 0])  # and below the twist minimum
    under[0, 6:9] = anatomical_axes()[1, 2] * (twist_min - delta)
    assert float(loss(torch.tensor(under, dtype=torch.float32))) == pytest.approx(delta / 15, rel=1e-4)


def test_term_weights_are_the_papers_products():
    w = term_weights(PAPER.weights)
    assert w["loc"] == pytest.approx(1e-3) and w["ori"] == pytest.approx(0.1)
    assert w["pixel"] == pytest.approx(0.005) and w["ssim"] == pytest.approx(0.001)
    assert w["shape"] == pytest.approx(0.01) and w["texture"] == pytest.approx(0.005)
    assert w["scale"] == pytest.approx(100.0) and w["angle"] == pytest.approx(0.1)
    assert w["kp2d"] == pytest.approx(1e-3) and w["con"] == pytest.approx(2e-4)


# -- the objective on a rendered scene ---------------------------------------------------------
def _scene(hand, size=48, dtype=torch.float32):
    """True codes, the image they render and their projected joints as 'detections'."""
    g = torch.Generator().manual_seed(0)
    codes = {
        "theta": 0.5 * torch.randn(1, 30, generator=g), "beta": 0.3 * torch.randn(1, 10, generator=g),
        "scale": torch.tensor([[1.05]]), "rot": torch.tensor([[-1.2, -1.2, 1.2]]),
        "trans": torch.tensor([[0.0, -0.02, 0.45]]),
        "texture": 0.55 + 0.1 * torch.rand(1, 778, 3, generator=g),
        "light": torch.tensor([[0.6, 0.5, 1.0, 0.9, 0.8, 1.0, 1.0, 1.0, 0.3, -0.2, 1.0]]),
    }
    codes = {k: v.to(dtype) for k, v in codes.items()}
    K = torch.tensor([[[size * 1.6, 0, size / 2], [0, size * 1.6, size / 2], [0, 0, 1]]], dtype=dtype)
    r = Renderer("torch")
    h = decode(codes, hand)
    out = r.render(h["verts"], hand.faces, K, (size, size), colors=codes["texture"], light=codes["light"])
    bg = torch.full((1, size, size, 3), 0.2, dtype=dtype)
    img = (out.rgb + (1 - out.silhouette[..., None]) * bg).permute(0, 3, 1, 2).detach()
    uv = (h["joints"] @ K[0].T)
    batch = {"image": img, "K": K, "keypoints": (uv[..., :2] / uv[..., 2:]).detach(), "conf": torch.ones(1, 21, dtype=dtype)}
    return codes, batch, r


@pytest.mark.parametrize("what", ["pose", "scale", "trans", "light"])
def test_loss_is_lower_at_the_true_parameters(hand, what):
    codes, batch, r = _scene(hand)
    crit = S2HandLoss(hand, r, enabled=stage_losses(PAPER.losses, 0, 2))  # the 3D branch's terms
    with torch.no_grad():
        t0, _ = crit.terms(codes, batch)
        e0 = float(crit.total(t0))
        for sign in (-1, 1):
            p = dict(codes)
            if what == "pose":
                p["theta"] = codes["theta"] + sign * 0.3
            elif what == "scale":
                p["scale"] = codes["scale"] * (1 + 0.1 * sign)
            elif what == "trans":
                p["trans"] = codes["trans"] + sign * torch.tensor([[0.01, 0.01, 0.02]])
            else:
                p["light"] = codes["light"] + sign * torch.tensor([[0.3, 0.3] + [0.0] * 9])
            t1, _ = crit.terms(p, batch)
            assert float(crit.total(t1)) > e0, (what, sign, {k: float(v) for k, v in t1.items()})
            if what == "light":  # only the photometric terms see the light
                assert float(t1["pixel"]) > float(t0["pixel"])


def test_photometric_gradient_matches_finite_differences(hand):
    """d E_pixel / d (light, texture, translation) through the renderer, float64, 24 px.

    Light and texture enter the image smoothly: tight agreement. Translation moves
    silhouette edges, whose gradient comes from antialiasing (as nvdiffrast's): an
    approximation (finite differences of a rasteriser jump with the step), so for it we check
    that a small step against the gradient lowers the energy."""
    h64 = mano_hand().double()
    codes, batch, r = _scene(h64, size=24, dtype=torch.float64)
    crit = S2HandLoss(h64, r, enabled=("pixel",))
    codes["light"] = codes["light"] + 0.05  # away from the rendering of the true light
    codes["trans"] = codes["trans"] + torch.tensor([[0.006, 0.0, 0.0]], dtype=torch.float64)  # and of the true place
    params = {k: codes[k].clone().requires_grad_(True) for k in ("light", "texture", "trans")}

    def energy(p):
        t, _ = crit.terms({**codes, **p}, batch)
        return t["pixel"]

    energy(params).backward()
    checks = [("light", (0, 0), 1e-6, 2e-3), ("light", (0, 1), 1e-6, 2e-3), ("light", (0, 3), 1e-6, 2e-3),
              ("texture", (0, 100, 0), 1e-6, 2e-3)]
    for name, idx, eps, rel in checks:
        up = {k: v.detach().clone() for k, v in params.items()}
        dn = {k: v.detach().clone() for k, v in params.items()}
        up[name][idx] += eps
        dn[name][idx] -= eps
        fd = (float(energy(up)) - float(energy(dn))) / (2 * eps)
        an = float(params[name].grad[idx])
        assert an == pytest.approx(fd, rel=rel, abs=1e-6), (name, idx, an, fd)
    g = params["trans"].grad
    step = {k: v.detach().clone() for k, v in params.items()}
    step["trans"] -= 2e-3 * g / g.norm()
    assert float(energy(step)) < float(energy({k: v.detach() for k, v in params.items()}))


# -- the 2D branch: stacked hourglass, integral regression, E_2d and E_con -----------------------
def test_hourglass_shapes_and_network_2d_outputs():
    from handtools.core.learning.nets.hourglass import StackedHourglass

    hg = StackedHourglass(stacks=2, features=16, joints=21, depth=4)
    out = hg(torch.rand(2, 3, 60, 52))
    assert len(out) == 2 and all(h.shape == (2, 21, 15, 13) for h in out)  # ceil(H / 4), any size
    net = S2HandNet("resnet18", 64, stacks=2, hourglass_features=16).eval()
    K = torch.tensor([[[120.0, 0, 32], [0, 120, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    with torch.no_grad():
        c = net(torch.rand(2, 3, 64, 64), K)
        c3 = net(torch.rand(2, 3, 64, 64), K, with_2d=False)
    assert c["kp2d"].shape == (2, 21, 2) and c["kp2d_stacks"].shape == (2, 2, 21, 2)
    assert torch.equal(c["kp2d"], c["kp2d_stacks"][:, -1])
    assert ((c["kp2d"] > 0) & (c["kp2d"] < 64)).all() and "kp2d" not in c3
    assert net.config["stacks"] == 2 and "stacks" not in S2HandNet("resnet18", 64).config  # old configs unchanged
    with pytest.raises(ValueError, match="stacks"):
        S2HandNet("resnet18", 64, stacks=-1)


def test_integral_regression_closed_form():
    from handtools.core.learning.nets.hourglass import integral_joints

    h = torch.full((1, 2, 4, 8), -1e4)
    h[0, 0, 1, 5] = 0.0  # all mass in row 1, column 5 of a 4 x 8 map over a 32 x 64 image
    h[0, 1] = 0.0  # uniform: the image centre
    uv = integral_joints(h, (32, 64))
    assert uv[0, 0].tolist() == pytest.approx([5.5 * 8, 1.5 * 8])
    assert uv[0, 1].tolist() == pytest.approx([32.0, 16.0])
    h = torch.zeros(1, 1, 2, 2)
    h[0, 0, 0, 1] = math.log(3.0)  # mass 3/6 at (col 1, row 0), 1/6 elsewhere: u = (1*1 + 3*3 + 1 + 1)/6 ...
    uv = integral_joints(h, (4, 4))
    assert uv[0, 0].tolist() == pytest.approx([(1 + 3 * 3 + 1 + 3) / 6, (1 + 3 + 3 * 1 + 3) / 6])


def test_consistency_and_2d_losses_closed_form(hand):
    codes, batch, r = _scene(hand, size=48)
    with torch.no_grad():
        uv = (decode(codes, hand)["joints"] @ batch["K"][0].T)
        uv = uv[..., :2] / uv[..., 2:]  # (1, 21, 2) projected joints = the detections here
    k = 224 / 48  # keypoint losses in pixels of a 224-pixel crop
    off = torch.zeros(1, 21, 2)
    off[..., 0] = 3.0  # 3 crop px = 14 px224 in u: SmoothL1 = 14 - 0.5 per joint
    off[0, :7, 1] = 0.1  # and 0.1 crop px in v on 7 joints: 0.5 (0.1 k)^2 each
    stacks = torch.stack([uv + off, uv + 2 * off], dim=1)  # (1, 2, 21, 2)
    c = dict(codes, kp2d=stacks[:, -1], kp2d_stacks=stacks)
    crit = S2HandLoss(hand, None, enabled=("kp2d", "con"))
    t, _ = crit.terms(c, batch)
    e1 = (3 * k - 0.5) + 7 / 21 * 0.5 * (0.1 * k) ** 2
    e2 = (6 * k - 0.5) + 7 / 21 * 0.5 * (0.2 * k) ** 2  # 0.2 k < 1: the quadratic part
    assert float(t["con"]) == pytest.approx(e2, rel=1e-4)  # last stack vs the projection
    assert float(t["kp2d"]) == pytest.approx((e1 + e2) / 2, rel=1e-4)  # mean over the stacks, conf 1
    assert float(L.consistency_loss(uv, uv)) == 0.0
    # E_con pulls both branches: gradients reach the 2D joints and the 3D codes
    kp = (uv + off).clone().requires_grad_(True)
    trans = codes["trans"].clone().requires_grad_(True)
    t, _ = S2HandLoss(hand, None, enabled=("con",)).terms(dict(codes, trans=trans, kp2d=kp, kp2d_stacks=kp[:, None]), batch)
    t["con"].backward()
    assert kp.grad.abs().sum() > 0 and trans.grad.abs().sum() > 0


def test_2d_losses_refuse_bad_input(hand):
    codes, batch, r = _scene(hand, size=48)
    crit = S2HandLoss(hand, None, enabled=("loc", "con"))
    with pytest.raises(ValueError, match="2D branch") as e:
        crit.terms(codes, batch)  # a network without the 2D branch
    assert "\n" not in str(e.value)
    bad = dict(codes, kp2d=torch.zeros(1, 20, 2), kp2d_stacks=torch.zeros(1, 2, 21, 2))
    with pytest.raises(ValueError, match=r"kp2d must have shape"):
        crit.terms(bad, batch)
    bad = dict(codes, kp2d=torch.zeros(1, 21, 2), kp2d_stacks=torch.zeros(1, 21, 2))
    with pytest.raises(ValueError, match=r"kp2d_stacks must have shape"):
        crit.terms(bad, batch)
    with pytest.raises(ValueError, match="pred2d must have shape"):
        L.consistency_loss(torch.zeros(2, 21, 2), torch.zeros(1, 21, 2))
    with pytest.raises(ValueError, match="unknown losses"):
        S2HandLoss(hand, None, enabled=("con2d",))


def test_stage_losses_follow_the_papers_schedule():
    assert stage_losses(PAPER.losses, 2, 1) == ("loc", "ori", "pixel", "ssim", "shape", "texture", "scale", "angle", "kp2d")
    assert stage_losses(PAPER.losses, 2, 2) == PAPER.losses
    assert "kp2d" not in stage_losses(PAPER.losses, 0, 2) and "con" not in stage_losses(PAPER.losses, 0, 2)
    assert PAPER.stacks == 2 and PAPER.epochs == 90 and PAPER.finetune_epochs == 60
    assert PAPER.finetune_lr == 2.5e-4 and PAPER.finetune_milestones == (20, 40)
    assert PAPER.finetune_gamma == pytest.approx(1 / 3)
