"""handtools import: shards from images, video, stereo pairs and dataset trees; errors; pipes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handtools.io.shards import ShardReader
from tests.conftest import REALDATA, handtools_cmd, run_shell
from tests.io.test_datasets import make_freihand, make_ho3d, make_stb, write_png

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ok(res) -> list[str]:
    assert res.exit_code == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


def _one_line_error(res, *needles):
    assert res.exit_code == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert lines[-1].startswith("handtools import: error:"), res.stderr
    for n in needles:
        assert n in lines[-1], lines[-1]


def _images(folder, sizes):
    for i, (w, h) in enumerate(sizes):
        write_png(folder / f"im{i}.png", np.full((h, w, 3), 40 * i, np.uint8))
    return folder


def test_images_folder_and_glob(cli, tmp_path):
    src = _images(tmp_path / "src", [(64, 48)] * 3)
    paths = _ok(cli("import", "images", src, "--out", tmp_path / "o", "--shard-size", "2"))
    assert [p.split("/")[-1] for p in paths] == ["images-00000.h5", "images-00001.h5"]
    r = ShardReader(paths[0])
    assert r.kind == "frames" and r.num_views == 1 and r.image_size == (48, 64)
    np.testing.assert_allclose(r.read("K")[0, 0], [[1.2 * 64, 0, 32], [0, 1.2 * 64, 24], [0, 0, 1]])
    assert list(r.read("source")) == [str(src / "im0.png"), str(src / "im1.png")]
    assert r.read("images")[1, 0].mean() == 40
    r2 = ShardReader(_ok(cli("import", "images", str(src / "im[12].png"), "--focal", "100", "--out", tmp_path / "g"))[0])
    assert r2.num_samples == 2 and r2.read("K")[0, 0, 0, 0] == 100


def test_mixed_sizes_one_series_per_size_or_resize(cli, tmp_path):
    src = _images(tmp_path / "src", [(64, 48), (40, 40)])
    paths = _ok(cli("import", "images", src, "--out", tmp_path / "s"))
    assert sorted(p.split("/")[-1] for p in paths) == ["images-40x40-00000.h5", "images-64x48-00000.h5"]
    assert sorted(ShardReader(p).image_size for p in paths) == [(40, 40), (48, 64)]
    r = ShardReader(_ok(cli("import", "images", src, "--resize", "32x32", "--out", tmp_path / "o"))[0])
    K = r.read("K")[:, 0]
    assert r.image_size == (32, 32)
    # 64x48 -> 32x24 letterboxed 4 rows down; 40x40 -> 32x32
    np.testing.assert_allclose(K[0], [[0.5 * 76.8, 0, 16], [0, 0.5 * 76.8, 16], [0, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(K[1], [[0.8 * 48, 0, 16], [0, 0.8 * 48, 16], [0, 0, 1]], rtol=1e-6)
    assert r.read("images")[0, 0, :4].max() == 0


def test_skip_bad_image_reported(cli, tmp_path):
    src = _images(tmp_path / "src", [(32, 24)] * 2)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n garbage")
    _one_line_error(cli("import", "images", src, "--out", tmp_path / "o"), "broken.png")
    assert not (tmp_path / "o").exists()
    res = cli("import", "images", src, "--skip-bad", "--out", tmp_path / "o")
    r = ShardReader(_ok(res)[0])
    assert r.num_samples == 2
    assert "skipped" in res.stderr and "broken.png" in res.stderr


def test_video_every(cli, tmp_path):
    import imageio.v3 as iio

    frames = np.stack([np.full((24, 32, 3), 10 * i, np.uint8) for i in range(7)])
    iio.imwrite(tmp_path / "clip.gif", frames, loop=0)
    r = ShardReader(_ok(cli("import", "video", tmp_path / "clip.gif", "--every", "3", "--focal", "40",
                            "--out", tmp_path / "o"))[0])
    assert r.num_samples == 3 and r.image_size == (24, 32)
    assert list(r.read("source")) == [f"{tmp_path / 'clip.gif'}#{i}" for i in (0, 3, 6)]
    np.testing.assert_allclose(r.read("images")[:, 0].mean(axis=(1, 2, 3)), [0, 30, 60], atol=2)
    _one_line_error(cli("import", "video", tmp_path / "none.mp4", "--out", tmp_path / "x"), "none.mp4")


def test_stereo_folders_calib_and_sbs(cli, tmp_path):
    for i in range(2):
        write_png(tmp_path / "L" / f"{i}.png", np.full((30, 40, 3), 10, np.uint8))
        write_png(tmp_path / "R" / f"{i}.png", np.full((30, 40, 3), 200, np.uint8))
    r = ShardReader(_ok(cli("import", "stereo", "--left", tmp_path / "L", "--right", tmp_path / "R",
                            "--baseline", "0.1", "--focal", "50", "--out", tmp_path / "o"))[0])
    assert r.num_views == 2 and r.num_samples == 2
    np.testing.assert_allclose(r.read("baseline"), 0.1, rtol=1e-6)
    np.testing.assert_allclose(r.read("T_view")[:, 1, 0, 3], -0.1, rtol=1e-6)
    assert r.read("images")[0, 0].max() == 10 and r.read("images")[0, 1].min() == 200
    cal = tmp_path / "rig.json"
    cal.write_text(json.dumps({"K_left": [[60, 0, 19.5], [0, 60, 14.5], [0, 0, 1]],
                               "K_right": [[60, 0, 21.5], [0, 60, 14.5], [0, 0, 1]], "baseline": 0.07}))
    r = ShardReader(_ok(cli("import", "stereo", "--left", tmp_path / "L", "--right", tmp_path / "R",
                            "--calib", cal, "--out", tmp_path / "c"))[0])
    np.testing.assert_allclose(r.read("K")[0, :, 0, 2], [20, 22])
    np.testing.assert_allclose(r.read("baseline"), 0.07, rtol=1e-6)
    write_png(tmp_path / "sbs.png", np.concatenate([np.full((30, 40, 3), 10, np.uint8),
                                                    np.full((30, 40, 3), 200, np.uint8)], 1))
    r = ShardReader(_ok(cli("import", "stereo", tmp_path / "sbs.png", "--baseline", "0.1", "--out", tmp_path / "s"))[0])
    assert r.image_size == (30, 40) and r.read("images")[0, 1].min() == 200
    res = cli("import", "stereo", "--left", tmp_path / "L", "--right", tmp_path / "R", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "--baseline" in res.stderr


def test_freihand_cli(cli, tmp_path):
    lab = make_freihand(tmp_path / "fh", n=3)
    r = ShardReader(_ok(cli("import", "freihand", tmp_path / "fh", "--versions", "gs,auto", "--out", tmp_path / "o"))[0])
    assert r.num_samples == 6 and r.attrs["dataset"] == "freihand" and int(r.attrs["mano_flat_hand_mean"]) == 0
    assert {"images", "K", "joints3d", "verts3d", "mano/pose", "mano/shape", "keypoints2d", "bbox", "masks",
            "source"} <= set(r.names)
    np.testing.assert_allclose(r.read("joints3d")[3:], lab["xyz"], atol=1e-7)  # auto version repeats the labels


def test_stb_cli_skip_bad_and_one_line_error(cli, tmp_path):
    truth = make_stb(tmp_path / "stb", n=3)
    (tmp_path / "stb" / "images" / "B1Counting" / "BB_right_1.png").unlink()
    _one_line_error(cli("import", "stb", tmp_path / "stb", "--out", tmp_path / "o"), "BB_right_1.png")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    res = cli("import", "stb", tmp_path / "stb", "--skip-bad", "--out", tmp_path / "o")
    r = ShardReader(_ok(res)[0])
    assert r.num_samples == 2 and "BB_right_1.png" in res.stderr and "skipped 1" in res.stderr
    np.testing.assert_allclose(r.read("joints3d")[1][:, 2], truth[2][:, 2], atol=1e-6)
    assert r.read("images").shape == (2, 2, 480, 640, 3) and list(r.read("mirrored")) == [1, 1]
    # a malformed label file: exit 1, one line naming it, nothing written
    (tmp_path / "stb" / "labels" / "B1Counting_BB.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    res = cli("import", "stb", tmp_path / "stb", "--out", tmp_path / "p")
    _one_line_error(res, "B1Counting_BB.mat")
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


def test_ho3d_cli_and_parts(cli, tmp_path):
    make_ho3d(tmp_path / "ho", n=3)
    outs = [_ok(cli("import", "ho3d", tmp_path / "ho", "--shard-size", "1", "--part", f"{i}/2",
                    "--out", tmp_path / "o")) for i in range(2)]
    assert [p.split("/")[-1] for p in outs[0]] == ["ho3d-train-00000.h5", "ho3d-train-00002.h5"]
    assert [p.split("/")[-1] for p in outs[1]] == ["ho3d-train-00001.h5"]
    r = ShardReader(outs[1][0])
    assert r.read("source")[0].endswith("0001.jpg") and "mano/pose" in r
    res = cli("import", "ho3d", tmp_path / "ho", "--out", tmp_path / "o", "--shard-size", "1")
    _one_line_error(res, "--overwrite")
    assert len(_ok(cli("import", "ho3d", tmp_path / "ho", "--out", tmp_path / "o", "--shard-size", "1",
                       "--overwrite"))) == 3


def test_pipe_images_into_info(tmp_path):
    _images(tmp_path / "src", [(48, 32)] * 3)
    p = run_shell(f"{handtools_cmd()} import images {tmp_path}/src --out {tmp_path}/d | {handtools_cmd()} info --json",
                  check=True)
    s = json.loads(p.stdout)
    assert s["total_samples"] == 3 and s["shards"][0]["image_size"] == [32, 48]
    assert "GUESS" in p.stderr  # the focal guess is announced on stderr
    p = run_shell(f"{handtools_cmd()} import stb {tmp_path}/nowhere --out {tmp_path}/e")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "nowhere" in p.stderr


@pytest.mark.skipif(not REALDATA.is_dir(), reason="needs ../shared/realdata")
def test_realdata_photos(cli, tmp_path):
    res = cli("import", "images", REALDATA, "--resize", "320x240", "--out", tmp_path / "o")
    r = ShardReader(_ok(res)[0])
    n = len([p for p in REALDATA.iterdir() if p.suffix.lower() in (".jpg", ".png")])
    assert r.num_samples == n and r.image_size == (240, 320)
    K = r.read("K")[:, 0]
    assert np.all(K[:, 0, 0] > 0) and np.allclose(K[:, :2, 2], [160, 120], atol=0.5)
    # every photo is letterboxed: its content touches both sides of one axis
    imgs = r.read("images")[:, 0].astype(int).sum(-1)
    assert all((im[:, 0].any() and im[:, -1].any()) or (im[0].any() and im[-1].any()) for im in imgs)
