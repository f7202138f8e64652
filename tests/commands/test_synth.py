"""handtools synth: ground truth consistency, reproducibility, parts, pipes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handtools.io.shards import ShardReader
from tests.conftest import handtools_cmd, run_shell

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _synth(cli, out, *extra):
    res = cli("synth", "--out", out, "--image-size", "160x120", "--batch-size", "4", *extra)
    assert res.exit_code == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


def _project(points, K, T):
    pc = points @ T[:3, :3].T + T[:3, 3]
    uv = pc[..., :2] / pc[..., 2:3] @ K[:2, :2].T + K[:2, 2]
    return uv, pc[..., 2]


@pytest.fixture(scope="module")
def stereo_shard(tmp_path_factory):
    from typer.testing import CliRunner

    from handtools.cli import app

    out = tmp_path_factory.mktemp("synth")
    res = CliRunner().invoke(
        app, ["synth", "--out", str(out), "--views", "2", "--domain", "indoor", "-n", "3",
              "--image-size", "160x120", "--focal", "205.7", "--seed", "3"],
    )
    assert res.exit_code == 0, res.stderr
    return ShardReader(res.stdout.strip())


def test_stereo_ground_truth_is_consistent(stereo_shard):
    r = stereo_shard
    assert r.num_views == 2 and r.image_size == (120, 160) and r.num_samples == 3
    K, T, j3, v3 = r.read("K"), r.read("T_view"), r.read("joints3d"), r.read("verts3d")
    kp, base, depth, masks = r.read("keypoints2d"), r.read("baseline"), r.read("depth"), r.read("masks")
    np.testing.assert_allclose(base, 0.120054, rtol=1e-6)
    np.testing.assert_allclose(T[:, 0], np.eye(4)[None].repeat(3, 0))
    np.testing.assert_allclose(T[:, 1, 0, 3], -base, rtol=1e-6)
    for i in range(3):
        for v in range(2):
            uv, _ = _project(j3[i].astype(np.float64), K[i, v], T[i, v])
            np.testing.assert_allclose(kp[i, v, :, :2], uv, atol=1e-3)  # projected joints = keypoints2d
            assert np.all(kp[i, v, :, 2] == 1.0)
        # depth from disparity of the right view's projection equals z
        ul, zl = _project(v3[i].astype(np.float64), K[i, 0], T[i, 0])
        ur, _ = _project(v3[i].astype(np.float64), K[i, 1], T[i, 1])
        f = K[i, 0, 0, 0]
        np.testing.assert_allclose(f * base[i] / (ul[:, 0] - ur[:, 0]), zl, rtol=1e-4)
        np.testing.assert_allclose(ul[:, 1], ur[:, 1], atol=1e-3)  # rectified: same rows
        # rendered depth is the nearest surface: at the pixel of a vertex, depth <= its z
        # (vertices on the silhouette may miss their pixel centre: most must hit)
        px = np.floor(ul).astype(int)
        ok = (px[:, 0] >= 0) & (px[:, 0] < 160) & (px[:, 1] >= 0) & (px[:, 1] < 120)
        d = depth[i, 0][px[ok, 1], px[ok, 0]]
        assert (d > 0).mean() > 0.8
        assert (d[d > 0] <= zl[ok][d > 0] + 0.005).mean() > 0.95
        # warping the left hand pixels through the disparity of their depth lands on the right hand
        ys, xs = np.nonzero(depth[i, 0])
        disp = f * base[i] / depth[i, 0][ys, xs]
        xr = np.floor(xs + 0.5 - disp + (K[i, 1, 0, 2] - K[i, 0, 0, 2])).astype(int)
        inside = (xr >= 0) & (xr < 160)
        assert (masks[i, 1][ys[inside], xr[inside]] > 0).mean() > 0.95
        assert np.all((depth[i] > 0) == (masks[i] > 0))


def test_masks_equal_rendered_silhouettes(stereo_shard):
    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer

    r = stereo_shard
    model = HandModel.from_path(None)
    v3 = torch.as_tensor(r.read("verts3d"))
    K, T = torch.as_tensor(r.read("K")), torch.as_tensor(r.read("T_view"))
    for v in range(2):
        vc = v3 @ T[:, v, :3, :3].transpose(1, 2) + T[:, v, None, :3, 3]
        out = Renderer("torch").render(vc, model.faces, K[:, v], (120, 160))
        want = (out.face_ids >= 0).numpy()
        agree = (r.read("masks")[:, v] > 0) == want
        assert agree.mean() > 0.999


def test_reproducible_and_parts_partition(cli, tmp_path):
    a = _synth(cli, tmp_path / "a", "-n", "5", "--shard-size", "2", "--seed", "7")
    b0 = _synth(cli, tmp_path / "b", "-n", "5", "--shard-size", "2", "--seed", "7", "--part", "0/2")
    b1 = _synth(cli, tmp_path / "b", "-n", "5", "--shard-size", "2", "--seed", "7", "--part", "1/2")
    assert [p.split("/")[-1] for p in a] == ["synth-00000.h5", "synth-00001.h5", "synth-00002.h5"]
    assert [p.split("/")[-1] for p in b0] == ["synth-00000.h5", "synth-00002.h5"]
    assert [p.split("/")[-1] for p in b1] == ["synth-00001.h5"]
    for name in ["synth-00000.h5", "synth-00001.h5", "synth-00002.h5"]:
        x, y = ShardReader(tmp_path / "a" / name), ShardReader(tmp_path / "b" / name)
        np.testing.assert_array_equal(x.read("images"), y.read("images"))
        np.testing.assert_array_equal(x.read("joints3d"), y.read("joints3d"))
    # a different seed gives different frames
    c = _synth(cli, tmp_path / "c", "-n", "1", "--seed", "8")
    assert not np.array_equal(ShardReader(c[0]).read("images")[0], ShardReader(a[0]).read("images")[0])


def test_keypoint_noise_lowers_confidence(cli, tmp_path):
    clean = ShardReader(_synth(cli, tmp_path / "c", "-n", "2", "--seed", "1")[0])
    noisy = ShardReader(_synth(cli, tmp_path / "n", "-n", "2", "--seed", "1", "--kp-noise", "4")[0])
    kc, kn = clean.read("keypoints2d"), noisy.read("keypoints2d")
    err = np.linalg.norm(kn[..., :2] - kc[..., :2], axis=-1)
    assert 1.0 < err.mean() < 15.0
    conf = kn[..., 2]
    assert np.all((conf > 0) & (conf <= 1)) and conf.mean() < 0.95
    # confidence falls with the actual error
    assert np.corrcoef(err.ravel(), conf.ravel())[0, 1] < -0.5


def test_multiview_and_studio(cli, tmp_path):
    p = _synth(cli, tmp_path / "m", "-n", "1", "--views", "4", "--domain", "studio")
    r = ShardReader(p[0])
    assert r.kind == "multiview" and r.num_views == 4
    masks = r.read("masks")
    assert all(masks[0, v].mean() > 0 for v in range(4))  # the hand is seen from every camera
    assert "baseline" not in r


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["--domain", "desert"], 2, "desert"),
        (["--image-size", "big"], 2, "WxH"),
        (["--backgrounds", "/no/such/folder"], 1, "not a folder"),
        (["--mano", "/no/such/MANO_RIGHT.pkl"], 1, "MANO_RIGHT.pkl"),
    ],
)
def test_bad_input(cli, tmp_path, args, code, text):
    res = cli("synth", "--out", tmp_path / "x", "-n", "1", *args)
    assert res.exit_code == code
    assert text in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


def test_refuses_to_overwrite(cli, tmp_path):
    _synth(cli, tmp_path / "o", "-n", "1")
    res = cli("synth", "--out", tmp_path / "o", "-n", "1", "--image-size", "160x120")
    assert res.exit_code == 1 and "--overwrite" in res.stderr
    _synth(cli, tmp_path / "o", "-n", "1", "--overwrite")


def test_backgrounds_folder(cli, tmp_path):
    import imageio.v3 as iio

    bg = tmp_path / "bg"
    bg.mkdir()
    iio.imwrite(bg / "blue.png", np.full((50, 70, 3), (0, 0, 255), np.uint8))
    r = ShardReader(_synth(cli, tmp_path / "b", "-n", "1", "--backgrounds", bg)[0])
    img, mask = r.read("images")[0, 0], r.read("masks")[0, 0]
    outside = img[mask == 0].astype(float)
    assert outside[:, 2].mean() > 200 and outside[:, 0].mean() < 30


def test_pipe_into_info(tmp_path):
    p = run_shell(
        f"{handtools_cmd()} synth --views 2 --domain indoor -n 3 --image-size 96x64 --out {tmp_path}/d"
        f" | {handtools_cmd()} info --json",
        check=True,
    )
    s = json.loads(p.stdout)
    assert s["total_samples"] == 3 and s["shards"][0]["num_views"] == 2
    assert {"images", "K", "T_view", "baseline", "masks", "depth", "joints3d", "verts3d", "mano/pose",
            "mano/shape", "keypoints2d", "bbox", "source"} <= set(s["shards"][0]["datasets"])


def test_stereo_background_is_one_scene(stereo_shard):
    """Away from the hand, the right view is the left view shifted by one background disparity.

    The forearm behind the hand is nearer than the background and has a disparity of its
    own, and it is not in ``masks``: the median difference (most pixels are background)
    measures the background's consistency.
    """
    r = stereo_shard
    img, masks = r.read("images").astype(float), r.read("masks")
    w = img.shape[3]
    for i in range(r.num_samples):
        left, right = img[i, 0], img[i, 1]
        errs = []
        for d in range(40):  # right(x) = left(x + d) where neither view sees the hand
            both = (masks[i, 0][:, d:] == 0) & (masks[i, 1][:, : w - d] == 0)
            errs.append(np.median(np.abs(left[:, d:] - right[:, : w - d])[both]))
        best = int(np.argmin(errs))
        assert errs[best] < 8.0 and errs[best] < 0.5 * np.median(errs)  # sensor noise only
