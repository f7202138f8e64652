"""Dataset and media readers on tiny fixture trees written here in the real layouts.

The ``make_*`` builders are also used by ``tests/commands/test_import.py``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from handtools.core.hand.joints import MANO_TO_FREIHAND
from handtools.errors import InputError
from handtools.io.datasets import common, freihand, ho3d, media, stb


# --------------------------------------------------------------------------- fixtures
def hand_joints(seed: int, z: float = 0.5) -> np.ndarray:
    """(21, 3) metres, our order, OpenCV frame: a spread hand ~z metres in front of the camera."""
    rng = np.random.default_rng(seed)
    wrist = np.array([0.01, 0.04, z]) + rng.normal(0, 0.005, 3)
    out = [wrist]
    for f in range(5):
        a = np.deg2rad(-60 + 30 * f)
        d = np.array([np.sin(a), -np.cos(a), 0.1 * (f - 2)])
        for k in range(1, 5):
            out.append(wrist + d * (0.03 + 0.022 * k) + rng.normal(0, 0.002, 3))
    return np.asarray(out)


def write_png(path: Path, img: np.ndarray) -> None:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, img)


def make_freihand(root: Path, n: int = 3, eval_split: bool = False) -> dict:
    """FreiHAND tree: {split}_*.json, {split}/rgb (4 versions for training), masks. Returns the labels."""
    split = "evaluation" if eval_split else "training"
    versions = 1 if eval_split else 4
    K = [[[300.0 + i, 0, 111.5], [0, 301.0, 112.5], [0, 0, 1]] for i in range(n)]
    xyz = [hand_joints(i).tolist() for i in range(n)]
    verts = [(np.random.default_rng(i).normal(0, 0.03, (778, 3)) + [0, 0, 0.5]).tolist() for i in range(n)]
    mano = [[list(np.arange(61) * 0.01 + i)] for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    for key, val in (("K", K), ("xyz", xyz), ("verts", verts), ("mano", mano), ("scale", [0.03] * n)):
        (root / f"{split}_{key}.json").write_text(json.dumps(val))
    for v in range(versions):
        for i in range(n):
            write_png(root / split / "rgb" / f"{v * n + i:08d}.jpg", np.full((224, 224, 3), 20 * (v * n + i), np.uint8))
    if not eval_split:
        for i in range(n):
            m = np.zeros((224, 224), np.uint8)
            m[50:100, 60:120] = 250  # jpeg ringing stays under the threshold
            write_png(root / "training" / "mask" / f"{i:08d}.jpg", m)
    return {"K": np.array(K), "xyz": np.array(xyz), "verts": np.array(verts), "mano": np.array(mano)[:, 0]}


def ours_to_stb(ours: np.ndarray) -> np.ndarray:
    """Inverse of the STB conversion: (21, 3) our order with a wrist -> STB order with the palm centre."""
    stb_j = np.empty_like(ours)
    stb_j[list(stb.STB_TO_OURS)] = ours
    stb_j[0] = 0.5 * (ours[0] + ours[13])  # palm centre halfway between wrist and ring MCP
    return stb_j


def make_stb(root: Path, seq: str = "B1Counting", n: int = 2, left_hands: np.ndarray | None = None) -> np.ndarray:
    """STB tree with ``n`` frames; each right image has a bright 3x3 dot at the thumb tip's projection.

    Returns the (n, 21, 3) ground truth (our order, metres, left camera frame, not mirrored).
    """
    import scipy.io

    truth = np.stack([hand_joints(10 + i) + [0.06, 0, 0.1] for i in range(n)]) if left_hands is None else left_hands
    hand_para = np.stack([ours_to_stb(j) for j in truth]).transpose(2, 1, 0) * 1000.0  # (3, 21, n) mm
    (root / "labels").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "labels" / f"{seq}_BB.mat", {"handPara": hand_para})
    for i in range(n):
        tip = truth[i, 4]
        u = stb.FX * (tip[0] - stb.BASELINE_M) / tip[2] + stb.CX  # OpenCV convention: pixel centres at integers
        v = stb.FY * tip[1] / tip[2] + stb.CY
        right = np.zeros((480, 640, 3), np.uint8)
        right[int(round(v)) - 1 : int(round(v)) + 2, int(round(u)) - 1 : int(round(u)) + 2] = 255
        write_png(root / "images" / seq / f"BB_right_{i}.png", right)
        write_png(root / "images" / seq / f"BB_left_{i}.png", np.full((480, 640, 3), 7, np.uint8))
    return truth


def make_ho3d(root: Path, seq: str = "ABF10", n: int = 2, ext: str = ".jpg") -> dict:
    """HO-3D train tree with OpenGL-frame labels in MANO order. Returns our-convention truth."""
    truth = np.stack([hand_joints(20 + i) for i in range(n)])
    cam = np.array([[614.6, 0, 312.2], [0, 615.1, 241.3], [0, 0, 1]])
    pose = np.random.default_rng(0).normal(0, 0.3, (n, 48))
    for i in range(n):
        mano_order = np.empty_like(truth[i])
        mano_order[list(MANO_TO_FREIHAND)] = truth[i]
        meta = {
            "handJoints3D": mano_order * [1, -1, -1],  # OpenCV -> OpenGL
            "camMat": cam, "handPose": pose[i], "handBeta": np.full(10, 0.1 * i), "handTrans": np.zeros(3),
            "objName": "003_cracker_box",
        }
        (root / "train" / seq / "meta").mkdir(parents=True, exist_ok=True)
        with open(root / "train" / seq / "meta" / f"{i:04d}.pkl", "wb") as f:
            pickle.dump(meta, f, protocol=2)
        write_png(root / "train" / seq / "rgb" / f"{i:04d}{ext}", np.full((480, 640, 3), 30 + i, np.uint8))
    return {"joints": truth, "K": cam, "pose": pose}


# --------------------------------------------------------------------------- common
def test_K_from_opencv_and_letterbox():
    K = common.K_from_opencv([[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    assert K[0, 2] == 320.0 and K[1, 2] == 240.0  # OpenCV image centre -> W/2, H/2
    img = np.zeros((40, 80, 3), np.uint8)
    img[10:12, 60:62] = 255  # a 2x2 dot centred at u=61, v=11 (continuous convention)
    Kg = common.guess_K((40, 80))
    np.testing.assert_allclose(Kg, [[96, 0, 40], [0, 96, 20], [0, 0, 1]])
    out, K2 = common.letterbox(img, Kg, (60, 60))  # scale 0.75 -> 60x30, padded 15 rows top
    assert out.shape == (60, 60, 3) and out[:15].max() == 0 and out[45:].max() == 0
    p = np.array([0.1, -0.05, 1.0])
    uv1, uv2 = (Kg @ p)[:2], (K2 @ p)[:2]
    np.testing.assert_allclose(uv2, uv1 * 0.75 + [0, 15], atol=1e-5)  # K follows the exact pixel map
    ys, xs = np.nonzero(out[..., 0] > 60)
    w = out[ys, xs, 0].astype(float)
    centre = np.array([(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5])
    np.testing.assert_allclose(centre, np.array([61, 11]) * 0.75 + [0, 15], atol=0.2)


def test_keypoints_and_bbox_project_each_view():
    j = hand_joints(0)
    K = np.stack([common.guess_K((480, 640), 500)] * 2)
    T = media.stereo_rig(0.1)
    kp, box = common.keypoints_and_bbox(j, K, T, (480, 640))
    np.testing.assert_allclose(kp[0, :, 0], 500 * j[:, 0] / j[:, 2] + 320, rtol=1e-5)
    np.testing.assert_allclose(kp[1, :, 0], 500 * (j[:, 0] - 0.1) / j[:, 2] + 320, rtol=1e-5)
    np.testing.assert_allclose(kp[..., 2], 1.0)
    np.testing.assert_allclose(box[0], [kp[0, :, 0].min(), kp[0, :, 1].min(), kp[0, :, 0].max(), kp[0, :, 1].max()],
                               rtol=1e-5)


# --------------------------------------------------------------------------- FreiHAND
def test_freihand_training_labels_versions_masks(tmp_path):
    lab = make_freihand(tmp_path, n=3)
    recs = freihand.freihand_records(tmp_path, "training", versions=["gs", "hom"])
    assert [r.source for r in recs] == [f"freihand/training/{v}/{i:08d}" for v in ("gs", "hom") for i in range(3)]
    s = recs[4].load()  # version hom of sample 1 is file 3 + 1
    assert s["images"].shape == (1, 224, 224, 3) and abs(int(s["images"].mean()) - 20 * 4) <= 2
    assert s["source"].startswith(str(tmp_path / "training" / "rgb" / "00000004.jpg"))
    np.testing.assert_allclose(s["joints3d"], lab["xyz"][1], atol=1e-7)  # metres, order unchanged
    np.testing.assert_allclose(s["verts3d"], lab["verts"][1], atol=1e-7)
    np.testing.assert_allclose(s["K"][0], lab["K"][1] + [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(s["mano/pose"], lab["mano"][1][:48], rtol=1e-6)
    np.testing.assert_allclose(s["mano/shape"], lab["mano"][1][48:58], rtol=1e-6)
    # keypoints2d: FreiHAND's own projection (OpenCV convention) + half a pixel
    uvw = lab["xyz"][1] @ lab["K"][1].T
    np.testing.assert_allclose(s["keypoints2d"][0, :, :2], uvw[:, :2] / uvw[:, 2:] + 0.5, atol=1e-3)
    m = s["masks"][0]
    assert set(np.unique(m)) == {0, 255} and m[50:100, 60:120].min() == 255 and m.sum() == 255 * 50 * 60


def test_freihand_evaluation_without_labels(tmp_path):
    make_freihand(tmp_path, n=2, eval_split=True)
    for key in ("xyz", "verts", "mano"):
        (tmp_path / f"evaluation_{key}.json").unlink()
    s = list(freihand.freihand_samples(tmp_path, "evaluation"))
    assert len(s) == 2 and set(s[0]) == {"K", "images", "source"}


def test_freihand_malformed_label_names_file_and_skips(tmp_path):
    make_freihand(tmp_path, n=3)
    xyz = json.loads((tmp_path / "training_xyz.json").read_text())
    xyz[1] = xyz[1][:20]
    (tmp_path / "training_xyz.json").write_text(json.dumps(xyz))
    with pytest.raises(InputError, match=r"training_xyz\.json \[1\]: joints has shape \(20, 3\)"):
        freihand.freihand_records(tmp_path, versions=["gs"])
    skipped = []
    recs = freihand.freihand_records(tmp_path, versions=["gs"], on_bad=skipped.append)
    assert [r.source for r in recs] == ["freihand/training/gs/00000000", "freihand/training/gs/00000002"]
    assert len(skipped) == 1 and "training_xyz.json [1]" in skipped[0]
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(InputError, match="training_K.json: no such file"):
        freihand.freihand_records(tmp_path)


# --------------------------------------------------------------------------- STB
def test_stb_joint_order_palm_to_wrist_units():
    ours = hand_joints(3)
    stb_order = ours_to_stb(ours)
    joints, palm = stb.convert_joints((stb_order * 1000.0).T[:, :, None])  # (3, 21, 1) mm
    np.testing.assert_allclose(joints[0], ours, atol=1e-12)  # order, units and wrist recovered
    np.testing.assert_allclose(palm[0], stb_order[0], atol=1e-12)
    # the permutation, joint by joint: STB is palm, little, ring, middle, index, thumb (root to tip)
    assert stb.STB_JOINT_NAMES[stb.STB_TO_OURS[4]] == "thumb4" and stb.STB_JOINT_NAMES[stb.STB_TO_OURS[17]] == "little1"
    from handtools.core.hand.joints import JOINT_NAMES

    for j in range(1, 21):
        assert JOINT_NAMES[j] == stb.STB_JOINT_NAMES[stb.STB_TO_OURS[j]]


def test_stb_mirrored_stereo_sample(tmp_path):
    truth = make_stb(tmp_path, n=2)
    recs = stb.stb_records(tmp_path)
    assert [r.source for r in recs] == ["stb/B1Counting/0", "stb/B1Counting/1"]
    s = recs[1].load()
    b = stb.BASELINE_M
    np.testing.assert_allclose(s["joints3d"][:, 0], b - truth[1][:, 0], atol=1e-6)  # mirrored into new view 0
    np.testing.assert_allclose(s["joints3d"][:, 1:], truth[1][:, 1:], atol=1e-6)
    assert s["baseline"] == np.float32(b) and s["mirrored"] == 1
    np.testing.assert_allclose(s["T_view"][1, 0, 3], -b, rtol=1e-6)
    np.testing.assert_allclose(s["K"][0], [[stb.FX, 0, 640 - stb.CX - 0.5], [0, stb.FY, stb.CY + 0.5], [0, 0, 1]],
                               rtol=1e-6)
    # view 0 is the flipped right image: its bright dot sits at the thumb tip's keypoint
    img = s["images"][0, :, :, 0]
    ys, xs = np.nonzero(img == 255)
    dot = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # continuous pixel convention
    np.testing.assert_allclose(s["keypoints2d"][0, 4, :2], dot, atol=0.75)
    assert s["images"][1].max() == 7  # view 1 is the (flipped) left image
    # rectified: both views see each joint on the same row, disparity f b / z
    kp = s["keypoints2d"]
    np.testing.assert_allclose(kp[0, :, 1], kp[1, :, 1], atol=1e-3)
    np.testing.assert_allclose(kp[0, :, 0] - kp[1, :, 0], stb.FX * b / s["joints3d"][:, 2], rtol=1e-4)


def test_stb_bad_files(tmp_path):
    make_stb(tmp_path, n=2)
    (tmp_path / "labels" / "B2Random_BB.mat").write_bytes(b"not a mat file")
    with pytest.raises(InputError, match="B2Random_BB.mat: not a readable .mat file"):
        stb.stb_records(tmp_path)
    skipped = []
    recs = stb.stb_records(tmp_path, on_bad=skipped.append)
    assert len(recs) == 2 and "B2Random_BB.mat" in skipped[0]
    (tmp_path / "images" / "B1Counting" / "BB_left_1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="BB_left_1.png: unreadable image"):
        recs[1].load()
    with pytest.raises(InputError, match="no such file"):
        stb.stb_records(tmp_path, ["B9Missing"])


# --------------------------------------------------------------------------- HO-3D
@pytest.mark.parametrize("ext", [".jpg", ".png"])  # v3 and v2
def test_ho3d_frame_order_and_mano(tmp_path, ext):
    from scipy.spatial.transform import Rotation

    t = make_ho3d(tmp_path, n=2, ext=ext)
    recs = ho3d.ho3d_records(tmp_path)
    assert [r.source for r in recs] == ["ho3d/train/ABF10/0000", "ho3d/train/ABF10/0001"]
    s = recs[1].load()
    np.testing.assert_allclose(s["joints3d"], t["joints"][1], atol=1e-6)  # y, z flipped and reordered
    assert s["joints3d"][:, 2].min() > 0  # in front of an OpenCV camera
    uvw = t["joints"][1] @ t["K"].T
    np.testing.assert_allclose(s["keypoints2d"][0, :, :2], uvw[:, :2] / uvw[:, 2:] + 0.5, atol=1e-3)
    R_gl = Rotation.from_rotvec(t["pose"][1, :3]).as_matrix()
    R_cv = Rotation.from_rotvec(s["mano/pose"][:3]).as_matrix()
    np.testing.assert_allclose(R_cv, np.diag([1, -1, -1]) @ R_gl, atol=1e-5)
    np.testing.assert_allclose(s["mano/pose"][3:], t["pose"][1, 3:], rtol=1e-6)
    assert s["images"].shape == (1, 480, 640, 3) and s["source"].endswith(f"0001{ext}")


def test_ho3d_unannotated_missing_and_malicious_meta(tmp_path):
    make_ho3d(tmp_path, n=3)
    meta_dir = tmp_path / "train" / "ABF10" / "meta"
    with open(meta_dir / "0001.pkl", "wb") as f:
        pickle.dump({"handJoints3D": None, "camMat": np.eye(3)}, f)
    (meta_dir / "0002.pkl").unlink()
    with pytest.raises(InputError, match="0001.pkl: handJoints3D is None"):
        ho3d.ho3d_records(tmp_path)
    skipped = []
    recs = ho3d.ho3d_records(tmp_path, on_bad=skipped.append)
    assert len(recs) == 1 and len(skipped) == 2 and "0002.pkl: no such file" in skipped[1]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(meta_dir / "0000.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(InputError, match="refusing to load builtins.print"):
        ho3d.read_meta(meta_dir / "0000.pkl")


# --------------------------------------------------------------------------- media
def test_calibration_file(tmp_path):
    cal = tmp_path / "rig.json"
    cal.write_text(json.dumps({"K_left": [[800, 0, 319.5], [0, 800, 239.5], [0, 0, 1]],
                               "K_right": [[800, 0, 329.5], [0, 800, 239.5], [0, 0, 1]],
                               "baseline": 0.1, "image_size": [640, 480]}))
    c = media.read_calibration(cal)
    np.testing.assert_allclose(c["K"][:, 0, 2], [320, 330])
    assert c["baseline"] == 0.1 and c["image_size"] == (480, 640)
    cal.write_text(json.dumps({"K_left": [[800, 0, 1], [0, 800, 1]], "K_right": np.eye(3).tolist(), "baseline": 0.1}))
    with pytest.raises(InputError, match="rig.json: K_left: intrinsics must be a finite 3x3"):
        media.read_calibration(cal)
    cal.write_text("{not json")
    with pytest.raises(InputError, match="rig.json: not valid JSON"):
        media.read_calibration(cal)


def test_side_by_side_stereo(tmp_path):
    sbs = np.zeros((20, 61, 3), np.uint8)
    sbs[:, :30] = 10
    sbs[:, 30:60] = 200
    write_png(tmp_path / "f.png", sbs)
    (rec,) = media.stereo_records([(tmp_path / "f.png", None)], baseline=0.06, focal=50.0)
    s = rec.load()
    assert s["images"].shape == (2, 20, 30, 3) and s["images"][0].max() == 10 and s["images"][1].min() == 200
    np.testing.assert_allclose(s["K"][1], [[50, 0, 15], [0, 50, 10], [0, 0, 1]])
    np.testing.assert_allclose(s["T_view"][1, 0, 3], -0.06, rtol=1e-6)
