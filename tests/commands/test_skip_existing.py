"""--skip-existing (synth, crop): a killed job or array task is finished without
--overwrite; kept outputs are checked to be complete shards made with the same settings."""

from __future__ import annotations

import os

import pytest

from handtools.io.shards import ShardReader
from tests.conftest import flat

SYNTH = ["synth", "-n", "6", "--shard-size", "2", "--image-size", "32x32", "--device", "cpu", "--renderer", "torch"]


def _names(out):
    return sorted(p.name for p in out.iterdir())


def test_synth_part_rerun_finishes_the_missing_shards(cli, tmp_path):
    out = tmp_path / "out"
    res = cli(*SYNTH, "--part", "0/1", "--out", out)
    assert res.exit_code == 0, res.stderr
    (out / "synth-00001.h5").unlink()  # as if the task was killed before this shard
    kept = {n: os.stat(out / n).st_ino for n in _names(out)}
    res = cli(*SYNTH, "--part", "0/1", "--out", out)  # unchanged rule: existing outputs need a flag
    assert res.exit_code == 1 and "synth-00000.h5: exists (use --overwrite to replace)" in res.stderr
    res = cli(*SYNTH, "--part", "0/1", "--out", out, "--skip-existing")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(out / f"synth-0000{k}.h5") for k in range(3)]  # kept ones printed too
    assert _names(out) == ["synth-00000.h5", "synth-00001.h5", "synth-00002.h5"]
    assert {n: os.stat(out / n).st_ino for n in kept} == kept  # kept files untouched


def test_synth_skip_existing_refuses_a_shard_made_with_other_settings(cli, tmp_path):
    out = tmp_path / "out"
    assert cli(*SYNTH, "--seed", "1", "--out", out).exit_code == 0
    (out / "synth-00002.h5").unlink()
    res = cli(*SYNTH, "--seed", "2", "--out", out, "--skip-existing")
    assert res.exit_code == 1, res.stderr
    assert "synth-00000.h5: exists but was made with other settings (handtools synth seed=1, this run seed=2)" \
        in flat(res.stderr)
    assert _names(out) == ["synth-00000.h5", "synth-00001.h5"]  # nothing written


def test_skip_existing_refuses_an_unreadable_output(cli, tmp_path):
    out = tmp_path / "out"
    assert cli(*SYNTH, "--out", out).exit_code == 0
    data = (out / "synth-00001.h5").read_bytes()
    (out / "synth-00001.h5").write_bytes(data[: len(data) // 2])
    res = cli(*SYNTH, "--out", out, "--skip-existing")
    assert res.exit_code == 1 and "synth-00001.h5: truncated HDF5 file" in res.stderr, res.stderr


def test_skip_existing_and_overwrite_exclude_each_other(cli, tmp_path):
    res = cli(*SYNTH, "--out", tmp_path, "--skip-existing", "--overwrite")
    assert res.exit_code == 2 and "not both" in res.stderr
    res = cli("crop", "--out", tmp_path, "--skip-existing", "--overwrite", tmp_path / "x.h5")
    assert res.exit_code == 2


@pytest.fixture
def frames(cli, tmp_path):
    res = cli(*SYNTH, "--views", "2", "--seed", "3", "--out", tmp_path / "frames")
    assert res.exit_code == 0, res.stderr
    return sorted((tmp_path / "frames").glob("*.h5"))


def test_crop_skip_existing(cli, tmp_path, frames):
    out = tmp_path / "crops"
    args = ["crop", "--center", "gt", "--size", "16", "--out", out]
    assert cli(*args, *frames).exit_code == 0
    (out / frames[1].name).unlink()
    res = cli(*args, *frames)
    assert res.exit_code == 1 and "exists (use --overwrite to replace)" in res.stderr
    res = cli(*args, "--skip-existing", *frames)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(out / f.name) for f in frames]
    with ShardReader(out / frames[1].name) as r:
        assert r.history[-1]["command"] == "handtools crop"
    # other crop settings: refused, naming the difference
    res = cli("crop", "--center", "gt", "--size", "24", "--out", out, "--skip-existing", *frames)
    assert res.exit_code == 1 and "(handtools crop size=16, this run size=24)" in flat(res.stderr)


def test_crop_skip_existing_refuses_outputs_of_regenerated_inputs(cli, tmp_path, frames):
    out = tmp_path / "crops"
    args = ["crop", "--center", "gt", "--size", "16", "--out", out]
    assert cli(*args, *frames).exit_code == 0
    assert cli(*SYNTH, "--views", "2", "--seed", "4", "--out", tmp_path / "frames", "--overwrite").exit_code == 0
    res = cli(*args, "--skip-existing", *frames)
    assert res.exit_code == 1 and "(handtools synth seed=3, this run seed=4)" in flat(res.stderr)
