"""The self-supervised loss (eq. 10) on a rendered stereo pair whose true mesh is known.

A textured hand (bundled model) in front of a textured background is rendered by the shared renderer into a rectified
64 px pair (f = 120 px, b = 6 cm, 0.6 m away: 12 px of disparity, both crops with the
same principal point, so the hand sits 12 px apart in the two views and the left and
right masks differ). The loss is evaluated on meshes, not on a network
(``StereoSelfSupLoss.mesh_terms``), so these tests check the wiring of eqs. 2-9 --
which image is warped into which view, with whose disparity, against whose mask --
independently of any model: the true mesh must score lowest, a mesh moved in depth,
sideways or scaled must score higher. Swapping the masks or the warp directions in
``loss.py`` makes ``test_true_mesh_is_the_minimum`` and ``test_photo_term_at_the_truth_is_only_the_rim`` fail.
"""

from __future__ import annotations

import math

import pytest
import torch

from handtools.core.hand.model import HandModel
from handtools.core.losses.mesh import mesh_topology
from handtools.core.methods.binocular import LOSS_NAMES, StereoSelfSupLoss
from handtools.core.render import Renderer

S, F_PX, BASE, Z0 = 64, 120.0, 0.06, 0.6
SHIFT = torch.tensor([BASE, 0.0, 0.0])  # left frame -> right frame: p - (b, 0, 0)


def _make_scene(backend: str = "torch", device: str = "cpu"):
    hand = HandModel.from_path(None)
    K = torch.tensor([[[F_PX, 0.0, S / 2], [0.0, F_PX, S / 2], [0.0, 0.0, 1.0]]], device=device)
    pose = torch.zeros(1, 48)
    pose[0, 0] = -math.pi / 2  # palm towards the cameras
    v = hand(pose, torch.zeros(1, 10)).verts
    true_l = v - v.mean(1, keepdim=True) + torch.tensor([BASE / 2, 0.0, Z0])  # (1, 778, 3), between the cameras
    g = torch.Generator().manual_seed(0)
    colours = 0.5 + 0.4 * torch.sin(true_l @ (150.0 * torch.randn(3, 3, generator=g)))  # stripes ~4 cm, on the skin
    # a far, textured background (the same in both views; masked out by the loss)
    bg = 0.3 + 0.4 * torch.rand(1, 3, S // 8, S // 8, generator=g)
    bg = torch.nn.functional.interpolate(bg, size=(S, S), mode="bilinear", align_corners=False).to(device)
    true_l, colours = true_l.to(device), colours.to(device)
    renderer = Renderer(backend, device=device)
    faces = hand.faces.to(device)
    left = renderer.render(true_l, faces, K, (S, S), colors=colours)
    right = renderer.render(true_l - SHIFT.to(device), faces, K, (S, S), colors=colours)

    def image(r):
        return r.rgb.permute(0, 3, 1, 2) + (1.0 - r.silhouette[:, None]) * bg

    batch = {
        "image_l": image(left), "image_r": image(right),
        "K_l": K, "K_r": K.clone(), "baseline": torch.tensor([BASE], device=device),
        "mask_l": (left.silhouette > 0.5).float(), "mask_r": (right.silhouette > 0.5).float(),
    }
    loss = StereoSelfSupLoss(hand.faces, hand.joint_regressor, renderer, None, enabled=LOSS_NAMES)
    return hand, batch, true_l, loss


@pytest.fixture(scope="module")
def scene():
    return _make_scene()


def _terms(loss, batch, verts_l, true_l):
    """Terms of a candidate mesh (left frame; the right branch sees the same hand), pseudo = truth."""
    shift = SHIFT.to(verts_l.device)
    return loss.mesh_terms(verts_l, verts_l - shift, batch, true_l, true_l - shift)


def _perturbed(true_l):
    c = true_l.mean(1, keepdim=True)
    out = {}

    def t(x, y, z):
        return torch.tensor([x, y, z], device=true_l.device)

    for d in (-0.03, 0.03):
        out[f"depth {d:+.2f} m"] = true_l + t(0.0, 0.0, d)
    for d in (-0.01, 0.01):
        out[f"sideways x {d:+.2f} m"] = true_l + t(d, 0.0, 0.0)
        out[f"sideways y {d:+.2f} m"] = true_l + t(0.0, d, 0.0)
    for s in (0.9, 1.1):
        out[f"scaled x{s}"] = c + s * (true_l - c)
    return out


def test_scene_masks_differ_by_the_disparity(scene):
    """Sanity of the fixture: the two masks are 12 px apart (f b / z), so swapping them matters."""
    _, batch, _, _ = scene
    cols = torch.arange(S, dtype=torch.float32) + 0.5

    def centre_u(m):
        return float((m[0] * cols).sum() / m[0].sum())

    d = centre_u(batch["mask_l"]) - centre_u(batch["mask_r"])
    assert d == pytest.approx(F_PX * BASE / Z0, abs=1.0)
    assert float(batch["mask_l"].sum()) > 300


def test_true_mesh_is_the_minimum(scene):
    """Total (eq. 10, paper weights), photo (eqs. 2-3) and mask (eq. 7): the truth scores lowest."""
    _, batch, true_l, loss = scene
    at_truth = _terms(loss, batch, true_l, true_l)
    total_truth = float(loss.total(at_truth))
    for name, verts in _perturbed(true_l).items():
        t = _terms(loss, batch, verts, true_l)
        assert float(loss.total(t)) > 2.0 * total_truth, name
        assert float(t["photo"]) > 2.0 * float(at_truth["photo"]), name
        assert float(t["mask"]) > 2.0 * float(at_truth["mask"]), name


def test_mask_term_is_eq7s_sum_over_pixels(scene):
    """Eq. 7 as printed, ``||M - ~M||^2`` summed over pixels (not averaged): a mesh that covers
    no pixel of either crop scores exactly the number of mask pixels of both views."""
    _, batch, true_l, loss = scene
    assert loss.mask_reduction == "sum"
    away = _terms(loss, batch, true_l + torch.tensor([1.0, 0.0, 0.0]), true_l)  # 1 m sideways: out of both crops
    want = float(batch["mask_l"].sum() + batch["mask_r"].sum())  # binary masks: sum of M^2 = pixel count
    assert want > 600
    assert float(away["mask"]) == pytest.approx(want, rel=1e-6)


def test_photo_term_at_the_truth_is_only_the_rim(scene):
    """At the true mesh each warped view reproduces the other except at antialiased rim
    pixels: the photo term (both branches) is a small fraction of a 1 px depth error's."""
    _, batch, true_l, loss = scene
    truth = float(_terms(loss, batch, true_l, true_l)["photo"])
    dz = Z0 * Z0 / (F_PX * BASE)  # depth change of 1 px of disparity (5 cm)
    off = float(_terms(loss, batch, true_l + torch.tensor([0.0, 0.0, dz]), true_l)["photo"])
    assert truth < 0.02
    assert truth < 0.15 * off


def test_mesh_terms_closed_forms(scene):
    """Shape terms of the true mesh and of a scaled one, against closed forms."""
    hand, batch, true_l, loss = scene
    topo = mesh_topology(hand.faces, 778)
    i, j = topo.edges[:, 0], topo.edges[:, 1]
    at_truth = _terms(loss, batch, true_l, true_l)
    # pseudo = truth: eq. 5 is 0; one hand seen by both cameras: Chamfer (eq. 8) and normal (eq. 9) are 0
    assert float(at_truth["edge"]) == 0.0
    assert float(at_truth["chamfer"]) < 1e-12
    assert float(at_truth["normal"]) < 1e-3  # float32 cross products of mm-sized faces
    s = 1.1
    c = true_l.mean(1, keepdim=True)
    scaled = _terms(loss, batch, c + s * (true_l - c), true_l)
    sq_len = ((true_l[0, j] - true_l[0, i]) ** 2).sum()  # sum_e |e|^2, metres^2
    # eq. 5: (s |e| - |e|)^2 summed over edges, for each of the two branches
    assert float(scaled["edge"]) == pytest.approx(2 * (s - 1) ** 2 * float(sq_len), rel=1e-3)
    # eq. 6 is quadratic in the vertices and translation invariant: scales with s^2
    assert float(scaled["laplacian"]) == pytest.approx(s * s * float(at_truth["laplacian"]), rel=1e-3)


@pytest.mark.gpu
def test_landscape_with_nvdiffrast_on_cuda_matches_the_cpu_path(scene):
    """The same scene rendered and scored by nvdiffrast on CUDA: the truth is still the minimum,
    and each term agrees with the CPU torch renderer's within the renderers' rim differences."""
    pytest.importorskip("nvdiffrast.torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    _, batch, true_l, loss = _make_scene("nvdiffrast", "cuda")
    at_truth = _terms(loss, batch, true_l, true_l)
    total_truth = float(loss.total(at_truth))
    for name, verts in _perturbed(true_l).items():
        assert float(loss.total(_terms(loss, batch, verts, true_l))) > 2.0 * total_truth, name
    _, batch_c, true_c, loss_c = scene
    cpu = _terms(loss_c, batch_c, true_c, true_c)
    assert float(at_truth["photo"]) < 0.03
    # eq. 7 sums over pixels: the renderers' rims may differ by 1% of the crop's pixels per view
    assert abs(float(at_truth["mask"]) - float(cpu["mask"])) < 0.01 * S * S
    for name, verts in _perturbed(true_l).items():
        got = float(_terms(loss, batch, verts, true_l)["photo"])
        want = float(_terms(loss_c, batch_c, verts.cpu(), true_c)["photo"])
        assert got == pytest.approx(want, rel=0.25, abs=0.01), name
