"""Crop geometry: boxes, image warping convention, K update, stereo pairs stay exact."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.core.geometry import crop as C


def _K(f=600.0, cx=320.0, cy=240.0):
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)


def _project(K, X):
    """(J, 3) camera points -> (J, 2) pixels."""
    p = X @ K.T
    return p[:, :2] / p[:, 2:]


def _hand_joints(seed=0):
    """21 plausible joints (metres) about 0.45 m in front of the left camera."""
    rng = np.random.default_rng(seed)
    return np.array([0.03, -0.02, 0.45]) + rng.uniform(-0.06, 0.06, size=(21, 3))


# -- boxes -------------------------------------------------------------------------------
def test_square_box_and_policies():
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(100, 160, 21)          # extent 60 x 20
    kp[:, 1] = np.linspace(200, 220, 21)
    kp[:, 2] = 1.0
    b = C.hand_crop_box("bbox", keypoints=kp, scale=2.0)
    np.testing.assert_allclose(b, [70, 150, 190, 270])  # centre (130, 210), side 120
    b = C.hand_crop_box("bbox", bbox=[0, 0, 10, 40], scale=1.5)
    np.testing.assert_allclose(b, [5 - 30, 20 - 30, 5 + 30, 20 + 30])
    b = C.hand_crop_box("root", keypoints=kp, scale=1.0)  # root = wrist = kp[0] = (100, 200)
    np.testing.assert_allclose(b, [40, 140, 160, 260])  # 2 * max |kp - root| = 120
    gt = kp[:, :2] + 5.0
    b = C.hand_crop_box("gt", keypoints=kp, gt_keypoints=gt, scale=2.0)
    np.testing.assert_allclose(b, [75, 155, 195, 275])
    b = C.hand_crop_box("bbox", bbox=[0, 0, 1, 1], scale=1.0, min_size=32)
    assert b[2] - b[0] == 32
    # low-confidence joints are ignored
    kp2 = kp.copy()
    kp2[20, :2] = (1000, 1000)
    kp2[20, 2] = 0.0
    np.testing.assert_allclose(C.hand_crop_box("bbox", keypoints=kp2, scale=2.0, min_confidence=0.1),
                               C.hand_crop_box("bbox", keypoints=kp[:20], scale=2.0))


def test_box_validation():
    with pytest.raises(ValueError, match="center"):
        C.hand_crop_box("middle", bbox=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="needs"):
        C.hand_crop_box("gt", keypoints=np.zeros((21, 2)))
    with pytest.raises(ValueError, match="square"):
        C.crop_affine([0, 0, 10, 20], 64)
    with pytest.raises(ValueError, match="out_size"):
        C.crop_affine([0, 0, 10, 10], 0)
    with pytest.raises(ValueError, match="x1 > x0"):
        C.crop_affine([10, 0, 0, 10], 8)


# -- warping convention ------------------------------------------------------------------
def test_crop_image_integer_box_is_slicing():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    out = C.crop_image(img, [10, 5, 42, 37], 32)
    np.testing.assert_array_equal(out, img[5:37, 10:42])
    mask = (rng.random((60, 80)) > 0.5).astype(np.uint8) * 255
    np.testing.assert_array_equal(C.crop_image(mask, [10, 5, 42, 37], 32, "nearest"), mask[5:37, 10:42])


def test_crop_image_matches_affine_on_linear_ramp():
    # Pixel i has value a * (i + 0.5) + b (its centre); bilinear sampling of a linear
    # function is exact, so crop pixel j must hold a * x + b with x its centre mapped back.
    W = H = 100
    a, b = 0.7, 3.0
    xs = a * (np.arange(W) + 0.5) + b
    img = np.repeat(xs[None, :], H, axis=0).astype(np.float32)
    box = [20.3, 30.1, 52.3, 62.1]          # side 32 -> 64: s = 2, non-integer offsets
    out = C.crop_image(img, box, 64)
    x_back = C.uncrop_points(np.stack([np.arange(64) + 0.5, np.zeros(64)], 1), box, 64)[:, 0]
    # OpenCV samples positions on a 1/32-pixel grid: allow a*1/32.
    np.testing.assert_allclose(out[10], a * x_back + b, atol=a / 32 + 1e-4)


def test_nearest_masks_and_depth_keep_values():
    depth = np.zeros((50, 50), np.float32)
    depth[10:30, 15:35] = 0.5
    depth[20:25, 20:25] = 0.7
    out = C.crop_image(depth, [12.25, 8.5, 37.75, 34.0], 77, "nearest")
    assert set(np.unique(out).tolist()) <= {0.0, float(np.float32(0.5)), float(np.float32(0.7))}
    assert out.dtype == np.float32 and out.shape == (77, 77)
    mask = np.zeros((50, 50), np.uint8)
    mask[10:30, 15:35] = 255
    m = C.crop_image(mask, [12.25, 8.5, 37.75, 34.0], 77, "nearest")
    assert set(np.unique(m)) <= {0, 255}
    # area is preserved up to one pixel row/column of the 3x upsampling
    s = 77 / 25.5
    assert abs(np.count_nonzero(m) - (20 * s) * (20 * s)) < 2 * 20 * s + 4


def test_affine_matches_camera_helpers():
    from handtools.core.geometry import cameras

    box = np.array([12.5, -3.25, 76.5, 60.75])
    A = C.crop_affine(box, 128)
    np.testing.assert_allclose(A[:2], cameras.crop_affine(box, (128, 128)))
    K = np.array([[500.0, 0, 40], [0, 510, 30], [0, 0, 1]])
    np.testing.assert_allclose(C.crop_K(K, box, 128), cameras.crop_K(K, box, (128, 128)))
    # the OpenCV matrix crop_image builds is cameras.affine_to_opencv(A)
    rng = np.random.default_rng(4)
    img = rng.random((70, 90)).astype(np.float32)
    import cv2
    M = cameras.affine_to_opencv(A[:2])
    ref = cv2.warpAffine(img, M, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    np.testing.assert_array_equal(C.crop_image(img, box, 128), ref)


def test_crop_K_and_points_agree_with_projection():
    K = _K()
    X = _hand_joints()
    uv = _project(K, X)
    box = C.hand_crop_box("bbox", keypoints=uv, scale=1.3)
    Kc = C.crop_K(K, box, 224)
    uvc = C.crop_points(np.concatenate([uv, np.ones((21, 1))], 1), box, 224)
    np.testing.assert_allclose(uvc[:, :2], _project(Kc, X), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(uvc[:, 2], 1.0)                  # confidence carried
    np.testing.assert_allclose(C.uncrop_points(uvc, box, 224)[:, :2], uv, atol=1e-9)
    assert 0 <= uvc[:, :2].min() and uvc[:, :2].max() <= 224       # hand inside the crop
    Kb = C.crop_K(np.stack([K, K]).astype(np.float32), box, 224)   # batched, keeps dtype
    assert Kb.shape == (2, 3, 3) and Kb.dtype == np.float32


# -- stereo ------------------------------------------------------------------------------
def test_stereo_crops_triangulate_exactly():
    f, b = 700.0, 0.12
    K = _K(f=f, cx=330.0, cy=250.0)
    X = _hand_joints(seed=3)                                       # (21, 3) left-camera metres
    uv_l = _project(K, X)
    uv_r = _project(K, X - np.array([b, 0.0, 0.0]))                # right camera at +b on x
    np.testing.assert_allclose(uv_l[:, 1], uv_r[:, 1])             # rectified pair

    box_l = C.hand_crop_box("bbox", keypoints=uv_l, scale=1.3)
    box_r = C.hand_crop_box("bbox", keypoints=uv_r, scale=1.2)
    box_r[1] += 7.0                                                # detector jitter in v
    box_r[3] += 7.0
    bl, br, x_off = C.stereo_crop_boxes(box_l, box_r)
    assert bl[1] == br[1] and bl[3] == br[3]
    assert bl[2] - bl[0] == br[2] - br[0] == bl[3] - bl[1]
    assert x_off == br[0] - bl[0] and x_off < 0                    # right view's hand is left of it
    for box, uv in ((bl, uv_l), (br, uv_r)):                       # each centred on its hand
        np.testing.assert_allclose(0.5 * (box[0] + box[2]), 0.5 * (uv[:, 0].min() + uv[:, 0].max()))

    n = 256
    Kl, Kr = C.crop_K(K, bl, n), C.crop_K(K, br, n)
    cl, cr = C.crop_points(uv_l, bl, n), C.crop_points(uv_r, br, n)
    np.testing.assert_allclose(cl[:, 1], cr[:, 1], atol=1e-9)      # still the same rows
    np.testing.assert_allclose([Kl[1, 1], Kl[1, 2], Kl[0, 0]], [Kr[1, 1], Kr[1, 2], Kr[0, 0]])
    # triangulate from the crops: z = f' b / ((u_l - cx_l) - (u_r - cx_r))
    fc = Kl[0, 0]
    disp = (cl[:, 0] - Kl[0, 2]) - (cr[:, 0] - Kr[0, 2])
    z = fc * b / disp
    x = (cl[:, 0] - Kl[0, 2]) * z / fc
    y = (cl[:, 1] - Kl[1, 2]) * z / Kl[1, 1]
    np.testing.assert_allclose(np.stack([x, y, z], 1), X, rtol=1e-4)
    # the shared camera helpers agree
    from handtools.core.geometry import cameras

    tri = cameras.triangulate_rectified(cl, cr, Kl, Kr, b)
    np.testing.assert_allclose(tri, X, rtol=1e-4)
    # disparity bookkeeping with x_offset
    s = n / (bl[2] - bl[0])
    np.testing.assert_allclose((cl[:, 0] - cr[:, 0]) / s - x_off, uv_l[:, 0] - uv_r[:, 0], atol=1e-9)


def test_stereo_image_crops_are_rectified():
    # A textured plane seen by a rectified pair: a row of the left crop and the same row
    # of the right crop sample the same image row of the scene.
    rng = np.random.default_rng(0)
    H, W = 120, 200
    rows = rng.integers(0, 256, size=(H, 1, 3), dtype=np.uint8)
    img = np.repeat(rows, W, axis=1)                               # constant along rows
    bl, br, _ = C.stereo_crop_boxes([40, 30, 90, 80], [20, 36, 66, 82])
    cl = C.crop_image(img, bl, 64)
    cr = C.crop_image(img, br, 64)
    np.testing.assert_array_equal(cl[:, 20], cr[:, 20])


def test_view_crop_boxes_policies_misses_and_stereo():
    kp = np.zeros((2, 21, 3))
    kp[0, :, :2] = np.random.default_rng(0).uniform(40, 80, (21, 2))
    kp[0, :, 2] = 1.0
    kp[1] = kp[0] + [-20.0, 0.0, 0.0]                                # right view: 20 px disparity
    bbox = np.array([[40.0, 40.0, 80.0, 80.0], [20.0, 40.0, 60.0, 80.0]])
    boxes, xoff, found = C.view_crop_boxes("bbox", (160, 120), keypoints=kp, bbox=bbox, stereo=True)
    assert found.all() and xoff == pytest.approx(-20.0)
    np.testing.assert_allclose(boxes, [[32, 32, 88, 88], [12, 32, 68, 88]])
    # root policy: the wrist; mono views are independent
    boxes, xoff, _ = C.view_crop_boxes("root", (160, 120), keypoints=kp[:1], scale=1.0, min_size=1)
    assert xoff is None
    side = 2 * np.abs(kp[0, :, :2] - kp[0, 0, :2]).max()
    np.testing.assert_allclose(boxes[0], np.r_[kp[0, 0, :2] - side / 2, kp[0, 0, :2] + side / 2])
    # a stereo view without a hand takes the other view's box; no hand anywhere: the frame
    missed = kp.copy()
    missed[1, :, 2] = 0
    boxes, xoff, found = C.view_crop_boxes("root", (160, 120), keypoints=missed, stereo=True)
    assert list(found) == [True, False] and xoff == 0.0
    np.testing.assert_allclose(boxes[0], boxes[1])
    boxes, _, found = C.view_crop_boxes("bbox", (160, 120), bbox=np.zeros((1, 4)))
    assert not found[0]
    np.testing.assert_allclose(boxes[0], C.full_frame_box((160, 120)))
    np.testing.assert_allclose(C.full_frame_box((160, 120)), [0, -20, 160, 140])
    with pytest.raises(ValueError, match="gt_keypoints"):
        C.view_crop_boxes("gt", (160, 120), keypoints=kp)
    with pytest.raises(ValueError, match="2 views"):
        C.view_crop_boxes("bbox", (160, 120), bbox=bbox[:1], stereo=True)


@pytest.mark.parametrize("side, n", [(192, 64), (32, 64)])
def test_resize_crops_keeps_points_on_their_pixels(side, n):
    """A bright square's centroid and a projected 3D point land at ``x' = (n / side) x`` after
    resize_crops (area when shrinking, bilinear when enlarging), and uncrop_points maps back."""
    img = np.zeros((2, side, side, 3), np.uint8)
    lo, hi = side // 4, side // 4 + side // 8  # pixels lo..hi-1: centre at (lo + hi) / 2 in corner coordinates
    img[:, lo:hi, lo:hi] = 255
    K = np.tile(np.array([[2.0 * side, 0, 0.4 * side], [0, 2.0 * side, 0.6 * side], [0, 0, 1]], np.float32), (2, 1, 1))
    small, Ks = C.resize_crops(img, K, n)
    assert small.shape == (2, n, n, 3) and small.dtype == np.uint8 and Ks.dtype == np.float32
    s = n / side
    w = small[0, ..., 0].astype(float)
    ys, xs = np.mgrid[:n, :n] + 0.5  # pixel centres in corner coordinates
    assert (w * xs).sum() / w.sum() == pytest.approx(s * (lo + hi) / 2, abs=0.02)
    assert (w * ys).sum() / w.sum() == pytest.approx(s * (lo + hi) / 2, abs=0.02)
    X = np.array([0.03, -0.02, 0.5])
    uv = (K[0] @ X)[:2] / X[2]
    uv_s = (Ks[0] @ X)[:2] / X[2]
    np.testing.assert_allclose(uv_s, s * uv, rtol=1e-5)
    np.testing.assert_allclose(C.uncrop_points(uv_s, (0, 0, side, side), n), uv, rtol=1e-5)
    with pytest.raises(ValueError, match="square"):
        C.resize_crops(np.zeros((1, 8, 9, 3), np.uint8), K[:1], 4)
