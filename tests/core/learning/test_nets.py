"""Tests for handtools.core.learning.nets: ResNet encoders, lixel regressor, hand-prior model."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_TO_FREIHAND
from handtools.core.learning.nets import (
    HandPriorNet,
    LixelRegressor,
    ResNetEncoder,
    load_backbone_weights,
    regress_joints21,
    soft_argmax_1d,
    uvz_to_camera,
)

# --------------------------------------------------------------------------- torchvision names


def _bn_keys(prefix: str, ch: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight", (ch,)),
        (f"{prefix}.bias", (ch,)),
        (f"{prefix}.running_mean", (ch,)),
        (f"{prefix}.running_var", (ch,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def torchvision_resnet_keys(arch: str) -> OrderedDict[str, tuple[int, ...]]:
    """Key names and shapes of torchvision.models.<arch>().state_dict(), from the known architecture."""
    bottleneck = arch in ("resnet50", "resnet101")
    layers = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}[arch]
    expansion = 4 if bottleneck else 1
    keys: list[tuple[str, tuple[int, ...]]] = [("conv1.weight", (64, 3, 7, 7))] + _bn_keys("bn1", 64)
    in_ch = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            stride = 2 if (stage > 1 and i == 0) else 1
            if bottleneck:
                keys += [(f"{p}.conv1.weight", (planes, in_ch, 1, 1))] + _bn_keys(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn_keys(f"{p}.bn2", planes)
                keys += [(f"{p}.conv3.weight", (planes * 4, planes, 1, 1))] + _bn_keys(f"{p}.bn3", planes * 4)
            else:
                keys += [(f"{p}.conv1.weight", (planes, in_ch, 3, 3))] + _bn_keys(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn_keys(f"{p}.bn2", planes)
            if i == 0 and (stride != 1 or in_ch != planes * expansion):
                keys += [(f"{p}.downsample.0.weight", (planes * expansion, in_ch, 1, 1))]
                keys += _bn_keys(f"{p}.downsample.1", planes * expansion)
            in_ch = planes * expansion
    keys += [("fc.weight", (1000, 512 * expansion)), ("fc.bias", (1000,))]
    return OrderedDict(keys)


def _fake_torchvision_state(arch: str, seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for k, shape in torchvision_resnet_keys(arch).items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(int(torch.randint(0, 1000, (), generator=g)))
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g)
    return state


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_encoder_names_and_shapes_match_torchvision(arch):
    expected = torchvision_resnet_keys(arch)
    expected.pop("fc.weight")
    expected.pop("fc.bias")
    got = OrderedDict((k, tuple(v.shape)) for k, v in ResNetEncoder(arch).state_dict().items())
    assert list(got) == list(expected)  # same names, same order
    assert got == expected


def test_encoder_matches_torchvision_when_available():
    tvm = pytest.importorskip("torchvision.models")
    for arch in ("resnet18", "resnet50"):
        ref = getattr(tvm, arch)(weights=None).eval()
        ours = ResNetEncoder(arch).eval()
        load_backbone_weights(ours, ref.state_dict())
        x = torch.rand(1, 3, 64, 64)
        trunk = torch.nn.Sequential(*list(ref.children())[:-2])
        with torch.no_grad():
            torch.testing.assert_close(ours(x), trunk(x))


def test_load_backbone_weights_round_trip(tmp_path):
    state = _fake_torchvision_state("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = HandPriorNet("resnet18", image_size=64, with_z=False)
    enc = load_backbone_weights(model, path)
    assert enc is model.encoder
    loaded = model.encoder.state_dict()
    for k, v in loaded.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    # and back out: the encoder's state dict plus fc is a torchvision state dict again
    assert set(loaded) | {"fc.weight", "fc.bias"} == set(state)


def test_load_backbone_weights_variants_and_errors(tmp_path):
    state = _fake_torchvision_state("resnet18")
    enc = ResNetEncoder("resnet18")
    # DataParallel prefix and missing num_batches_tracked (old torchvision files) are accepted
    old = OrderedDict((f"module.{k}", v) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    load_backbone_weights(enc, old)
    torch.testing.assert_close(enc.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert int(enc.bn1.num_batches_tracked) == 0

    missing = OrderedDict(state)
    missing.pop("layer2.0.downsample.0.weight")
    with pytest.raises(ValueError, match=r"missing keys: layer2\.0\.downsample\.0\.weight"):
        load_backbone_weights(enc, missing)
    extra = OrderedDict(state, **{"layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected keys: layer5\.0\.conv1\.weight"):
        load_backbone_weights(enc, extra)
    with pytest.raises(ValueError, match="missing keys"):  # a resnet18 file into a resnet50
        load_backbone_weights(ResNetEncoder("resnet50"), state)
    bad = OrderedDict(state)
    bad["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatch conv1\.weight"):
        load_backbone_weights(enc, bad)
    path = tmp_path / "notadict.pth"
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="expected a state dict"):
        load_backbone_weights(enc, path)
    with pytest.raises(ValueError, match="ResNetEncoder"):
        load_backbone_weights(torch.nn.Linear(2, 2), state)


# --------------------------------------------------------------------------- shapes


def test_encoder_output_shapes():
    x = torch.rand(2, 3, 256, 256)
    enc = ResNetEncoder("resnet18").eval()
    with torch.no_grad():
        assert enc(x).shape == (2, 512, 8, 8)
    enc50 = ResNetEncoder("resnet50").eval()
    with torch.no_grad():
        assert enc50(x[:, :, :64, :96]).shape == (2, 2048, 2, 3)
    with pytest.raises(ValueError, match="unknown encoder"):
        ResNetEncoder("resnet19")


@pytest.mark.parametrize(("arch", "size"), [("resnet18", 256), ("resnet50", 64)])
def test_hand_prior_net_shapes(arch, size):
    model = HandPriorNet(arch, image_size=size, with_z=True, J_regressor=torch.full((16, 778), 1 / 778)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size), return_heatmaps=True)
    hm = size // 4
    assert out["uv"].shape == (2, 778, 2)
    assert out["z"].shape == (2, 778)
    assert out["heatmap_x"].shape == (2, 778, hm) and out["heatmap_y"].shape == (2, 778, hm)
    assert out["heatmap_z"].shape == (2, 778, 64)
    assert out["joints_uv"].shape == (2, 21, 2) and out["joints_z"].shape == (2, 21)
    assert ((out["uv"] > 0) & (out["uv"] < size)).all()
    assert (out["z"].abs() < 0.15).all()
    assert not any(k.startswith("J_regressor") or k.startswith("pixel_") for k in model.state_dict())


def test_hand_prior_net_without_z_and_validation():
    model = HandPriorNet("resnet18", image_size=(64, 96), with_z=False).eval()
    assert not any("conv_z" in k for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert set(out) == {"uv"}
    assert ((out["uv"][..., 0] < 96) & (out["uv"][..., 1] < 64)).all()
    with pytest.raises(ValueError, match=r"images must be \(B, 3, 64, 96\)"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of 32"):
        HandPriorNet("resnet18", image_size=100)
    with pytest.raises(ValueError, match="J_regressor"):
        HandPriorNet("resnet18", image_size=64, J_regressor=torch.zeros(21, 778))


def test_hand_prior_net_normalises_with_imagenet_stats():
    torch.manual_seed(0)
    model = HandPriorNet("resnet18", image_size=64, with_z=False).eval()
    img = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model.lixel_regressor(model.encoder((img - mean) / std))["uv"]
        torch.testing.assert_close(model(img)["uv"], ref)


def test_hand_prior_net_gradients_finite():
    torch.manual_seed(0)
    model = HandPriorNet("resnet18", image_size=64, with_z=True).train()
    out = model(torch.rand(2, 3, 64, 64))
    (out["uv"].mean() + out["z"].mean()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["encoder.conv1.weight"].abs().sum() > 0
    assert grads["lixel_regressor.conv_z_2.weight"].abs().sum() > 0


# --------------------------------------------------------------------------- soft-argmax / lixel


def test_soft_argmax_closed_form():
    L = 16
    logits = torch.full((L, L), -60.0, dtype=torch.float64)
    logits[torch.arange(L), torch.arange(L)] = 60.0  # row k peaked at bin k
    torch.testing.assert_close(soft_argmax_1d(logits), torch.arange(L, dtype=torch.float64) + 0.5)
    assert soft_argmax_1d(torch.zeros(3, 5, L)).shape == (3, 5)
    torch.testing.assert_close(soft_argmax_1d(torch.zeros(3, 5, L)), torch.full((3, 5), L / 2))
    # two equal peaks at bins 2 and 5 average to 4.0
    two = torch.full((L,), -60.0)
    two[[2, 5]] = 60.0
    torch.testing.assert_close(soft_argmax_1d(two), torch.tensor(4.0))
    with pytest.raises(ValueError):
        soft_argmax_1d(torch.zeros(3, dtype=torch.long))


def test_soft_argmax_gradcheck():
    x = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_argmax_1d, (x,))


def test_lixel_regressor_pixel_and_depth_conventions():
    torch.manual_seed(0)
    reg = LixelRegressor(in_channels=32, num_vertices=3, with_z=True, depth_bins=10, depth_range=0.3).eval()
    feats = torch.randn(2, 32, 4, 5)  # heatmaps: x 40 bins, y 32 bins -> image 160 wide, 128 high
    with torch.no_grad():
        for conv in (reg.conv_x, reg.conv_y, reg.conv_z_2):
            conv.weight.zero_()
            conv.bias.zero_()
        flat = reg(feats, return_heatmaps=True)
    assert flat["heatmap_x"].shape == (2, 3, 40) and flat["heatmap_y"].shape == (2, 3, 32)
    torch.testing.assert_close(flat["uv"], torch.tensor([160 / 2, 128 / 2]).expand(2, 3, 2))  # image centre
    torch.testing.assert_close(flat["z"], torch.zeros(2, 3))  # flat depth heatmap = root depth

    # Peaked heatmaps: bypass the upsampling so one feature cell drives one bin.
    reg = LixelRegressor(in_channels=8, num_vertices=1, hidden_channels=8, with_z=True, depth_bins=10).eval()
    D = 10
    with torch.no_grad():
        reg.deconv = torch.nn.Identity()
        for conv in (reg.conv_x, reg.conv_y):
            conv.weight.zero_()
            conv.weight[0, 0, 0] = 1000.0
            conv.bias.zero_()
        z_conv = reg.conv_z_1[0]
        z_conv.weight.zero_()
        z_conv.bias.zero_()
        z_conv.bias[0 * D + 7] = 1.0  # hidden channel 0, depth bin 7
        reg.conv_z_2.weight.zero_()
        reg.conv_z_2.weight[0, 0, 0] = 1000.0
        reg.conv_z_2.bias.zero_()
        f = torch.zeros(1, 8, 6, 7)
        f[0, 0, 2, 5] = 1.0  # row 2 (y), column 5 (x)
        out = reg(f)
    # pixel i covers [i, i+1): bin k of stride 4 has its centre at (k + 0.5) * 4
    torch.testing.assert_close(out["uv"], torch.tensor([[[(5 + 0.5) * 4, (2 + 0.5) * 4]]]), atol=1e-3, rtol=0)
    # depth bin d of D covers [-0.15, 0.15] m: centre ((d + 0.5) / D - 0.5) * 0.3
    torch.testing.assert_close(out["z"], torch.tensor([[(7.5 / D - 0.5) * 0.3]]), atol=1e-4, rtol=0)


def test_lixel_regressor_gradcheck_float64():
    torch.manual_seed(0)
    reg = LixelRegressor(in_channels=8, num_vertices=2, hidden_channels=2, with_z=True, depth_bins=3).double().eval()
    for p in reg.parameters():
        p.requires_grad_(False)
    feats = torch.randn(1, 8, 1, 2, dtype=torch.float64, requires_grad=True)

    def f(x):
        out = reg(x)
        return out["uv"], out["z"]

    assert torch.autograd.gradcheck(f, (feats,))


def test_lixel_regressor_validation():
    reg = LixelRegressor(in_channels=16, num_vertices=2, with_z=False)
    assert reg.hidden_channels == 2
    with pytest.raises(ValueError, match=r"features must be \(B, 16, h, w\)"):
        reg(torch.zeros(1, 8, 2, 2))
    with pytest.raises(ValueError):
        LixelRegressor(in_channels=16, depth_range=0.0)


# --------------------------------------------------------------------------- joints / camera


def test_regress_joints21_order():
    picks = [10 * j + 3 for j in range(16)]
    J = torch.zeros(16, 778, dtype=torch.float64)
    J[torch.arange(16), picks] = 1.0
    verts = torch.randn(2, 778, 3, dtype=torch.float64)
    joints = regress_joints21(verts, J)
    source = np.array(picks + list(FINGERTIP_VERTICES))[list(MANO_TO_FREIHAND)]
    torch.testing.assert_close(joints, verts[:, source])
    assert source[0] == picks[0] and source[4] == FINGERTIP_VERTICES[0]  # wrist, thumb tip
    # rows summing to one: translation commutes with the regressor (why uv joints are valid)
    Jr = torch.rand(16, 778, dtype=torch.float64)
    Jr /= Jr.sum(1, keepdim=True)
    shift = torch.tensor([3.0, -2.0], dtype=torch.float64)
    torch.testing.assert_close(regress_joints21(verts[..., :2] + shift, Jr), regress_joints21(verts[..., :2], Jr) + shift)
    with pytest.raises(ValueError):
        regress_joints21(verts[:, :700], J)


def test_uvz_to_camera_inverts_projection():
    torch.manual_seed(0)
    B, N = 3, 5
    xyz = torch.randn(B, N, 3, dtype=torch.float64) * 0.05 + torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64)
    K = torch.tensor([[500.0, 0.0, 128.0], [0.0, 480.0, 120.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    proj = xyz @ K.T
    uv = proj[..., :2] / proj[..., 2:]
    root = xyz[:, 0, 2]
    out = uvz_to_camera(uv, xyz[..., 2] - root[:, None], K.expand(B, 3, 3), root)
    torch.testing.assert_close(out, xyz)
    torch.testing.assert_close(uvz_to_camera(uv, xyz[..., 2] - root[:, None], K, root), xyz)
    with pytest.raises(ValueError, match="root_depth"):
        uvz_to_camera(uv, xyz[..., 2], K, root[:2])
    assert math.isfinite(float(out.sum()))


# --------------------------------------------------------------------------- mean-hand start


def test_bias_for_mean_soft_argmax_is_the_mean_even_near_the_ends():
    from handtools.core.learning.nets.lixel import bias_for_mean

    mean = torch.tensor([0.6, 1.0, 3.3, 7.9, 15.4], dtype=torch.float64)
    logits = bias_for_mean(mean, 16, sigma=1.5)
    assert logits.shape == (5, 16)
    torch.testing.assert_close(soft_argmax_1d(logits), mean, atol=1e-6, rtol=0)
    # a plain Gaussian centred on the mean would be pulled inwards at the ends
    centres = torch.arange(16, dtype=torch.float64) + 0.5
    naive = soft_argmax_1d(-((centres - mean[:, None]) ** 2) / (2 * 1.5**2))
    assert (naive - mean).abs().max() > 0.3


def test_untrained_prior_outputs_the_mean_hand_and_learns_a_residual():
    from handtools.core.hand.model import HandModel

    torch.manual_seed(0)
    hand = HandModel.from_path(None)
    net = HandPriorNet("resnet18", image_size=64, with_z=True, J_regressor=hand.joint_regressor).train()
    rng = torch.Generator().manual_seed(1)
    uv = 12 + 40 * torch.rand(778, 2, generator=rng)  # crop pixels, away from the border
    z = 0.1 * (torch.rand(778, generator=rng) - 0.5)
    net.init_mean(uv, z)
    images = torch.rand(4, 3, 64, 64, generator=rng)
    out = net(images)
    # every image decodes to the mean hand (within a small fraction of a pixel / millimetre)
    assert (out["uv"] - uv).abs().max() < 0.05
    assert (out["z"] - z).abs().max() < 1e-3
    # and the image-dependent residual is trainable: one Adam step moves the output
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target = uv + 3.0
    loss = (out["uv"] - target).abs().mean()
    loss.backward()
    opt.step()
    assert (net(images)["uv"] - target).abs().mean() < loss.item()
    # the prior survives a checkpoint round trip; a checkpoint without it loads as "no prior"
    state = net.state_dict()
    assert "lixel_regressor.prior_x" in state
    fresh = HandPriorNet("resnet18", image_size=64, with_z=True)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.lixel_regressor.prior_x, net.lixel_regressor.prior_x)
    old = {k: v for k, v in state.items() if ".prior_" not in k}
    fresh.load_state_dict(old)
    assert fresh.lixel_regressor.prior_x.abs().max() == 0
    # a trained net with its residual switched off (mean_hand_state) is back at the mean hand
    from handtools.core.learning.nets.prior import mean_hand_state

    for _ in range(3):
        (net(images)["uv"] - target).abs().mean().backward()
        opt.step()
    assert (net(images)["uv"] - uv).abs().max() > 0.5  # it learnt something image-dependent
    net.load_state_dict(mean_hand_state(net.state_dict()))
    assert (net(images)["uv"] - uv).abs().max() < 0.05 and (net(images)["z"] - z).abs().max() < 1e-3


def test_mean_uvz_is_the_mean_projected_ground_truth():
    from handtools.core.methods.prior.loss import gt_uvz, mean_uvz

    torch.manual_seed(0)
    verts = torch.randn(3, 778, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.5])
    joints = verts[:, :21].clone()
    K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]).expand(3, 3, 3)
    uv, z = mean_uvz(verts, joints, K)
    ruv, rz = gt_uvz(verts, joints, K)
    torch.testing.assert_close(uv, ruv.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(z, rz.mean(0), atol=1e-6, rtol=0)
