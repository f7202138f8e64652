"""handtools detect: real photographs, policies, misses, stereo pairing, copy-through, bad input."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from handtools.io.shards import ShardReader
from tests.conftest import REALDATA, flat, handtools_cmd, random_batch, run_shell, write_shard

needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="mediapipe not installed (handtools[detect])")
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is absent")

#: Hands the realdata README says a good detector finds (the hard cases test2/test4 excluded).
EXPECTED_HANDS = {
    "google_sample_woman_hands": 2, "hamer_test1": 2, "hamer_test5": 2,
    "pointing_up": 1, "thumbs_up": 1, "thumbs_down": 1, "victory": 1,
}


def _frames(folder, name, views=1):
    """A frames shard holding one realdata photograph in every view."""
    from handtools.io.images import read_image

    img = read_image(REALDATA / f"{name}.jpg")
    h, w = img.shape[:2]
    K = np.array([[1.2 * w, 0, w / 2], [0, 1.2 * w, h / 2], [0, 0, 1]], np.float32)
    batch = {"images": np.repeat(img[None, None], views, 1), "K": np.repeat(K[None, None], views, 1),
             "source": np.array([name], object)}
    if views == 2:
        batch["baseline"] = np.array([0.12], np.float32)
    return write_shard(folder / f"{name}.h5", batch, num_views=views)


@pytest.fixture(scope="module")
def real_frames(tmp_path_factory):
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is absent")
    folder = tmp_path_factory.mktemp("frames")
    return {p.stem: _frames(folder, p.stem) for p in sorted(REALDATA.glob("*.jpg"))}


@needs_mediapipe
@needs_realdata
def test_finds_the_listed_hands_on_real_photographs(cli, real_frames, tmp_path):
    res = cli("detect", *real_frames.values(), "--out", tmp_path)
    assert res.exit_code == 0, res.stderr
    written = {p.rsplit("/", 1)[1][:-3] for p in res.stdout.split()}
    assert set(EXPECTED_HANDS) <= written
    for name, n_hands in EXPECTED_HANDS.items():
        r = ShardReader(tmp_path / f"{name}.h5")
        src = ShardReader(real_frames[name])
        h, w = r.image_size
        assert r.read("hand/count")[0, 0] == n_hands, name
        kp, bbox, score = r.read("keypoints2d")[0, 0], r.read("bbox")[0, 0], r.read("hand/score")[0, 0]
        assert kp.shape == (21, 3) and (kp[:, 2] >= 0).all() and (kp[:, 2] <= 1).all()
        np.testing.assert_allclose(score, kp[:, 2].mean(), rtol=1e-5)
        assert score > 0.4, name
        x0, y0, x1, y1 = bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        inside = (kp[:, 0] >= x0) & (kp[:, 0] <= x1) & (kp[:, 1] >= y0) & (kp[:, 1] <= y1)
        assert inside.all(), name
        for ds in ("images", "K", "source"):                             # carried through
            assert np.array_equal(r.read(ds), src.read(ds))
        assert r.history[-1]["command"] == "handtools detect" and "mediapipe" in r.attrs["detector"]
    # pointing_up: a raised left hand, flagged
    assert ShardReader(tmp_path / "pointing_up.h5").read("hand/is_left")[0, 0] == 1
    assert "dropped" in res.stderr


@needs_mediapipe
@needs_realdata
@pytest.mark.parametrize("name", ["google_sample_woman_hands", "hamer_test5"])
def test_keep_policy_picks_the_side_among_two_hands(cli, real_frames, tmp_path, name):
    sides = {}
    for keep in ("left", "right"):
        res = cli("detect", real_frames[name], "--keep", keep, "--out", tmp_path / keep)
        assert res.exit_code == 0, res.stderr
        r = ShardReader(res.stdout.strip())
        sides[keep] = (r.read("hand/is_left")[0, 0], r.read("keypoints2d")[0, 0])
    assert sides["left"][0] == 1 and sides["right"][0] == 0
    assert np.abs(sides["left"][1][:, :2] - sides["right"][1][:, :2]).mean() > 20   # two different hands


@needs_mediapipe
@needs_realdata
def test_stereo_views_keep_the_same_hand(cli, tmp_path):
    src = _frames(tmp_path / "in", "google_sample_woman_hands", views=2)
    res = cli("detect", src, "--keep", "score", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    r = ShardReader(res.stdout.strip())
    left, kp = r.read("hand/is_left")[0], r.read("keypoints2d")[0]
    assert left[0] == left[1]
    np.testing.assert_allclose(kp[0, :, :2], kp[1, :, :2], atol=1.0)


@needs_mediapipe
def test_misses_are_dropped_or_kept_with_zero_confidence(cli, tmp_path):
    batch = random_batch(3, v=2, hw=(64, 80), names=["images", "K", "keypoints2d", "source"])
    batch["images"][:] = 0                                               # nothing to find
    src = write_shard(tmp_path / "in" / "blank.h5", batch)
    res = cli("detect", src, "--out", tmp_path / "drop")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "" and not (tmp_path / "drop" / "blank.h5").exists()
    assert "3 dropped" in flat(res.stderr)
    res = cli("detect", src, "--on-miss", "keep", "--no-flip-check", "--out", tmp_path / "keep")
    assert res.exit_code == 0, res.stderr
    r = ShardReader(res.stdout.strip())
    assert r.num_samples == 3 and (r.read("keypoints2d") == 0).all() and (r.read("bbox") == 0).all()
    assert (r.read("hand/count") == 0).all() and r.read("hand/is_left").dtype == np.uint8
    assert r.read("hand/score").shape == (3, 2) and r.read("hand/score").dtype == np.float32
    assert np.array_equal(r.read("source"), batch["source"]) and np.array_equal(r.read("K"), batch["K"])


def test_missing_mediapipe_is_one_line_telling_how_to_install(cli, tmp_path, monkeypatch):
    src = write_shard(tmp_path / "in" / "s.h5", random_batch(1, v=1, hw=(16, 16), names=["images"]),
                      num_views=1)
    monkeypatch.setitem(sys.modules, "mediapipe", None)                  # `import mediapipe` fails
    res = cli("detect", src, "--out", tmp_path / "out")
    assert res.exit_code == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert "pip install" in res.stderr and "handtools[detect]" in res.stderr
    assert not (tmp_path / "out").exists()


def test_bad_inputs(cli, tmp_path):
    no_images = write_shard(tmp_path / "in" / "s.h5", random_batch(1, v=1, names=["K"]), num_views=1)
    res = cli("detect", no_images, "--out", tmp_path / "out")
    assert res.exit_code == 1 and "images" in res.stderr and str(no_images) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert cli("detect", no_images, "--keep", "biggest", "--out", tmp_path / "out").exit_code == 2
    assert cli("detect", no_images, "--on-miss", "skip", "--out", tmp_path / "out").exit_code == 2
    assert cli("detect", no_images, "--max-hands", "0", "--out", tmp_path / "out").exit_code == 2
    assert not (tmp_path / "out").exists()


@needs_mediapipe
@needs_realdata
def test_shell_pipeline_detect_crop_mask_info(real_frames, tmp_path):
    h = handtools_cmd()
    paths = " ".join(str(real_frames[n]) for n in ("victory", "hamer_test2", "pointing_up"))
    p = run_shell(f"printf '%s\\n' {paths} | {h} detect --out {tmp_path}/d | {h} crop --out {tmp_path}/c"
                  f" | {h} mask --out {tmp_path}/m | {h} info --json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["num_shards"] == 2                                       # trumpet (hamer_test2): no hand
    for s in info["shards"]:
        assert s["kind"] == "crops" and s["image_size"] == [256, 256]
        assert [x["command"] for x in s["history"]][-3:] == ["handtools detect", "handtools crop", "handtools mask"]
    assert "Traceback" not in p.stderr and "XNNPACK" not in p.stderr
