"""handtools import multiview: a calibrated rig with depth -> V-view frames, extrinsics relative
to the first camera, depth in metres; bad captures are one-line errors."""

import json

import imageio.v3 as iio
import numpy as np

from handtools.io.shards import ShardReader


def _rot(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _capture(root, cams=3, depth_png=True):
    rng = np.random.default_rng(0)
    K = [[50.0, 0, 8], [0, 50.0, 6], [0, 0, 1]]
    world = []
    for i in range(cams):
        T = np.eye(4)
        T[:3, :3] = _rot(0.3 * i)
        T[:3, 3] = [0.1 * i, 0.0, 0.02 * i]
        world.append(T)
        d = root / f"cam{i}"
        d.mkdir(parents=True)
        for f in ("000000", "000001"):
            iio.imwrite(d / f"{f}.png", rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8))
            if depth_png:
                iio.imwrite(d / f"{f}.depth.png", np.full((12, 16), 500 + i, np.uint16))
            else:
                np.save(d / f"{f}.depth.npy", np.full((12, 16), 0.5 + i, np.float32))
    (root / "cameras.json").write_text(json.dumps({
        "cameras": [{"name": f"cam{i}", "K": K, "T_world_to_cam": world[i].tolist()} for i in range(cams)],
        "depth_scale": 0.001}))
    return world


def test_import_multiview(cli, tmp_path):
    world = _capture(tmp_path / "cap")
    res = cli("-q", "import", "multiview", tmp_path / "cap", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    (path,) = res.stdout.split()
    with ShardReader(path) as r:
        assert r.num_views == 3 and r.num_samples == 2
        T = r.read("T_view")[0]
        assert np.allclose(T[0], np.eye(4), atol=1e-6)
        assert np.allclose(T[2], world[2] @ np.linalg.inv(world[0]), atol=1e-6)
        assert np.allclose(r.read("depth")[1, 2], 0.502, atol=1e-6)
        assert r.read("K").shape == (2, 3, 3, 3)


def test_import_multiview_npy_depth_and_bad_captures(cli, tmp_path):
    _capture(tmp_path / "npy", depth_png=False)
    res = cli("-q", "import", "multiview", tmp_path / "npy", "--out", tmp_path / "o1")
    assert res.exit_code == 0, res.output
    with ShardReader(res.stdout.split()[0]) as r:
        assert np.allclose(r.read("depth")[0, 1], 1.5)
    (tmp_path / "npy" / "cam2" / "000001.depth.npy").unlink()
    res = cli("-q", "import", "multiview", tmp_path / "npy", "--out", tmp_path / "o2")
    assert res.exit_code != 0 and len(res.output.strip().splitlines()) == 1 and "no depth" in res.output
    res = cli("-q", "import", "multiview", tmp_path / "npy", "--out", tmp_path / "o3", "--no-depth")
    assert res.exit_code == 0, res.output
    _capture(tmp_path / "one", cams=1)
    res = cli("-q", "import", "multiview", tmp_path / "one", "--out", tmp_path / "o4")
    assert res.exit_code != 0 and "at least 2 cameras" in res.output and len(res.output.strip().splitlines()) == 1
