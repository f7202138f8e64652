"""Stereo geometry of the binocular self-supervised method: closed forms, the exact
pixel convention of the warp (pixel i covers [i, i + 1)), and finite-difference gradients."""

from __future__ import annotations

import math

import pytest
import torch

from handtools.core.geometry import stereo
from handtools.core.geometry.cameras import project, rectified_stereo_K_T, triangulate_rectified
from handtools.core.render import Renderer
from handtools.core.render.disparity import render_disparity
from handtools.core.geometry.stereo import (
    MIN_DISPARITY_PX,
    disparity_from_depth,
    left_from_right_frame,
    soft_min_clamp,
    verts_from_disparity,
    warp_with_disparity,
)

D = torch.float64


def K_of(f, cx, cy, fy=None, dtype=D):
    fy = f if fy is None else fy
    return torch.tensor([[f, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def random_points(B=2, V=50, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(B, V, 2, generator=g, dtype=dtype) - 0.5) * 0.2  # +-10 cm
    z = 0.4 + 0.3 * torch.rand(B, V, 1, generator=g, dtype=dtype)  # 0.4..0.7 m
    return torch.cat([xy, z], -1)  # (B, V, 3)


def stereo_views(points, baseline, K_left, K_right):
    """Pixels of left-frame points in a rectified pair, right camera at +baseline along x."""
    shift = torch.zeros(points.shape[0], 1, 3, dtype=points.dtype)
    shift[..., 0] = torch.as_tensor(baseline, dtype=points.dtype).reshape(-1, 1)
    return project(points, K_left), project(points - shift, K_right), points - shift


# --------------------------------------------------------------------------- eq. 1
def test_verts_from_disparity_recovers_points_exactly_with_crops_of_different_cx():
    pts = random_points()
    b = torch.tensor([0.12, 0.06], dtype=D)
    K_l = torch.stack([K_of(300.0, 64.0, 60.0), K_of(250.0, 40.0, 50.0)])
    K_r = torch.stack([K_of(300.0, 120.0, 60.0), K_of(250.0, 90.0, 50.0)])  # other crops, same rows
    uv_l, uv_r, pts_r = stereo_views(pts, b, K_l, K_r)
    xyz_l, xyz_r = verts_from_disparity(uv_l, uv_r, K_l, K_r, b)
    torch.testing.assert_close(xyz_l, pts, rtol=0, atol=1e-12)
    torch.testing.assert_close(xyz_r, pts_r, rtol=0, atol=1e-12)
    torch.testing.assert_close(left_from_right_frame(xyz_r, b), xyz_l, rtol=0, atol=1e-12)
    # the reference triangulation (exact, unclamped) agrees
    torch.testing.assert_close(xyz_l, triangulate_rectified(uv_l, uv_r, K_l, K_r, b), rtol=0, atol=1e-12)


def test_verts_from_disparity_with_different_focal_lengths_per_view():
    """A right crop resized by 1.5 (fx, fy, cx, cy all scaled): z uses normalised coordinates."""
    pts = random_points(B=1)
    K_l = K_of(300.0, 64.0, 64.0)[None]
    K_r = K_of(450.0, 150.0, 96.0)[None]
    uv_l, uv_r, pts_r = stereo_views(pts, 0.1, K_l, K_r)
    xyz_l, xyz_r = verts_from_disparity(uv_l, uv_r, K_l, K_r, 0.1)
    torch.testing.assert_close(xyz_l, pts, rtol=0, atol=1e-12)
    torch.testing.assert_close(xyz_r, pts_r, rtol=0, atol=1e-12)


def test_verts_from_disparity_matches_equation_1_and_takes_y_from_each_view():
    f, b = 822.8, 0.1201  # STB's rig
    uv_l = torch.tensor([[[400.0, 250.0]]], dtype=D)
    uv_r = torch.tensor([[[380.0, 256.0]]], dtype=D)  # 20 px disparity, rows disagree by 6 px
    K = K_of(f, 320.0, 240.0)[None]
    xyz_l, xyz_r = verts_from_disparity(uv_l, uv_r, K, K, b)
    z = f * b / 20.0
    torch.testing.assert_close(xyz_l[0, 0], torch.tensor([80 * z / f, 10 * z / f, z], dtype=D))
    torch.testing.assert_close(xyz_r[0, 0], torch.tensor([60 * z / f, 16 * z / f, z], dtype=D))


def test_soft_min_clamp_is_exact_above_twice_the_minimum_and_bounded_below():
    m = 0.5
    x = torch.tensor([1.0 + 1e-9, 3.0, 100.0], dtype=D)
    assert torch.equal(soft_min_clamp(x, m), x)
    beta = 20.0 / m
    at_min = soft_min_clamp(torch.tensor([m], dtype=D), m)
    torch.testing.assert_close(at_min, torch.tensor([m + math.log(2.0) / beta], dtype=D))
    low = soft_min_clamp(torch.tensor([-50.0, -1.0, 0.0, 0.4], dtype=D), m)
    assert bool((low >= m).all()) and bool((low < m + 0.02).all())
    with pytest.raises(ValueError, match="positive"):
        soft_min_clamp(x, 0.0)


def test_verts_from_disparity_guards_crossed_and_zero_disparities():
    K = K_of(300.0, 64.0, 64.0)[None]
    uv_l = torch.tensor([[[70.0, 64.0], [70.0, 64.0], [70.0, 64.0]]], dtype=D, requires_grad=True)
    uv_r = torch.tensor([[[70.0, 64.0], [75.0, 64.0], [69.0, 64.0]]], dtype=D)  # d = 0, -5, +1
    xyz_l, _ = verts_from_disparity(uv_l, uv_r, K, K, 0.1)
    z = xyz_l[0, :, 2]
    assert bool(torch.isfinite(xyz_l).all())
    assert bool((z > 0).all()) and bool((z <= 300.0 * 0.1 / MIN_DISPARITY_PX).all())
    torch.testing.assert_close(z[2], torch.tensor(30.0, dtype=D))  # d = 1 px = 2 * min: exact
    z.sum().backward()
    assert bool(torch.isfinite(uv_l.grad).all())
    assert float(uv_l.grad[0, 0, 0]) < 0  # more disparity, less depth: the gradient still points there


def test_verts_from_disparity_gradcheck():
    K_l = K_of(200.0, 16.0, 16.0)[None]
    K_r = K_of(200.0, 30.0, 16.0)[None]
    uv_l, uv_r, _ = stereo_views(random_points(B=1, V=4, seed=3), 0.08, K_l, K_r)
    b = torch.tensor([0.08], dtype=D)
    inputs = (uv_l.requires_grad_(), uv_r.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda a, c, bb: torch.cat(verts_from_disparity(a, c, K_l, K_r, bb), -1), inputs)


def test_verts_from_disparity_validates_inputs():
    K = K_of(300.0, 64.0, 64.0)[None]
    uv = torch.zeros(1, 5, 2, dtype=D)
    with pytest.raises(ValueError, match="uv_right"):
        verts_from_disparity(uv, torch.zeros(1, 4, 2, dtype=D), K, K, 0.1)
    with pytest.raises(ValueError, match="K_left"):
        verts_from_disparity(uv, uv, K[0], K, 0.1)
    with pytest.raises(ValueError, match="baseline"):
        verts_from_disparity(uv, uv, K, K, torch.ones(3, dtype=D))


# --------------------------------------------------------------------------- eq. 2
def test_disparity_from_depth_closed_form_and_no_nan_gradient_off_the_mesh():
    depth = torch.tensor([[[0.5, 0.0], [0.25, 1.0]]], dtype=D, requires_grad=True)
    K = K_of(200.0, 1.0, 1.0)[None]
    disp, mask = disparity_from_depth(depth, K, 0.1)
    torch.testing.assert_close(disp, torch.tensor([[[40.0, 0.0], [80.0, 20.0]]], dtype=D))
    torch.testing.assert_close(mask, torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], dtype=D))
    disp.sum().backward()
    torch.testing.assert_close(depth.grad, torch.tensor([[[-20.0 / 0.25, 0.0], [-20.0 / 0.0625, -20.0]]], dtype=D))


def fronto_parallel_square(half=0.05, z=0.5, dtype=D):
    verts = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    return verts[None], faces


def test_render_disparity_of_a_fronto_parallel_plane():
    verts, faces = fronto_parallel_square()
    K = K_of(100.0, 16.0, 16.0)[None]
    disp, mask = render_disparity(verts, faces, K, (32, 32), torch.tensor([0.06], dtype=D),
                                  renderer=Renderer("torch"))
    # the square spans u in [6, 26): pixels 6..25 are covered (centres inside), the rest not
    expected_mask = torch.zeros(32, 32, dtype=D)
    expected_mask[6:26, 6:26] = 1.0
    torch.testing.assert_close(mask[0], expected_mask)
    torch.testing.assert_close(disp[0], expected_mask * (100.0 * 0.06 / 0.5))


# --------------------------------------------------------------------------- warp
def test_warp_integer_shift_is_exact_with_exact_validity():
    g = torch.Generator().manual_seed(0)
    left = torch.rand(2, 3, 5, 12, generator=g, dtype=D)
    disp = torch.full((2, 5, 12), 3.0, dtype=D)
    warped, valid = warp_with_disparity(left, disp, "left_to_right")
    # right pixel i sees left pixel i + 3; the last 3 columns have no source
    torch.testing.assert_close(warped[..., :9], left[..., 3:], rtol=0, atol=1e-12)
    assert torch.equal(valid[..., :9], torch.ones(2, 5, 9, dtype=D))
    assert torch.equal(valid[..., 9:], torch.zeros(2, 5, 3, dtype=D))
    assert torch.equal(warped[..., 9:], torch.zeros(2, 3, 5, 3, dtype=D))
    # and back: left pixel i sees right pixel i - 3
    back, valid_back = warp_with_disparity(left, disp, "right_to_left")
    torch.testing.assert_close(back[..., 3:], left[..., :9], rtol=0, atol=1e-12)
    assert torch.equal(valid_back[..., :3], torch.zeros(2, 5, 3, dtype=D))


def test_warp_subpixel_shift_of_a_ramp_is_the_analytic_interpolation():
    W = 16
    centres = torch.arange(W, dtype=D) + 0.5
    ramp = (0.1 + 0.05 * centres).expand(1, 1, 4, W).contiguous()  # I(x) = 0.1 + 0.05 x
    disp = torch.full((1, 4, W), 3.25, dtype=D)
    warped, valid = warp_with_disparity(ramp, disp, "left_to_right")
    inside = centres + 3.25 <= W - 0.5  # both bilinear neighbours exist
    assert torch.equal(valid[0, 0].bool(), inside)
    torch.testing.assert_close(warped[0, 0, :, inside], (0.1 + 0.05 * (centres + 3.25))[inside].expand(4, -1),
                               rtol=0, atol=1e-12)


def test_warp_subpixel_shift_of_a_random_image_is_bilinear_between_neighbours():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 2, 3, 10, generator=g, dtype=D)
    warped, _ = warp_with_disparity(img, torch.full((1, 3, 10), 3.25, dtype=D), "left_to_right")
    expected = 0.75 * img[..., 3:9] + 0.25 * img[..., 4:10]  # x_src = i + 0.5 + 3.25
    torch.testing.assert_close(warped[..., :6], expected, rtol=0, atol=1e-12)


def test_warp_principal_point_offset_adds_to_the_disparity_per_sample():
    g = torch.Generator().manual_seed(2)
    img = torch.rand(2, 1, 4, 20, generator=g, dtype=D)
    disp = torch.full((2, 4, 20), 1.0, dtype=D)
    off = torch.tensor([2.0, 4.5], dtype=D)  # cx_left - cx_right
    warped, _ = warp_with_disparity(img, disp, "left_to_right", cx_offset=off)
    ref0, _ = warp_with_disparity(img[:1], disp[:1] + 2.0, "left_to_right")
    ref1, _ = warp_with_disparity(img[1:], disp[1:] + 4.5, "left_to_right")
    torch.testing.assert_close(warped, torch.cat([ref0, ref1]), rtol=0, atol=1e-12)
    back, _ = warp_with_disparity(img, disp, "right_to_left", cx_offset=off)
    torch.testing.assert_close(back[0, ..., 3:], img[0, ..., :17], rtol=0, atol=1e-12)


def test_warp_is_invalid_where_the_target_disparity_is_undefined():
    img = torch.ones(1, 1, 2, 8, dtype=D)
    disp = torch.zeros(1, 2, 8, dtype=D)
    disp[0, 0, :4] = 1.0
    warped, valid = warp_with_disparity(img, disp, "left_to_right")
    assert torch.equal(valid[0], (disp[0] > 0).to(D))
    assert torch.equal(warped[0, 0], valid[0])


def test_warp_gradcheck_wrt_image_and_disparity():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(1, 2, 3, 9, generator=g, dtype=D, requires_grad=True)
    disp = (1.3 + 0.4 * torch.rand(1, 3, 9, generator=g, dtype=D)).requires_grad_()  # away from integer kinks
    assert torch.autograd.gradcheck(lambda a, d: warp_with_disparity(a, d, "left_to_right", 0.2)[0],
                                    (img, disp))


def test_warp_validates_inputs():
    img = torch.zeros(1, 3, 4, 8)
    with pytest.raises(ValueError, match="direction"):
        warp_with_disparity(img, torch.ones(1, 4, 8), "up")
    with pytest.raises(ValueError, match="disparity_tgt"):
        warp_with_disparity(img, torch.ones(1, 5, 8), "left_to_right")
    with pytest.raises(ValueError, match="cx_offset"):
        warp_with_disparity(img, torch.ones(1, 4, 8), "left_to_right", cx_offset=torch.zeros(2))


def test_rectified_pair_from_cameras_module_round_trips():
    """rectified_stereo_K_T's right camera (T translation -b) is this module's +b convention."""
    K, T = rectified_stereo_K_T(300.0, 64.0, 64.0, 0.1, dtype=D)
    pts = random_points(B=1)
    pts_r = pts @ T[1, :3, :3].T + T[1, :3, 3]
    xyz_l, xyz_r = verts_from_disparity(project(pts, K[0][None]), project(pts_r, K[1][None]),
                                        K[0][None], K[1][None], 0.1)
    torch.testing.assert_close(xyz_l, pts, rtol=0, atol=1e-12)
    torch.testing.assert_close(xyz_r, pts_r, rtol=0, atol=1e-12)
    assert stereo.MIN_DISPARITY_PX == 0.5
