"""Tests for handtools.core.geometry.cameras: closed forms, round trips, OpenCV agreement, stereo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from handtools.core.geometry import cameras as C

F64 = torch.float64


def _K(fx=500.0, fy=480.0, cx=320.0, cy=240.0, dtype=F64):
    return torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=dtype)


def _points(rng, n=50, batch=()):
    xy = rng.uniform(-0.15, 0.15, size=(*batch, n, 2))
    z = rng.uniform(0.3, 1.2, size=(*batch, n, 1))
    return torch.tensor(np.concatenate([xy, z], -1), dtype=F64)


def _random_rigid(rng):
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    T[:3, 3] = rng.normal(size=3)
    return torch.tensor(T, dtype=F64)


def test_project_closed_form_and_opencv():
    rng = np.random.default_rng(0)
    pts, K = _points(rng), _K()
    uv = C.project(pts, K)
    x, y, z = pts.unbind(-1)
    torch.testing.assert_close(uv[:, 0], 500 * x / z + 320)
    torch.testing.assert_close(uv[:, 1], 480 * y / z + 240)
    cv_uv, _ = cv2.projectPoints(pts.numpy(), np.zeros(3), np.zeros(3), K.numpy(), None)
    np.testing.assert_allclose(uv.numpy(), cv_uv[:, 0], atol=1e-9)


def test_project_unproject_roundtrip_batched_and_numpy():
    rng = np.random.default_rng(1)
    pts = _points(rng, batch=(4,))
    K = torch.stack([_K(fx=400 + 50 * i, cx=100 + i) for i in range(4)])  # (4, 3, 3)
    uv = C.project(pts, K)
    assert uv.shape == (4, 50, 2)
    torch.testing.assert_close(C.unproject(uv, pts[..., 2], K), pts)
    torch.testing.assert_close(C.unproject(uv, pts[..., 2:], K), pts)
    uv_np = C.project(pts.numpy(), K.numpy())
    assert isinstance(uv_np, np.ndarray) and uv_np.dtype == np.float64
    np.testing.assert_allclose(uv_np, uv.numpy())
    uv32 = C.project(pts.float(), K.float())
    assert uv32.dtype == torch.float32


def test_crop_K_equals_cropping_projected_pixels():
    rng = np.random.default_rng(2)
    pts, K = _points(rng), _K()
    box = torch.tensor([100.0, 50.0, 356.0, 370.0], dtype=F64)
    out = (128, 160)
    Kc = C.crop_K(K, box, out)
    uv = C.project(pts, K)
    want = (uv - box[:2]) * torch.tensor([128 / 256, 160 / 320], dtype=F64)
    torch.testing.assert_close(C.project(pts, Kc), want)
    A = C.crop_affine(box, out)
    torch.testing.assert_close(C.project(pts, C.update_K(K, A)),
                               uv @ A[:, :2].T + A[:, 2])
    # Pixel-edge convention: the box corners map to the crop's corners exactly.
    corners = torch.tensor([[100.0, 50.0], [356.0, 370.0]], dtype=F64)
    torch.testing.assert_close(corners @ A[:, :2].T + A[:, 2],
                               torch.tensor([[0.0, 0.0], [128.0, 160.0]], dtype=F64))


def test_update_K_general_affine():
    rng = np.random.default_rng(3)
    pts, K = _points(rng), _K()
    A = torch.tensor([[0.8, 0.1, 12.0], [-0.2, 1.1, -7.0]], dtype=F64)  # rotation-ish + shear
    uv = C.project(pts, K)
    torch.testing.assert_close(C.project(pts, C.update_K(K, A)), uv @ A[:, :2].T + A[:, 2])


@pytest.mark.parametrize("box, out_size", [((37.0, 21.0, 101.0, 117.0), (32, 48)),
                                           ((10.5, 3.25, 200.5, 123.25), (95, 60))])
def test_crop_pixel_centres_match_opencv_warp(box, out_size):
    """A crop made with cv2.warpAffine(affine_to_opencv(A)) samples pixel centres where
    the continuous convention says: crop pixel (i, j) centre (i+.5, j+.5) <- A^-1 of it."""
    h, w = 240, 320
    # Ramp images holding the continuous coordinate of each source pixel's centre.
    u_img = np.tile(np.arange(w, dtype=np.float32) + 0.5, (h, 1))
    v_img = np.tile(np.arange(h, dtype=np.float32)[:, None] + 0.5, (1, w))
    A = C.crop_affine(np.array(box), out_size)
    M = C.affine_to_opencv(A)
    got_u = cv2.warpAffine(u_img, M, out_size, flags=cv2.INTER_LINEAR)
    got_v = cv2.warpAffine(v_img, M, out_size, flags=cv2.INTER_LINEAR)
    jj, ii = np.mgrid[0:out_size[1], 0:out_size[0]]
    centres = np.stack([ii + 0.5, jj + 0.5, np.ones_like(ii, dtype=float)], -1)
    A3 = np.vstack([A, [0, 0, 1]])
    src = centres @ np.linalg.inv(A3).T
    # cv2 quantises sampling positions to 1/32 pixel; a half-pixel slip would be 0.5.
    np.testing.assert_allclose(got_u, src[..., 0], atol=0.04)
    np.testing.assert_allclose(got_v, src[..., 1], atol=0.04)


def test_resize_whole_image_matches_cv2_resize():
    h, w, out = 120, 160, (64, 48)
    u_img = np.tile(np.arange(w, dtype=np.float32) + 0.5, (h, 1))
    A = C.crop_affine(np.array([0.0, 0.0, w, h]), out)
    got = cv2.resize(u_img, out, interpolation=cv2.INTER_LINEAR)
    centres = np.arange(out[0]) + 0.5
    want = (centres - A[0, 2]) / A[0, 0]
    np.testing.assert_allclose(got[out[1] // 2], want, atol=0.04)


def test_depth_disparity_roundtrip_and_invalid():
    z = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    d = C.depth_to_disparity(z, 600.0, 0.1)
    torch.testing.assert_close(d, torch.tensor([120.0, 60.0, 30.0], dtype=F64))
    torch.testing.assert_close(C.disparity_to_depth(d, 600.0, 0.1), z)
    bad = torch.tensor([60.0, 0.0, -3.0], dtype=F64)
    with pytest.raises(ValueError, match="2 non-positive disparities"):
        C.disparity_to_depth(bad, 600.0, 0.1)
    torch.testing.assert_close(C.disparity_to_depth(bad, 600.0, 0.1, invalid="zero"),
                               torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    assert torch.isnan(C.disparity_to_depth(bad, 600.0, 0.1, invalid="nan")[1:]).all()
    with pytest.raises(ValueError, match="non-positive depths"):
        C.depth_to_disparity(torch.zeros(2), 600.0, 0.1)
    np.testing.assert_allclose(C.depth_to_disparity(np.array([1.0]), 600.0, 0.1), [60.0])


def test_transform_and_between_views():
    rng = np.random.default_rng(4)
    pts = _points(rng)
    T = _random_rigid(rng)
    got = C.transform_points(T, pts)
    homo = torch.cat([pts, torch.ones(50, 1, dtype=F64)], 1) @ T.T
    torch.testing.assert_close(got, homo[:, :3])
    Ta, Tb = _random_rigid(rng), _random_rigid(rng)
    world = pts
    in_a, in_b = C.transform_points(Ta, world), C.transform_points(Tb, world)
    torch.testing.assert_close(C.points_between_views(in_a, Ta, Tb), in_b)
    torch.testing.assert_close(C.points_between_views(in_b, Tb, Ta), in_a)


def test_rectified_stereo_pair_geometry():
    rng = np.random.default_rng(5)
    f, cx, cy, b = 700.0, 300.0, 220.0, 0.12
    K, T = C.rectified_stereo_K_T(f, cx, cy, b, dtype=F64)
    assert K.shape == (2, 3, 3) and T.shape == (2, 4, 4)
    torch.testing.assert_close(T[0], torch.eye(4, dtype=F64))
    torch.testing.assert_close(T[1, :3, 3], torch.tensor([-b, 0.0, 0.0], dtype=F64))
    pts = _points(rng)
    uvl = C.project(C.transform_points(T[0], pts), K[0])
    uvr = C.project(C.transform_points(T[1], pts), K[1])
    torch.testing.assert_close(uvl[:, 1], uvr[:, 1])  # rectified: same rows
    torch.testing.assert_close(uvl[:, 0] - uvr[:, 0], f * b / pts[:, 2])  # d = f b / z
    Kb, Tb = C.rectified_stereo_K_T(torch.tensor([600.0, 700.0]), 1.0, 2.0,
                                    torch.tensor([0.1, 0.2]))
    assert Kb.shape == (2, 2, 3, 3) and Tb[1, 1, 0, 3].item() == pytest.approx(-0.2)
    assert Kb.dtype == torch.float32


@pytest.mark.parametrize("scale_right", [1.0, 0.75])
def test_triangulate_rectified_crops_with_different_principal_points(scale_right):
    rng = np.random.default_rng(6)
    f, b = 650.0, 0.065
    K, T = C.rectified_stereo_K_T(f, 320.0, 240.0, b, dtype=F64)
    pts = _points(rng, batch=(3,))  # (3, 50, 3) in the left (world) frame
    # Each view cropped around its own box (as a hand crop would be) and resized.
    box_l = torch.tensor([[100.0, 80.0, 356.0, 336.0]] * 3, dtype=F64)
    box_r = torch.tensor([[40.0, 90.0, 296.0, 346.0]] * 3, dtype=F64)
    Kl = C.crop_K(K[0], box_l, (128, 128))
    Kr = C.crop_K(K[1], box_r, (int(128 * scale_right), int(128 * scale_right)))
    assert not torch.allclose(Kl[:, 0, 2], Kr[:, 0, 2])
    uvl = C.project(C.transform_points(T[0], pts), Kl)
    uvr = C.project(C.transform_points(T[1], pts), Kr)
    got = C.triangulate_rectified(uvl, uvr, Kl, Kr, b)
    torch.testing.assert_close(got, pts, rtol=0, atol=1e-10)
    got_b = C.triangulate_rectified(uvl, uvr, Kl, Kr, torch.full((3,), b, dtype=F64))
    torch.testing.assert_close(got_b, pts, rtol=0, atol=1e-10)
    if scale_right == 1.0:  # the disparity form of the docstring, same f
        d = (uvl[..., 0] - Kl[:, None, 0, 2]) - (uvr[..., 0] - Kr[:, None, 0, 2])
        torch.testing.assert_close(got[..., 2], Kl[:, None, 0, 0] * b / d)


def test_triangulate_invalid_disparity():
    K = _K()
    uvl = torch.tensor([[300.0, 200.0]], dtype=F64)
    uvr = torch.tensor([[310.0, 200.0]], dtype=F64)  # negative disparity
    with pytest.raises(ValueError, match="non-positive disparities"):
        C.triangulate_rectified(uvl, uvr, K, K, 0.1)
    assert torch.isnan(C.triangulate_rectified(uvl, uvr, K, K, 0.1, invalid="nan")).all()
    assert (C.triangulate_rectified(uvl, uvr, K, K, 0.1, invalid="zero") == 0).all()


def test_shape_errors():
    with pytest.raises(ValueError, match="points must have shape"):
        C.project(torch.zeros(5, 2), _K())
    with pytest.raises(ValueError, match="K must have shape"):
        C.project(torch.zeros(5, 3), torch.eye(4))
    with pytest.raises(ValueError, match="x1 > x0"):
        C.crop_affine(torch.tensor([10.0, 10.0, 5.0, 20.0]), (32, 32))
    with pytest.raises(ValueError, match="A must have shape"):
        C.update_K(_K(), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="invalid must be"):
        C.disparity_to_depth(torch.ones(2), 1.0, 1.0, invalid="mask")


def test_gradients_flow_through_projection():
    rng = np.random.default_rng(7)
    pts = _points(rng, n=4).requires_grad_(True)
    K = _K().requires_grad_(True)
    assert torch.autograd.gradcheck(C.project, (pts, K))
    uvl = torch.tensor([[330.0, 200.0]], dtype=F64, requires_grad=True)
    uvr = torch.tensor([[300.0, 200.0]], dtype=F64)
    assert torch.autograd.gradcheck(lambda a: C.triangulate_rectified(a, uvr, _K(), _K(), 0.1),
                                    (uvl,))
