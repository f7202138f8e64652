"""Self-supervised stereo losses (eqs. 3-9): zeros, closed forms, reference libraries
(trimesh, scipy, pytorch_msssim), finite-difference gradients, and the end-to-end check
on a rendered stereo pair of the bundled hand model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from pytorch_msssim import ssim
from scipy.spatial import cKDTree

from handtools.core.geometry import stereo
from handtools.core.geometry.cameras import project, rectified_stereo_K_T
from handtools.core.hand.model import HandModel
from handtools.core.render import Renderer
from handtools.core.render.disparity import render_disparity
from handtools.core.losses.image import PHOTO_ALPHA, mask_loss, photo_consistency_loss, photo_consistency_terms
from handtools.core.losses.mesh import (
    MeshTopology,
    chamfer_loss,
    edge_loss,
    laplacian_loss,
    mesh_topology,
    normal_consistency_loss,
)

D = torch.float64


@pytest.fixture(scope="module")
def hand():
    model = HandModel.from_path(None, dtype=D)
    pose = torch.zeros(1, 48, dtype=D)
    pose[0, 0] = -math.pi / 2  # palm towards a camera looking along +z
    verts = model(pose, torch.zeros(1, 10, dtype=D)).verts  # (1, 778, 3)
    return verts - verts.mean(1, keepdim=True), model.faces


TRIANGLE = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=D)
TRI_FACES = torch.tensor([[0, 1, 2]])


def textured(B=1, C=3, H=24, W=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, C, H, W, generator=g, dtype=D)


# --------------------------------------------------------------------------- photo (eq. 3)
def test_photo_loss_is_zero_for_identical_images_and_for_a_perfect_warp():
    img = textured()
    mask = torch.ones(1, 24, 24, dtype=D)
    assert float(photo_consistency_loss(img, img.clone(), mask)) == pytest.approx(0.0, abs=1e-12)
    # right view = left view shifted by 4 px; warping the left with d = 4 reproduces it
    left = textured(W=32, seed=1)
    right = torch.zeros_like(left)
    right[..., :28] = left[..., 4:]
    warped, valid = stereo.warp_with_disparity(left, torch.full((1, 24, 32), 4.0, dtype=D), "left_to_right")
    assert float(photo_consistency_loss(right, warped, valid)) == pytest.approx(0.0, abs=1e-12)
    wrong, _ = stereo.warp_with_disparity(left, torch.full((1, 24, 32), 5.0, dtype=D), "left_to_right")
    assert float(photo_consistency_loss(right, wrong, valid)) > 0.05


def test_photo_loss_l1_term_is_the_mean_over_the_mask_and_ignores_the_background():
    img = textured(B=2)
    mask = torch.zeros(2, 24, 24, dtype=D)
    mask[:, 4:12, 6:20] = 1.0
    other = img + 0.1 * mask[:, None]  # differs by 0.1 inside the mask
    other[:, :, 20:, :] = 0.0  # and arbitrarily outside it
    loss = photo_consistency_loss(img, other, mask, alpha=0.0)
    assert float(loss) == pytest.approx(0.1, abs=1e-12)
    # alpha = 1: the SSIM term of the masked images (eq. 3 multiplies both by M), averaged over
    # the SSIM windows that see the hand (an independent SSIM map, not pytorch_msssim)
    m = mask[:, None]
    smap = _ssim_map(other * m, img * m, 7, 1.5)  # (B, H-6, W-6)
    touched = _windows_touching(mask, 7)  # (B, H-6, W-6) bool
    expected = torch.stack([0.5 * (1 - smap[i][touched[i]]).mean() for i in range(2)])
    torch.testing.assert_close(photo_consistency_loss(img, other, mask, alpha=1.0), expected.mean())
    full = photo_consistency_loss(img, other, mask)
    torch.testing.assert_close(full, PHOTO_ALPHA * expected.mean() + (1 - PHOTO_ALPHA) * 0.1)
    # the previous behaviour, SSIM over the whole crop, is still available (and is what the library returns)
    whole = 0.5 * (1 - ssim(other * m, img * m, data_range=1.0, size_average=False, win_size=7))
    torch.testing.assert_close(photo_consistency_loss(img, other, mask, alpha=1.0, ssim_region="crop"), whole.mean())
    torch.testing.assert_close(whole, torch.stack([0.5 * (1 - smap[i]).mean() for i in range(2)]))


def _ssim_map(x, y, win, sigma, c1=0.01 ** 2, c2=0.03 ** 2):
    """Per-window SSIM (Wang et al. 2004, eq. 4 with the mean term), Gaussian window, valid
    positions only, averaged over channels: (B, C, H, W) -> (B, H - win + 1, W - win + 1)."""
    r = torch.arange(win, dtype=x.dtype) - win // 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (g[:, None] * g[None, :]) / g.sum() ** 2  # (win, win), sums to 1
    C = x.shape[1]
    k = k.expand(C, 1, win, win)

    def blur(t):
        return torch.nn.functional.conv2d(t, k, groups=C)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * (2 * cxy + c2) / (vx + vy + c2)
    return s.mean(1)


def _windows_touching(mask, win):
    """(B, H, W) -> (B, H - win + 1, W - win + 1): the windows with at least one mask pixel (loops)."""
    B, H, W = mask.shape
    out = torch.zeros(B, H - win + 1, W - win + 1, dtype=torch.bool)
    for i in range(H - win + 1):
        for j in range(W - win + 1):
            out[:, i, j] = mask[:, i:i + win, j:j + win].flatten(1).gt(0).any(1)
    return out


@pytest.mark.parametrize("pad", [0, 8, 40])
def test_photo_loss_does_not_depend_on_how_much_of_the_crop_the_hand_fills(pad):
    """The same hand patch in a crop padded with background: SSIM and L1 parts (hence the
    balance alpha sets between them) are unchanged; averaged over the crop the SSIM part
    shrinks with the hand's share of it (the previous behaviour)."""
    g = torch.Generator().manual_seed(3)
    tgt = torch.rand(1, 3, 32, 32, generator=g, dtype=D)
    warped = (tgt + 0.2 * torch.randn(1, 3, 32, 32, generator=g, dtype=D)).clamp(0, 1)
    mask = torch.zeros(1, 32, 32, dtype=D)
    mask[:, 8:24, 9:23] = 1.0  # >= win - 1 px from the border: every window that sees it is inside the crop

    def padded(t):
        return torch.nn.functional.pad(t, (pad, pad, pad, pad))

    ref = photo_consistency_terms(tgt, warped, mask)
    got = photo_consistency_terms(padded(tgt), padded(warped), padded(mask))
    torch.testing.assert_close(got, ref)
    crop_ref = photo_consistency_terms(tgt, warped, mask, ssim_region="crop")[0]
    crop_got = photo_consistency_terms(padded(tgt), padded(warped), padded(mask), ssim_region="crop")[0]
    if pad:
        assert float(crop_got) < 0.7 * float(crop_ref)  # whole-crop mean: diluted by the background


def test_photo_loss_of_an_empty_mask_is_zero():
    img = textured()
    other = textured(seed=4)
    dssim, l1 = photo_consistency_terms(img, other, torch.zeros(1, 24, 24, dtype=D))
    assert float(dssim) == 0.0 and float(l1) == 0.0


def test_photo_loss_ssim_part_matches_an_independent_ssim_on_a_flat_patch():
    """Constant images a, b (no variance): SSIM = (2ab + C1) / (a^2 + b^2 + C1) (eq. 4 with mean term)."""
    a, b = 0.3, 0.5
    x = torch.full((1, 1, 9, 9), a, dtype=D)
    y = torch.full((1, 1, 9, 9), b, dtype=D)
    c1 = 0.01 ** 2
    s = (2 * a * b + c1) / (a * a + b * b + c1)
    loss = photo_consistency_loss(y, x, torch.ones(1, 9, 9, dtype=D), alpha=1.0)
    assert float(loss) == pytest.approx(0.5 * (1 - s), rel=1e-4)  # kernel is float32 in pytorch_msssim


def test_photo_loss_gradcheck_on_a_tiny_image():
    g = torch.Generator().manual_seed(5)
    tgt = torch.rand(1, 2, 5, 5, generator=g, dtype=D)
    warped = torch.rand(1, 2, 5, 5, generator=g, dtype=D, requires_grad=True)
    mask = torch.ones(1, 5, 5, dtype=D)
    mask[0, :2] = 0.0
    assert torch.autograd.gradcheck(lambda w: photo_consistency_loss(tgt, w, mask, win_size=3), (warped,))


def test_photo_loss_validates_inputs():
    img = textured()
    with pytest.raises(ValueError, match="mask"):
        photo_consistency_loss(img, img, torch.ones(1, 24, 23))
    with pytest.raises(ValueError, match="win_size"):
        photo_consistency_loss(img[..., :5, :5], img[..., :5, :5], torch.ones(1, 5, 5))
    with pytest.raises(ValueError, match="alpha"):
        photo_consistency_loss(img, img, torch.ones(1, 24, 24), alpha=1.5)


# --------------------------------------------------------------------------- edge (eq. 5)
def test_edge_loss_of_a_scaled_triangle():
    lengths = torch.tensor([1.0, 1.0, math.sqrt(2.0)], dtype=D)
    pred = 1.5 * TRIANGLE
    expected = ((0.5 * lengths) ** 2).sum()
    torch.testing.assert_close(edge_loss(pred, TRIANGLE, TRI_FACES), expected)
    torch.testing.assert_close(edge_loss(pred, TRIANGLE, TRI_FACES, reduction="mean"), expected / 3)
    assert float(edge_loss(TRIANGLE + 3.0, TRIANGLE, TRI_FACES)) == 0.0  # translation keeps lengths


def test_edge_loss_counts_each_mesh_edge_once(hand):
    verts, faces = hand
    topo = MeshTopology(faces, 778)
    ref = trimesh.Trimesh(verts[0].numpy(), faces.numpy(), process=False).edges_unique
    assert topo.edges.shape == (len(ref), 2)
    assert set(map(tuple, topo.edges.tolist())) == set(map(tuple, np.sort(ref, 1).tolist()))
    pred = verts * 1.1
    lengths = np.linalg.norm(verts[0].numpy()[ref[:, 0]] - verts[0].numpy()[ref[:, 1]], axis=1)
    expected = ((0.1 * lengths) ** 2).sum()
    assert float(edge_loss(pred, verts, faces)) == pytest.approx(expected, rel=1e-10)
    assert float(edge_loss(verts, verts, faces)) == 0.0


def test_edge_loss_gradcheck():
    g = torch.Generator().manual_seed(6)
    pred = (TRIANGLE + 0.1 * torch.randn(1, 3, 3, generator=g, dtype=D)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: edge_loss(p, TRIANGLE, TRI_FACES), (pred,))


# --------------------------------------------------------------------------- Laplacian (eq. 6)
TETRA_FACES = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


def test_laplacian_loss_of_a_tetrahedron():
    """Each vertex's neighbours are the other three: v - mean(others) = 4/3 (v - centroid)."""
    g = torch.Generator().manual_seed(7)
    verts = torch.randn(2, 4, 3, generator=g, dtype=D)
    c = verts.mean(1, keepdim=True)
    per_sample = (16.0 / 9.0) * ((verts - c) ** 2).sum(-1).mean(1)
    torch.testing.assert_close(laplacian_loss(verts, TETRA_FACES), per_sample.mean())
    torch.testing.assert_close(laplacian_loss(verts + 5.0, TETRA_FACES), per_sample.mean())  # translation


def test_laplacian_neighbours_match_trimesh(hand):
    verts, faces = hand
    tm = trimesh.Trimesh(verts[0].numpy(), faces.numpy(), process=False)
    lap = np.stack([verts[0].numpy()[i] - verts[0].numpy()[nb].mean(0) for i, nb in enumerate(tm.vertex_neighbors)])
    expected = (lap ** 2).sum(1).mean()
    assert float(laplacian_loss(verts, faces)) == pytest.approx(expected, rel=1e-10)


def test_laplacian_loss_gradcheck():
    g = torch.Generator().manual_seed(8)
    verts = torch.randn(1, 4, 3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: laplacian_loss(v, TETRA_FACES), (verts,))


def test_mesh_topology_is_cached_and_accepted_directly():
    a = mesh_topology(TETRA_FACES, 4)
    assert mesh_topology(TETRA_FACES.clone(), 4) is a
    verts = torch.randn(1, 4, 3, dtype=D)
    assert float(laplacian_loss(verts, a)) == float(laplacian_loss(verts, TETRA_FACES))
    with pytest.raises(ValueError, match="vertices"):
        laplacian_loss(torch.zeros(1, 5, 3), a)
    with pytest.raises(ValueError, match="face indices"):
        laplacian_loss(torch.zeros(1, 3, 3), TETRA_FACES)


# --------------------------------------------------------------------------- mask (eq. 7)
def test_mask_loss_of_known_masks():
    a = torch.zeros(2, 4, 4, dtype=D)
    b = torch.zeros(2, 4, 4, dtype=D)
    a[0, :2] = 1.0  # 8 pixels
    b[0, :, :2] = 1.0  # 8 pixels, 4 shared -> 8 disagree of 16
    a[1] = 0.5  # soft: (0.5)^2 everywhere
    per_sample = torch.tensor([8 / 16, 0.25], dtype=D)
    torch.testing.assert_close(mask_loss(a, b), per_sample.mean())
    torch.testing.assert_close(mask_loss(a, b.bool()), per_sample.mean())
    assert float(mask_loss(b, b)) == 0.0
    w = torch.tensor([1.0, 3.0], dtype=D)
    torch.testing.assert_close(mask_loss(a, b, weight=w), (w * per_sample).sum() / 4)
    # eq. 7 as printed: the sum over pixels (mean times the pixel count)
    torch.testing.assert_close(mask_loss(a, b, reduction="sum"), per_sample.mean() * a[0].numel())
    with pytest.raises(ValueError, match="reduction"):
        mask_loss(a, b, reduction="max")


def test_mask_loss_gradcheck():
    g = torch.Generator().manual_seed(9)
    sil = torch.rand(1, 3, 3, generator=g, dtype=D, requires_grad=True)
    gt = (torch.rand(1, 3, 3, generator=g, dtype=D) > 0.5).to(D)
    assert torch.autograd.gradcheck(lambda s: mask_loss(s, gt), (sil,))


# --------------------------------------------------------------------------- Chamfer (eq. 8)
def test_chamfer_of_point_sets_offset_by_a_known_vector(hand):
    verts, _ = hand
    t = torch.tensor([0.0003, -0.0002, 0.0001], dtype=D)  # far below the vertex spacing
    spacing = cKDTree(verts[0].numpy()).query(verts[0].numpy(), k=2)[0][:, 1].min()
    assert np.linalg.norm(t.numpy()) < spacing / 2
    expected = 2.0 * float((t ** 2).sum())
    assert float(chamfer_loss(verts, verts + t)) == pytest.approx(expected, rel=1e-9)
    assert float(chamfer_loss(verts + 0.5, verts + 0.5)) == 0.0  # also far from the origin


def test_chamfer_matches_a_kd_tree_reference_for_different_sizes():
    g = torch.Generator().manual_seed(10)
    a = torch.rand(2, 30, 3, generator=g, dtype=D)
    b = torch.rand(2, 45, 3, generator=g, dtype=D)
    ref = []
    for i in range(2):
        da = cKDTree(b[i].numpy()).query(a[i].numpy())[0]
        db = cKDTree(a[i].numpy()).query(b[i].numpy())[0]
        ref.append((da ** 2).mean() + (db ** 2).mean())
    assert float(chamfer_loss(a, b)) == pytest.approx(float(np.mean(ref)), rel=1e-10)
    assert float(chamfer_loss(a, b)) == pytest.approx(float(chamfer_loss(b, a)), rel=1e-12)  # symmetric


def test_chamfer_gradcheck():
    g = torch.Generator().manual_seed(11)
    a = torch.rand(1, 5, 3, generator=g, dtype=D, requires_grad=True)
    b = torch.rand(1, 6, 3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(chamfer_loss, (a, b))


# --------------------------------------------------------------------------- normal (eq. 9)
def rot_x(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=D)


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0, math.pi / 2])
def test_normal_loss_of_a_rotated_triangle(theta):
    """b = a rotated by theta about the x axis (edge 0-1): edges 0-2 and 1-2 of a lie at 90 and
    135 degrees to the axis, so eq. 9 gives sin(theta) (1 + 1/sqrt(2))."""
    b = TRIANGLE @ rot_x(theta).T
    expected = math.sin(theta) * (1.0 + 1.0 / math.sqrt(2.0))
    assert float(normal_consistency_loss(TRIANGLE, b, TRI_FACES)) == pytest.approx(expected, abs=1e-12)
    assert float(normal_consistency_loss(TRIANGLE, b + 2.0, TRI_FACES, reduction="mean")) == pytest.approx(
        expected / 3, abs=1e-12)


def test_normal_loss_is_zero_for_identical_and_translated_meshes(hand):
    verts, faces = hand
    assert float(normal_consistency_loss(verts, verts, faces)) < 1e-10
    assert float(normal_consistency_loss(verts, verts + torch.tensor([0.12, 0.0, 0.0], dtype=D), faces)) < 1e-10
    assert float(normal_consistency_loss(verts, verts @ rot_x(0.2).T, faces)) > 1.0


def test_normal_loss_gradcheck():
    g = torch.Generator().manual_seed(12)
    a = (TRIANGLE + 0.1 * torch.randn(1, 3, 3, generator=g, dtype=D)).requires_grad_()
    b = (TRIANGLE @ rot_x(0.4).T).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: normal_consistency_loss(x, y, TRI_FACES), (a, b))


# --------------------------------------------------------------------------- weights, checks
def test_per_sample_weights_give_the_weighted_batch_mean():
    pred = torch.stack([TRIANGLE[0], 2.0 * TRIANGLE[0]])
    pseudo = torch.stack([TRIANGLE[0], TRIANGLE[0]])
    per = torch.stack([edge_loss(pred[i:i + 1], pseudo[i:i + 1], TRI_FACES) for i in range(2)])
    w = torch.tensor([3.0, 1.0], dtype=D)
    torch.testing.assert_close(edge_loss(pred, pseudo, TRI_FACES, weight=w), (w * per).sum() / 4)
    assert float(edge_loss(pred, pseudo, TRI_FACES, weight=torch.zeros(2, dtype=D))) == 0.0
    with pytest.raises(ValueError, match="weight"):
        chamfer_loss(pred, pseudo, weight=torch.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        normal_consistency_loss(pred, pseudo, TRI_FACES, reduction="none")
    with pytest.raises(ValueError, match="pseudo_verts"):
        edge_loss(pred, pseudo[:1], TRI_FACES)


# --------------------------------------------------------------------------- end to end
def test_end_to_end_stereo_pair_of_the_hand_model(hand):
    """Hand at 0.5 m in a rectified pair (right crop centred on the hand): disparity
    recovers the mesh exactly, and the left rendering warped with the right view's
    rendered disparity matches the right rendering -- unlike with a 3 px error."""
    verts, faces = hand
    f, b, H, W = 250.0, 0.06, 96, 96
    K, T = rectified_stereo_K_T(f, W / 2, H / 2, b, dtype=D)
    K_l, K_r = K[0][None].clone(), K[1][None].clone()
    K_r[:, 0, 2] += f * b / 0.5  # crop the right view so the hand is centred there too
    v_l = verts + torch.tensor([0.0, 0.0, 0.5], dtype=D)
    v_r = v_l @ T[1, :3, :3].T + T[1, :3, 3]
    xyz_l, xyz_r = stereo.verts_from_disparity(project(v_l, K_l), project(v_r, K_r), K_l, K_r, b)
    torch.testing.assert_close(xyz_l, v_l, rtol=0, atol=1e-12)
    torch.testing.assert_close(xyz_r, v_r, rtol=0, atol=1e-12)
    assert float(chamfer_loss(xyz_l, stereo.left_from_right_frame(xyz_r, b))) < 1e-20
    assert float(normal_consistency_loss(xyz_l, stereo.left_from_right_frame(xyz_r, b), faces)) < 1e-9

    g = torch.Generator().manual_seed(0)
    freq = 150.0 * torch.randn(3, 3, generator=g, dtype=D)  # texture: stripes ~4 cm apart
    colors = 0.5 + 0.4 * torch.sin(v_l @ freq)  # (1, 778, 3) fixed to the surface
    renderer = Renderer("torch")
    left = renderer.render(v_l, faces, K_l, (H, W), colors=colors)
    right = renderer.render(v_r, faces, K_r, (H, W), colors=colors)
    disp_r, _ = stereo.disparity_from_depth(right.depth, K_r, b)
    torch.testing.assert_close(disp_r[right.depth > 0], f * b / right.depth[right.depth > 0])
    mask = (right.silhouette > 0.99).to(D)  # hand interior (the mask M_r)
    img_l, img_r = left.rgb.permute(0, 3, 1, 2), right.rgb.permute(0, 3, 1, 2)
    cx_off = K_l[:, 0, 2] - K_r[:, 0, 2]

    warped, valid = stereo.warp_with_disparity(img_l, disp_r, "left_to_right", cx_off)
    assert float((mask * valid).sum()) > 0.95 * float(mask.sum()) > 2000
    good = photo_consistency_loss(img_r, warped, mask)
    warped_off, _ = stereo.warp_with_disparity(img_l, disp_r + 3.0, "left_to_right", cx_off)
    bad = photo_consistency_loss(img_r, warped_off, mask)
    assert float(good) < 5e-3
    assert float(bad) > 10 * float(good)


@pytest.mark.parametrize("dz", [-0.01, 0.01])
def test_photo_loss_gradient_through_the_rendered_disparity_points_back_to_the_true_depth(hand, dz):
    """Render the right mesh's disparity 1 cm too near / too far: d(loss)/d(z) restores it."""
    verts, faces = hand
    f, b, H, W = 250.0, 0.06, 64, 64
    K_l = torch.tensor([[[f, 0.0, 32.0], [0.0, f, 32.0], [0.0, 0.0, 1.0]]], dtype=D)
    K_r = K_l.clone()
    K_r[:, 0, 2] += f * b / 0.5
    v_l = verts + torch.tensor([0.0, 0.0, 0.5], dtype=D)
    v_r = v_l - torch.tensor([b, 0.0, 0.0], dtype=D)
    colors = 0.5 + 0.4 * torch.sin(v_l @ (150.0 * torch.randn(3, 3, generator=torch.Generator().manual_seed(0),
                                                                dtype=D)))
    renderer = Renderer("torch")
    img_l = renderer.render(v_l, faces, K_l, (H, W), colors=colors).rgb.permute(0, 3, 1, 2)
    right = renderer.render(v_r, faces, K_r, (H, W), colors=colors)
    shift = torch.tensor([0.0, 0.0, dz], dtype=D, requires_grad=True)
    disp, _ = render_disparity(v_r + shift, faces, K_r, (H, W), b, renderer)
    warped, _ = stereo.warp_with_disparity(img_l, disp, "left_to_right", K_l[:, 0, 2] - K_r[:, 0, 2])
    loss = photo_consistency_loss(right.rgb.permute(0, 3, 1, 2), warped, (right.silhouette > 0.5).to(D))
    loss.backward()
    assert float(shift.grad[2]) * dz > 0  # gradient descent moves z back towards 0


def test_float32_inputs_and_bool_masks_work(hand):
    verts, faces = hand
    v = verts.float()
    img = textured().float()
    assert photo_consistency_loss(img, img, torch.ones(1, 24, 24, dtype=torch.bool)).dtype == torch.float32
    for loss in (edge_loss(v, v * 1.01, faces.numpy()), laplacian_loss(v, faces), chamfer_loss(v, v + 0.001),
                 normal_consistency_loss(v, v, faces), mask_loss(img[:, 0], img[:, 1] > 0.5)):
        assert loss.dtype == torch.float32 and loss.ndim == 0 and bool(torch.isfinite(loss))


@pytest.mark.gpu
def test_losses_and_warp_agree_on_cuda(hand):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    verts, faces = hand
    g = torch.Generator().manual_seed(13)
    img_a, img_b = textured(seed=1), textured(seed=2)
    mask = (torch.rand(1, 24, 24, generator=g, dtype=D) > 0.3).to(D)
    disp = 2.0 + torch.rand(1, 24, 24, generator=g, dtype=D)
    pred = verts + 0.002 * torch.randn(verts.shape, generator=g, dtype=D)

    def run(dev):
        warped, valid = stereo.warp_with_disparity(img_a.to(dev), disp.to(dev), "left_to_right", 1.5)
        return torch.stack([
            photo_consistency_loss(img_b.to(dev), warped, mask.to(dev) * valid),
            edge_loss(pred.to(dev), verts.to(dev), faces.to(dev)),
            laplacian_loss(pred.to(dev), faces.to(dev)),
            mask_loss(mask.to(dev) * 0.5, mask.to(dev)),
            chamfer_loss(pred.to(dev), verts.to(dev)),
            normal_consistency_loss(pred.to(dev), verts.to(dev), faces.to(dev)),
        ]).cpu()

    torch.testing.assert_close(run("cuda"), run("cpu"), rtol=1e-7, atol=1e-12)
