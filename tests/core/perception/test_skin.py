"""Skin masks: colour rule on synthetic images, keypoint refinement, keypoint masks, IoU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from handtools.core.perception import skin as S

REALDATA = Path(__file__).resolve().parents[3].parent / "shared" / "realdata"

# Skin tones from light to dark (RGB) and non-skin backgrounds.
SKIN_TONES = [(255, 219, 172), (224, 172, 105), (198, 134, 66), (141, 85, 36), (90, 56, 40)]
BACKGROUNDS = [(20, 90, 200), (40, 160, 60), (128, 128, 128), (245, 245, 245), (10, 10, 10)]


def _noisy(shape, colour, rng, sigma=4.0):
    img = np.full(shape + (3,), colour, np.float64) + rng.normal(0, sigma, shape + (3,))
    return np.clip(img, 0, 255).astype(np.uint8)


def _hand_keypoints(cx=160.0, cy=130.0, size=100.0):
    """A flat open right hand, fingers up, in pixel coordinates (21, 3), conf 1."""
    wrist = np.array([cx, cy + 0.5 * size])
    kp = [wrist]
    bases = [(-0.35, 0.2), (-0.2, -0.1), (0.0, -0.15), (0.17, -0.12), (0.32, -0.05)]
    dirs = [(-0.8, -0.6), (-0.1, -1), (0, -1), (0.1, -1), (0.25, -1)]
    lens = [0.18, 0.16, 0.17, 0.16, 0.13]
    for (bx, by), (dx, dy), ln in zip(bases, dirs, lens):
        d = np.array([dx, dy]) / np.hypot(dx, dy)
        base = np.array([cx + bx * size, cy + by * size])
        kp += [base + k * ln * size * d for k in range(4)]
    kp = np.array(kp)
    return np.concatenate([kp, np.ones((21, 1))], 1)


@pytest.mark.parametrize("tone", SKIN_TONES)
def test_skin_blob_on_background(tone):
    rng = np.random.default_rng(0)
    img = _noisy((120, 160), BACKGROUNDS[0], rng)
    truth = np.zeros((120, 160), np.uint8)
    cv2.ellipse(truth, (80, 60), (40, 25), 30, 0, 360, 255, -1)
    img[truth > 0] = _noisy((120, 160), tone, rng)[truth > 0]
    mask = S.skin_mask(img)
    assert mask.dtype == np.uint8 and mask.shape == (120, 160)
    assert set(np.unique(mask).tolist()) <= {0, 255}
    assert S.iou(mask, truth) > 0.95


@pytest.mark.parametrize("bg", BACKGROUNDS)
def test_non_skin_background_stays_empty(bg):
    img = _noisy((90, 120), bg, np.random.default_rng(1))
    # sensor noise on grey pixels trips the raw rule on isolated pixels; the opening removes them
    assert np.count_nonzero(S.skin_mask(img)) == 0
    flat = np.full((90, 120, 3), bg, np.uint8)
    for method in S.SKIN_METHODS:
        assert np.count_nonzero(S.skin_colour_mask(flat, method)) == 0


def test_keypoints_refine_to_the_hand():
    rng = np.random.default_rng(2)
    kp = _hand_keypoints()
    truth = S.keypoint_mask(kp, (320, 260))
    img = _noisy((260, 320), BACKGROUNDS[1], rng)
    img[truth > 0] = _noisy((260, 320), SKIN_TONES[1], rng)[truth > 0]
    cv2.circle(img, (280, 40), 25, SKIN_TONES[1], -1)                 # a face-like distractor
    plain = S.skin_mask(img)
    assert plain[40, 280] == 255                                      # colour alone keeps it
    refined = S.skin_mask(img, kp)
    assert refined[40, 280] == 0                                      # keypoints remove it
    assert S.iou(refined, truth) > 0.9
    hull = S.skin_mask(img, kp, region="hull")
    assert hull[40, 280] == 0 and S.iou(hull, truth) > 0.9
    # a hand with no usable joint gives an empty mask
    kp0 = kp.copy()
    kp0[:, 2] = 0.0
    assert np.count_nonzero(S.skin_mask(img, kp0, min_confidence=0.5)) == 0


def test_keypoint_mask_geometry():
    kp = _hand_keypoints(cx=100, cy=100, size=60)
    m = S.keypoint_mask(kp, (200, 200))
    assert m.shape == (200, 200) and m.dtype == np.uint8
    u = np.floor(kp[:, 0]).astype(int)
    v = np.floor(kp[:, 1]).astype(int)
    assert (m[v, u] == 255).all()                                     # every joint inside
    # area grows with the square of the hand size
    big = S.keypoint_mask(np.concatenate([kp[:, :2] * 2, kp[:, 2:]], 1), (400, 400))
    ratio = np.count_nonzero(big) / np.count_nonzero(m)
    assert 3.6 < ratio < 4.4
    # two hands: union; explicit width changes the area
    two = S.keypoint_mask(np.stack([kp, kp + [80, 0, 0]]), (300, 200))
    assert np.count_nonzero(two) > 1.5 * np.count_nonzero(m)
    thin = S.keypoint_mask(kp, (200, 200), finger_width=2.0)
    assert np.count_nonzero(thin) < np.count_nonzero(m)
    # a low-confidence fingertip is left out
    kp2 = kp.copy()
    kp2[8, :2] = (190, 10)
    kp2[8, 2] = 0.1
    assert S.keypoint_mask(kp2, (200, 200), min_confidence=0.5)[10, 190] == 0
    assert S.keypoint_mask(kp2, (200, 200))[10, 190] == 255


def test_iou():
    a = np.zeros((10, 10), np.uint8)
    b = np.zeros((10, 10), bool)
    assert S.iou(a, b) == 1.0
    a[:5] = 255
    b[:, :5] = True
    assert S.iou(a, b) == pytest.approx(25 / 75)
    assert S.iou(a, a) == 1.0
    with pytest.raises(ValueError, match="shape"):
        S.iou(a, b[:5])


def test_validation():
    with pytest.raises(ValueError, match="uint8"):
        S.skin_mask(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        S.skin_mask(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="method"):
        S.skin_colour_mask(np.zeros((4, 4, 3), np.uint8), "lab")
    with pytest.raises(ValueError, match="keypoints"):
        S.keypoint_mask(np.zeros((20, 2)), (10, 10))


@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is absent")
def test_realdata_masks_inside_detections():
    pytest.importorskip("mediapipe")
    from handtools.core.perception.detector import HandDetector

    with HandDetector(max_hands=2, flip_check=False) as det:
        for name in ("google_sample_woman_hands.jpg", "pointing_up.jpg", "victory.jpg"):
            img = cv2.cvtColor(cv2.imread(str(REALDATA / name)), cv2.COLOR_BGR2RGB)
            dets = det.detect(img)
            assert dets, name
            kp = np.stack([d.keypoints for d in dets])
            mask = S.skin_mask(img, kp)
            drawn = S.keypoint_mask(kp, (img.shape[1], img.shape[0]))
            assert S.iou(mask, drawn) > 0.3, name
            for d in dets:
                x0, y0, x1, y1 = np.round(d.bbox).astype(int)
                inside = np.count_nonzero(mask[y0:y1, x0:x1]) / max((x1 - x0) * (y1 - y0), 1)
                assert inside > 0.15, name
