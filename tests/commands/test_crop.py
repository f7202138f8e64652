"""handtools crop: exact stereo geometry, carried data, re-crops, parts, pipes, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.core.geometry import crop as C
from handtools.core.geometry.cameras import triangulate_rectified
from handtools.io.shards import ShardReader
from tests.conftest import handtools_cmd, random_batch, run_shell, write_shard

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    """A labelled rectified stereo shard from synth (exact keypoints, masks, depth)."""
    from typer.testing import CliRunner

    from handtools.cli import app

    out = tmp_path_factory.mktemp("synth")
    res = CliRunner().invoke(app, ["synth", "--out", str(out), "--views", "2", "--domain", "indoor", "-n", "3",
                                   "--image-size", "200x150", "--seed", "5"])
    assert res.exit_code == 0, res.stderr
    return res.stdout.strip()


def _crop(cli, src, out, *extra):
    res = cli("crop", src, "--out", out, *extra)
    assert res.exit_code == 0, res.stderr
    return ShardReader(res.stdout.strip())


@pytest.mark.parametrize("center", ["bbox", "root", "gt"])
def test_stereo_crops_triangulate_to_joints3d(cli, stereo, tmp_path, center):
    src = ShardReader(stereo)
    r = _crop(cli, stereo, tmp_path, "--center", center, "--size", "96")
    assert r.kind == "crops" and r.image_size == (96, 96) and r.num_samples == 3
    kp, K, box, xoff = r.read("keypoints2d"), r.read("K"), r.read("crop/box"), r.read("crop/x_offset")
    # a rectified pair again: same side, same rows, same fy and cy
    np.testing.assert_allclose(box[:, 0, [1, 3]], box[:, 1, [1, 3]], atol=1e-4)
    np.testing.assert_allclose(box[:, 0, 2] - box[:, 0, 0], box[:, 1, 2] - box[:, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(K[:, 0, 1], K[:, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(xoff, box[:, 1, 0] - box[:, 0, 0], atol=1e-4)
    np.testing.assert_allclose(kp[:, 0, :, 1], kp[:, 1, :, 1], atol=2e-3)     # epipolar lines are rows
    # triangulating the cropped keypoints with the cropped K gives the ground-truth joints
    xyz = triangulate_rectified(kp[:, 0, :, :2].astype(np.float64), kp[:, 1, :, :2].astype(np.float64),
                                K[:, 0].astype(np.float64), K[:, 1].astype(np.float64),
                                r.read("baseline").astype(np.float64))
    np.testing.assert_allclose(xyz, r.read("joints3d"), rtol=1e-4, atol=1e-5)
    # disparity bookkeeping: original disparity = crop disparity / s - x_offset
    s = 96 / (box[:, 0, 2] - box[:, 0, 0])
    d_orig = src.read("keypoints2d")[:, 0, :, 0] - src.read("keypoints2d")[:, 1, :, 0]
    np.testing.assert_allclose((kp[:, 0, :, 0] - kp[:, 1, :, 0]) / s[:, None] - xoff[:, None], d_orig, atol=2e-3)
    # 3D ground truth and the rig are carried unchanged
    for name in ("joints3d", "verts3d", "T_view", "baseline", "mano/pose", "source"):
        assert np.array_equal(r.read(name), src.read(name)), name


def assert_resampled_equal(got, want):
    """Two resamplings of one image agree up to rounding: OpenCV builds differ by a grey level
    (or one nearest-neighbour pixel) at a few pixels, so allow that and nothing more."""
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    if want.ndim == 3:      # images: every pixel within one grey level (+1 of slack), few pixels off at all
        assert diff.max() <= 2, f"max difference {diff.max()} grey levels"
        assert (diff > 0).mean() <= 0.01, f"{(diff > 0).mean():.2%} of pixels differ"
    else:                   # masks (nearest): at most 1% of pixels flip
        assert (diff > 0).mean() <= 0.01, f"{(diff > 0).mean():.2%} of mask pixels differ"


def test_resampled_comparison_passes_one_level_and_fails_a_wrong_crop(stereo):
    """The tolerance above passes a one-level difference and fails a crop one pixel off."""
    img = ShardReader(stereo).read("images")[0, 0]
    box = np.array([100.0, 60.0, 196.0, 156.0])
    good = C.crop_image(img, box, 64)
    off_by_one = good.copy()
    off_by_one[10, 10, 0] = off_by_one[10, 10, 0] + (1 if off_by_one[10, 10, 0] < 255 else -1)
    assert_resampled_equal(off_by_one, good)
    shifted = C.crop_image(img, box + np.array([3.0, 0.0, 3.0, 0.0]), 64)
    with pytest.raises(AssertionError):
        assert_resampled_equal(shifted, good)


def test_crops_carry_images_masks_depth_and_K(cli, stereo, tmp_path):
    src = ShardReader(stereo)
    r = _crop(cli, stereo, tmp_path, "--size", "64", "--scale", "1.6")
    box, K = r.read("crop/box").astype(np.float64), r.read("K")
    img0, m0, d0 = src.read("images"), src.read("masks"), src.read("depth")
    for i in range(3):
        for v in range(2):
            assert_resampled_equal(r.read("images")[i, v], C.crop_image(img0[i, v], box[i, v], 64))
            assert_resampled_equal(r.read("masks")[i, v], C.crop_image(m0[i, v], box[i, v], 64, "nearest"))
            dv = r.read("depth")[i, v]
            assert set(np.unique(dv)) <= set(np.unique(d0[i, v])) | {0.0}            # nearest: no new depths
            assert ((dv > 0) == (r.read("masks")[i, v] > 0)).all()
            np.testing.assert_allclose(K[i, v], C.crop_K(src.read("K")[i, v], box[i, v], 64), rtol=1e-5)
            kb = r.read("bbox")[i, v]
            np.testing.assert_allclose(kb, C.crop_points(src.read("bbox")[i, v].reshape(2, 2), box[i, v], 64).ravel(),
                                       atol=1e-3)
    # the hand is inside and centred: keypoints within the crop
    kp = r.read("keypoints2d")
    assert (kp[..., :2] > 0).all() and (kp[..., :2] < 64).all()
    assert r.read("crop/box").dtype == np.float32 and r.read("crop/x_offset").shape == (3,)


def test_recrop_records_box_in_the_original_frame(cli, stereo, tmp_path):
    src = ShardReader(stereo)
    first = _crop(cli, stereo, tmp_path / "a", "--size", "128")
    second = _crop(cli, first.path, tmp_path / "b", "--size", "48", "--center", "root")
    box = second.read("crop/box").astype(np.float64)
    for i in range(3):
        for v in range(2):   # K of the crop of a crop = K of one crop of the original by the composed box
            np.testing.assert_allclose(second.read("K")[i, v], C.crop_K(src.read("K")[i, v], box[i, v], 48),
                                       rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(second.read("crop/x_offset"), box[:, 1, 0] - box[:, 0, 0], atol=1e-3)
    assert [h["command"] for h in second.history][-2:] == ["handtools crop", "handtools crop"]


def test_views_without_a_hand_get_the_whole_frame(cli, tmp_path):
    batch = random_batch(2, v=1, hw=(30, 40), names=["images", "K", "keypoints2d", "bbox", "source"])
    batch["keypoints2d"][..., 2] = 0.0
    batch["keypoints2d"][0, 0] = 0.0                         # a miss written by detect --on-miss keep
    batch["bbox"][0, 0] = 0.0
    batch["bbox"][1, 0] = [5, 5, 15, 25]                     # a real box: side 20 x 1.4 = 28 (min 32)
    src = write_shard(tmp_path / "in" / "s.h5", batch, num_views=1)
    r = _crop(cli, src, tmp_path / "out", "--size", "32")
    np.testing.assert_allclose(r.read("crop/box")[0, 0], [0, -5, 40, 35])   # full frame, letterboxed
    np.testing.assert_allclose(r.read("crop/box")[1, 0], [-6, -1, 26, 31])
    assert (r.read("keypoints2d")[0] == 0).all() and (r.read("bbox")[0] == 0).all()
    assert "crop/x_offset" not in r


def test_part_and_overwrite(cli, tmp_path):
    a = write_shard(tmp_path / "in" / "a.h5", random_batch(2, v=1, hw=(20, 20), names=["images", "K", "bbox"]),
                    num_views=1)
    b = write_shard(tmp_path / "in" / "b.h5", random_batch(2, v=1, hw=(20, 20), names=["images", "K", "bbox"]),
                    num_views=1)
    res = cli("crop", a, b, "--part", "1/2", "--size", "16", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path / "out" / "b.h5")]
    res = cli("crop", a, b, "--part", "1/2", "--size", "16", "--out", tmp_path / "out")
    assert res.exit_code == 1 and "exists" in res.stderr and "--overwrite" in res.stderr
    res = cli("crop", a, b, "--part", "1/2", "--size", "16", "--out", tmp_path / "out", "--overwrite")
    assert res.exit_code == 0, res.stderr


def test_bad_inputs_fail_in_one_line_and_write_nothing(cli, tmp_path):
    batch = random_batch(2, v=2, hw=(20, 20), names=["images", "K", "keypoints2d", "bbox"])
    src = write_shard(tmp_path / "in" / "s.h5", batch)
    out = tmp_path / "out"
    res = cli("crop", src, "--center", "gt", "--out", out)
    assert res.exit_code == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert str(src) in res.stderr and "joints3d" in res.stderr
    assert not out.exists()
    res = cli("crop", src, "--center", "middle", "--out", out)
    assert res.exit_code == 2
    res = cli("crop", src, "--out", tmp_path / "in")                     # would replace its input
    assert res.exit_code == 1 and "replace an input" in res.stderr
    no_kp = write_shard(tmp_path / "in2" / "s.h5", random_batch(1, v=1, hw=(20, 20), names=["images", "K"]),
                        num_views=1)
    res = cli("crop", no_kp, "--out", out)
    assert res.exit_code == 1 and "bbox" in res.stderr and "detect" in res.stderr
    assert not out.exists()


def test_shell_pipeline_synth_crop_mask_info(tmp_path):
    h = handtools_cmd()
    p = run_shell(f"{h} synth --views 2 -n 2 --image-size 160x120 --out {tmp_path}/f"
                  f" | {h} crop --size 64 --out {tmp_path}/c | {h} mask --method skin --out {tmp_path}/m"
                  f" | {h} info --json")
    assert p.returncode == 0, p.stderr
    import json

    info = json.loads(p.stdout)
    (shard,) = info["shards"]
    assert shard["kind"] == "crops" and shard["image_size"] == [64, 64] and shard["num_views"] == 2
    assert [s["command"] for s in shard["history"]] == ["handtools synth", "handtools crop", "handtools mask"]
    assert {"crop/box", "crop/x_offset", "masks", "joints3d"} <= set(shard["datasets"])
