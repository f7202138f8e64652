"""handtools render: panels, texture, views, contact sheet, video, mesh export, pipes and bad input."""

from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np
import pytest
import trimesh

from handtools.core.hand.joints import FINGER_OF_JOINT
from handtools.core.render.visualize import BACKGROUND, FINGER_COLORS, PANELS
from handtools.io.shards import ShardReader, ShardWriter
from tests.conftest import handtools_cmd, run_shell

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
H, W = 120, 160


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A stereo synth shard (ground truth) and a predictions shard with a red texture and no pred/joints3d."""
    from typer.testing import CliRunner

    from handtools.cli import app

    out = tmp_path_factory.mktemp("synth")
    res = CliRunner().invoke(app, ["synth", "--out", str(out), "--views", "2", "-n", "4",
                                   "--image-size", f"{W}x{H}", "--seed", "2"])
    assert res.exit_code == 0, res.stderr
    gt = res.stdout.strip()
    r = ShardReader(gt)
    tex = np.zeros((4, 778, 3), np.float32)
    tex[..., 0] = 1.0
    with ShardWriter(out / "preds", kind="predictions", num_views=2, producer="tests", history=r.history,
                     name=lambda k: "pred.h5") as w:
        w.append({"pred/verts3d": r.read("verts3d"), "pred/texture": tex}, copy_from=r)
    return gt, str(out / "preds" / "pred.h5")


def _png(path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _panel(strip, name):
    k = PANELS.index(name)
    return strip[:, k * W : (k + 1) * W]


def test_gt_panels_sheet_and_obj(cli, shards, tmp_path):
    gt, _ = shards
    out = tmp_path / "vis"
    res = cli("render", gt, "--out", out, "--source", "gt", "--sheet", "--export", "obj")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{out}\n"  # stdout: the output folder only
    names = sorted(p.name for p in out.iterdir())
    stems = [f"synth-00000-{i:05d}" for i in range(4)]
    assert names == sorted([f"{s}.png" for s in stems] + [f"{s}.obj" for s in stems] + ["sheet.png"])
    r = ShardReader(gt)
    images, masks, kp = r.read("images")[:, 0], r.read("masks")[:, 0] > 0, r.read("keypoints2d")[:, 0]
    faces = None
    for i, s in enumerate(stems):
        strip = _png(out / f"{s}.png")
        assert strip.shape == (H, 5 * W, 3)
        below = slice(30, H)  # under the caption
        np.testing.assert_array_equal(_panel(strip, "input")[below], images[i][below])
        # the overlay changes exactly the pixels the ground-truth mask covers (up to antialiased edges)
        changed = np.abs(_panel(strip, "mesh").astype(int) - images[i]).sum(-1) > 0
        grown = cv2.dilate(masks[i].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        shrunk = cv2.erode(masks[i].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not (changed[below] & ~grown[below]).any()
        assert changed[shrunk].mean() > 0.99
        # skeleton: the little fingertip (drawn last) has its colour at its keypoint's pixel
        u, v = kp[i, 20, :2]
        assert tuple(_panel(strip, "skeleton")[int(v), int(u)]) == FINGER_COLORS[FINGER_OF_JOINT[20]]
        for view in ("side", "top"):
            p = _panel(strip, view)
            assert tuple(p[-1, -1]) == BACKGROUND and (p != BACKGROUND).any(-1).mean() > 0.02
        mesh = trimesh.load(out / f"{s}.obj", process=False)
        np.testing.assert_allclose(mesh.vertices, r.read("verts3d")[i], atol=1e-6)
        if faces is None:
            from handtools.core.hand.model import HandModel

            faces = HandModel.from_path(None).faces.numpy()
        np.testing.assert_array_equal(mesh.faces, faces)
    sheet = _png(out / "sheet.png")
    assert sheet.shape == (2 * H + 3 * 2, 2 * W + 3 * 2, 3)  # 2 x 2 grid of overlays, 2 px padding


def test_predicted_texture_view_selection_and_ply(cli, shards, tmp_path):
    gt, pred = shards
    out = tmp_path / "vis"
    res = cli("render", pred, "--out", out, "--view", "1", "--every", "2", "--max", "1", "--export", "ply")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["pred-00000.ply", "pred-00000.png"]
    strip = _png(out / "pred-00000.png")
    r = ShardReader(gt)
    np.testing.assert_array_equal(_panel(strip, "input")[30:], r.read("images")[0, 1][30:])  # view 1
    side = _panel(strip, "side").astype(int)[30:]  # under the caption
    hand = cv2.erode((side != BACKGROUND).any(-1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # no edges
    assert hand.mean() > 0.02
    assert (side[hand][:, 0] > side[hand][:, 1:].max(-1)).mean() > 0.95  # red texture, not the default blue
    # no pred/joints3d: the skeleton comes from the mesh (regressor + fingertips) = view-1 keypoints
    u, v = r.read("keypoints2d")[0, 1, 20, :2]
    assert tuple(_panel(strip, "skeleton")[int(v), int(u)]) == FINGER_COLORS[4]
    ply = trimesh.load(out / "pred-00000.ply", process=False)
    np.testing.assert_allclose(ply.vertices, r.read("verts3d")[0], atol=1e-6)  # frame of view 0
    assert (ply.visual.vertex_colors[:, :3] == (255, 0, 0)).all()


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is None, reason="needs imageio-ffmpeg")
def test_video(cli, shards, tmp_path):
    import imageio.v2 as imageio

    gt, _ = shards
    video = tmp_path / "clips" / "seq.mp4"
    res = cli("render", gt, "--out", tmp_path / "vis", "--no-png", "--video", video, "--fps", "5")
    assert res.exit_code == 0, res.stderr
    assert list((tmp_path / "vis").iterdir()) == []
    rd = imageio.get_reader(video)
    frames = [f for f in rd]
    assert len(frames) == 4 and frames[0].shape == (128, 5 * W, 3)  # padded to multiples of 16
    assert rd.get_meta_data()["fps"] == pytest.approx(5.0)
    assert sorted(p.name for p in video.parent.iterdir()) == ["seq.mp4"]  # no temporary file left


def test_video_without_ffmpeg_fails_clearly(cli, shards, tmp_path, monkeypatch):
    gt, _ = shards
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    res = cli("render", gt, "--out", tmp_path / "vis", "--video", tmp_path / "v.mp4")
    assert res.exit_code == 1
    assert "handtools[video]" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "vis").exists() and not (tmp_path / "v.mp4").exists()


def test_existing_outputs_are_kept(cli, shards, tmp_path):
    gt, _ = shards
    out = tmp_path / "vis"
    assert cli("render", gt, "--out", out, "--max", "2").exit_code == 0
    target = out / "synth-00000-00001.png"
    target.write_bytes(b"mine")
    res = cli("render", gt, "--out", out, "--max", "3")
    assert res.exit_code == 1 and "exists" in res.stderr and "--overwrite" in res.stderr
    assert target.read_bytes() == b"mine" and not (out / "synth-00000-00002.png").exists()
    assert cli("render", gt, "--out", out, "--max", "3", "--overwrite").exit_code == 0
    assert _png(target).shape == (H, 5 * W, 3)


def test_bad_inputs(cli, shards, tmp_path):
    gt, _ = shards
    r = ShardReader(gt)
    with ShardWriter(tmp_path, kind="frames", num_views=2, producer="tests", name=lambda k: "noverts.h5") as w:
        w.append({}, copy_from=r, drop=["verts3d"])
    noverts = tmp_path / "noverts.h5"
    for args, needle in (
        ([noverts, "--source", "gt"], "verts3d"),
        ([gt, "--source", "pred"], "pred/verts3d"),
        ([gt, "--view", "2"], "2 view(s)"),
        ([tmp_path / "missing.h5"], "no such file"),
    ):
        res = cli("render", *args, "--out", tmp_path / "vis")
        assert res.exit_code == 1, args
        assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stdout == "" and not (tmp_path / "vis").exists()
    for args in (["--export", "stl"], ["--no-png"], ["--source", "both"], ["--video", "x.avi"],
                 ["--renderer", "opengl"]):
        res = cli("render", gt, "--out", tmp_path / "vis", *args)
        assert res.exit_code == 2, args
        assert not (tmp_path / "vis").exists()


def test_shell_pipeline(shards, tmp_path):
    gt, pred = shards
    p = run_shell(f"printf '%s\\n' {gt} {pred} | {handtools_cmd()} -q render --out {tmp_path / 'vis'} --every 3")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{tmp_path / 'vis'}\n"
    names = sorted(x.name for x in (tmp_path / "vis").iterdir())
    assert names == ["pred-00002.png", "synth-00000-00000.png", "synth-00000-00003.png"]  # every 3rd of 8
    assert _png(tmp_path / "vis" / "pred-00002.png").shape == (H, 5 * W, 3)


def _annotated_shard(path, n=3, views=2):
    """Frames without meshes, as import | detect | mask make them: images, K, keypoints with confidence,
    boxes and masks. Sample 1 has no hand in view 1 (all-zero keypoints, empty box)."""
    rng = np.random.default_rng(0)
    images = np.full((n, views, H, W, 3), 90, np.uint8)
    kp = np.zeros((n, views, 21, 3), np.float32)
    kp[..., 0] = rng.uniform(40, 120, (n, views, 21))
    kp[..., 1] = rng.uniform(30, 90, (n, views, 21))
    kp[..., 2] = 0.9
    kp[:, :, 8, 2] = 0.2  # the index fingertip is uncertain
    kp[1, 1] = 0
    bbox = np.tile(np.array([20, 10, 140, 110], np.float32), (n, views, 1))
    bbox[1, 1] = 0
    masks = np.zeros((n, views, H, W), np.uint8)
    masks[:, :, 100:115, 145:155] = 1  # a patch away from box, keypoints and the label
    K = np.tile(np.array([[100, 0, W / 2], [0, 100, H / 2], [0, 0, 1]], np.float32), (n, views, 1, 1))
    with ShardWriter(path.parent, kind="frames", num_views=views, producer="tests", name=lambda k: path.name) as w:
        w.append({"images": images, "K": K, "keypoints2d": kp, "bbox": bbox, "masks": masks})
    return path, kp


def test_shards_without_meshes_show_their_annotations(cli, shards, tmp_path):
    from handtools.core.render.overlay import BOX_COLOR, MASK_COLOR

    path, kp = _annotated_shard(tmp_path / "det.h5")
    gt, _ = shards
    out = tmp_path / "vis"
    res = cli("render", path, gt, "--out", out, "--sheet")  # no meshes next to a shard with meshes
    assert res.exit_code == 0, res.stderr
    strip = _png(out / "det-00000.png")
    assert strip.shape == (H, 2 * W + 2, 3)  # both views of the stereo pair side by side
    left, right = strip[:, :W], strip[:, W + 2 :]
    assert tuple(left[60, 20]) == BOX_COLOR  # the box's left edge
    patch = left[105:110, 148:152].reshape(-1, 3).astype(int)  # the mask: tinted towards MASK_COLOR
    assert (patch[:, 1] > 120).all() and (patch[:, 0] < 80).all()
    u, v = kp[0, 0, 0, :2]  # the wrist: drawn white
    assert (left[int(v), int(u)] > 200).all()
    assert not np.array_equal(left, right)  # each view its own annotations
    empty = _png(out / "det-00001.png")[:, W + 2 :]  # no hand in view 1 of sample 1: nothing drawn
    assert (empty[:95] == 90).all()
    assert _png(out / "synth-00000-00000.png").shape == (H, 5 * W, 3)  # meshes still drawn as before
    sheet = _png(out / "sheet.png")
    assert sheet.shape[0] > H and sheet.shape[1] > 2 * W
    assert (sheet.reshape(-1, 3) == np.array(MASK_COLOR)).all(1).any()  # mask contours reach the sheet


def test_export_needs_meshes(cli, tmp_path):
    path, _ = _annotated_shard(tmp_path / "det.h5")
    res = cli("render", path, "--out", tmp_path / "vis", "--export", "obj")
    assert res.exit_code == 1
    assert "needs meshes" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "vis").exists()
