"""The issues' literal shell pipelines, default output folders included."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REALDATA, handtools_cmd, run_shell


@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata absent")
@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe not installed")
def test_import_detect_crop_mask_info_on_real_photographs(tmp_path):
    h = handtools_cmd()
    p = run_shell(
        f"{h} import images {REALDATA} | {h} detect | {h} crop | {h} mask | {h} info --json", cwd=tmp_path, check=True
    )
    s = json.loads(p.stdout)
    assert s["total_samples"] >= 7  # the README's 7 listed photographs have hands
    assert all(x["kind"] == "crops" and x["image_size"] == [256, 256] for x in s["shards"])
    assert {"masks", "keypoints2d", "hand/is_left", "crop/box"} <= set(s["shards"][0]["datasets"])
    for step in ("import", "detect", "crop", "mask"):  # default output folders, one per command
        assert list((tmp_path / step).glob("*.h5"))
    # a second run refuses to overwrite
    p = run_shell(f"{h} import images {REALDATA}", cwd=tmp_path)
    assert p.returncode == 1 and "--overwrite" in p.stderr


def test_synth_info_default_out(tmp_path):
    h = handtools_cmd()
    p = run_shell(f"{h} synth --views 2 --domain indoor -n 2 --image-size 96x64 | {h} info", cwd=tmp_path, check=True)
    assert "total: 2 samples in 1 shard(s)" in p.stdout
    assert (tmp_path / "synth" / "synth-00000.h5").exists()
