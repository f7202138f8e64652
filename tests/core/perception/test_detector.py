"""MediaPipe hand detector: bundle, joint order, real photographs, confidence, selection."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from handtools.core.perception import detector as D
from handtools.core.hand.joints import JOINT_NAMES

REALDATA = Path(__file__).resolve().parents[3].parent / "shared" / "realdata"

#: Hands the realdata README says a good detector finds.
EXPECTED_HANDS = {
    "google_sample_woman_hands.jpg": 2,
    "hamer_test1.jpg": 2,
    "hamer_test5.jpg": 2,
    "pointing_up.jpg": 1,
    "thumbs_up.jpg": 1,
    "thumbs_down.jpg": 1,
    "victory.jpg": 1,
}

needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe not installed (handtools[detect])",
)
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is absent")


def _read(name):
    return cv2.cvtColor(cv2.imread(str(REALDATA / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector():
    with D.HandDetector(max_hands=4) as det:
        yield det


# -- no MediaPipe needed -------------------------------------------------------------------
def _det(area_side, score, side):
    kp = np.zeros((21, 3), np.float32)
    return D.Detection(keypoints=kp, bbox=np.array([0, 0, area_side, area_side], np.float32),
                       handedness=side, handedness_score=0.9, score=score,
                       keypoints_world=np.zeros((21, 3), np.float32))


def test_select_hands_policies():
    a, b, c = _det(50, 0.9, "left"), _det(80, 0.5, "right"), _det(30, 0.95, "right")
    dets = [a, b, c]
    assert D.select_hands(dets, 1, "largest") == [b]
    assert D.select_hands(dets, 2, "score") == [c, a]
    assert D.select_hands(dets, 3, "right") == [b, c, a]
    assert D.select_hands(dets, 1, "left") == [a]
    assert D.select_hands([b, c], 1, "left") == [b]        # no left hand: best other one
    assert D.select_hands([], 2, "largest") == []
    assert a.is_left and not b.is_left and a.area == 2500
    with pytest.raises(ValueError, match="policy"):
        D.select_hands(dets, 1, "nearest")
    with pytest.raises(ValueError, match="max_hands"):
        D.select_hands(dets, 0)


def test_keypoint_bbox():
    kp = np.array([[10, 20], [30, 60], [20, 40]], np.float64)
    np.testing.assert_allclose(D.keypoint_bbox(kp, margin=0.1), [6, 16, 34, 64])
    np.testing.assert_allclose(D.keypoint_bbox(kp, (32, 50), margin=0.1), [6, 16, 32, 50])


# -- MediaPipe -------------------------------------------------------------------------------
@needs_mediapipe
def test_landmark_order_is_freihand():
    import mediapipe as mp

    names = [lm.name for lm in mp.solutions.hands.HandLandmark]
    fingers = {"THUMB": "thumb", "INDEX_FINGER": "index", "MIDDLE_FINGER": "middle",
               "RING_FINGER": "ring", "PINKY": "little"}
    assert names[0] == "WRIST" and JOINT_NAMES[0] == "wrist"
    for j in range(1, 21):
        finger = next(v for k, v in fingers.items() if names[j].startswith(k))
        assert JOINT_NAMES[j].startswith(finger), (j, names[j], JOINT_NAMES[j])
    # root to tip within each finger
    assert [n.rsplit("_", 1)[1] for n in names[1:5]] == ["CMC", "MCP", "IP", "TIP"]
    assert all([n.rsplit("_", 1)[1] for n in names[k:k + 4]] == ["MCP", "PIP", "DIP", "TIP"]
               for k in (5, 9, 13, 17))


@needs_mediapipe
def test_task_bundle_holds_the_wheel_models():
    data = D.build_task_bundle()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        for name in zf.namelist():
            assert zf.read(name)[4:8] == b"TFL3"                 # TFLite flatbuffer id


@needs_mediapipe
def test_blank_and_invalid_images(detector):
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((240, 320, 3), 255, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((240, 320, 3), np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        detector.detect(np.zeros((240, 320), np.uint8))
    with pytest.raises(ValueError, match="max_hands"):
        D.HandDetector(max_hands=0)


@needs_mediapipe
@needs_realdata
@pytest.mark.parametrize("name", sorted(EXPECTED_HANDS))
def test_realdata_finds_listed_hands(detector, name):
    img = _read(name)
    h, w = img.shape[:2]
    dets = detector.detect(img)
    assert len(dets) == EXPECTED_HANDS[name]
    for d in dets:
        kp = d.keypoints
        assert kp.shape == (21, 3) and kp.dtype == np.float32
        assert np.isfinite(kp).all()
        assert (kp[:, 2] >= 0).all() and (kp[:, 2] <= 1).all()
        assert 0 <= d.score <= 1 and d.handedness in ("left", "right")
        size = np.ptp(kp[:, :2], axis=0).max()
        tol = 0.05 * size
        assert (kp[:, 0] > -tol).all() and (kp[:, 0] < w + tol).all()
        assert (kp[:, 1] > -tol).all() and (kp[:, 1] < h + tol).all()
        x0, y0, x1, y1 = d.bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0.03 * min(h, w) < max(x1 - x0, y1 - y0) < 0.9 * max(h, w)
        inside = ((kp[:, 0] >= x0) & (kp[:, 0] <= x1) & (kp[:, 1] >= y0) & (kp[:, 1] <= y1))
        assert inside.mean() > 0.9
        assert d.keypoints_world.shape == (21, 3)
        assert np.abs(d.keypoints_world).max() < 0.3           # metres, hand-centred
    if len(dets) == 2:                                         # two different hands
        a, b = dets
        assert np.linalg.norm(a.keypoints[:, :2] - b.keypoints[:, :2], axis=1).mean() > 20


@needs_mediapipe
@needs_realdata
def test_handedness_and_flip_consistency(detector):
    # pointing_up: a woman faces the camera and raises her left hand (on the image's right).
    img = _read("pointing_up.jpg")
    (d,) = detector.detect(img)
    assert d.handedness == "left" and d.is_left
    assert d.keypoints[:, 0].mean() > img.shape[1] / 2
    assert d.score > 0.8                                       # both passes agree
    (f,) = detector.detect(np.ascontiguousarray(img[:, ::-1]))
    assert f.handedness == "right"
    mirrored = f.keypoints[:, 0].copy()
    mirrored = img.shape[1] - mirrored
    size = np.ptp(d.keypoints[:, :2], axis=0).max()
    assert np.abs(mirrored - d.keypoints[:, 0]).mean() < 0.05 * size
    # mirrored_input swaps the reported side
    with D.HandDetector(max_hands=1, flip_check=False, mirrored_input=True) as det:
        (m,) = det.detect(img)
    assert m.handedness == "right"
    # without the flip pass the confidence is the handedness score for every keypoint
    np.testing.assert_allclose(m.keypoints[:, 2], m.handedness_score, rtol=1e-6)


@needs_mediapipe
@needs_realdata
def test_video_mode_tracks_frames():
    img = _read("victory.jpg")
    with D.HandDetector(max_hands=1, mode="video") as det:
        with pytest.raises(ValueError, match="timestamp_ms"):
            det.detect(img)
        n = [len(det.detect(img, timestamp_ms=t)) for t in (0, 33, 66)]
    assert n == [1, 1, 1]


def test_missing_mediapipe_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)      # makes `import mediapipe` fail
    with pytest.raises(ImportError, match=r"handtools\[detect\]"):
        D.HandDetector()
