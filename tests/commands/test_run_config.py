"""Every checkpoint and shard records its full resolved configuration; `info --config` prints it
as a TOML file that `--config` takes back and that repeats the run."""

from __future__ import annotations

import os
import tomllib

import numpy as np
import pytest

from handtools.core.learning.checkpoints import load_checkpoint
from handtools.io.shards import ShardReader
from handtools.runconfig import resolved, to_toml


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    from typer.testing import CliRunner

    from handtools.cli import app

    root = tmp_path_factory.mktemp("rc")
    r = CliRunner()
    res = r.invoke(app, ["synth", "-n", "8", "--image-size", "160x120", "--seed", "4", "--out", str(root / "fs")])
    assert res.exit_code == 0, res.stderr
    # the frames through a pipe: crop's inputs come from stdin
    res = r.invoke(app, ["crop", "--size", "64", "--center", "gt", "--scale", "1.5", "--out", str(root / "cs")],
                   input=res.stdout)
    assert res.exit_code == 0, res.stderr
    return root, res.stdout.split()


def _weights(path):
    return load_checkpoint(path)["model"]


def test_info_config_of_a_checkpoint_repeats_the_run(cli, crops, tmp_path):
    _, shards = crops
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    # non-default options; inputs through stdin
    res = cli("pretrain", "--encoder", "resnet18", "--no-z", "--batch-size", "4", "--lr", "3e-3", "--milestones", "1",
              "--gamma", "0.5", "--epochs", "2", "--seed", "7", "--max-steps", "3", "--out", a, input="\n".join(shards))
    assert res.exit_code == 0, res.stderr
    res = cli("info", "--config", a)
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    cfg = tomllib.loads(text)["pretrain"]
    assert cfg["lr"] == 3e-3 and cfg["seed"] == 7 and cfg["with_z"] is False and cfg["milestones"] == "1"
    assert cfg["max_steps"] == 3 and cfg["gamma"] == 0.5 and cfg["encoder"] == "resnet18"
    assert cfg["inputs"] == [os.path.abspath(s) for s in shards]  # what the pipe gave, recorded
    assert "overwrite" not in cfg and "resume" not in cfg  # what to do with old outputs is not the run's
    (tmp_path / "run.toml").write_text(text)
    # the config file alone (no stdin, no options but another --out) repeats it bit for bit
    res = cli("--config", tmp_path / "run.toml", "pretrain", "--out", b)
    assert res.exit_code == 0, res.stderr
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
    # the command line wins over the file, and a changed option shows in the printed config
    c = tmp_path / "c.pt"
    res = cli("--config", tmp_path / "run.toml", "pretrain", "--lr", "2e-3", "--max-steps", "1", "--out", c)
    assert res.exit_code == 0, res.stderr
    cfg_c = tomllib.loads(cli("info", "--config", c).stdout)["pretrain"]
    assert cfg_c["lr"] == 2e-3 and cfg_c["max_steps"] == 1 and cfg_c["seed"] == 7
    assert {k: v for k, v in cfg_c.items() if k not in ("lr", "max_steps", "out")} == \
        {k: v for k, v in cfg.items() if k not in ("lr", "max_steps", "out")}


def test_info_config_of_a_shard_repeats_each_step(cli, crops, tmp_path):
    root, shards = crops
    res = cli("info", "--config", shards[0])
    assert res.exit_code == 0, res.stderr
    doc = tomllib.loads(res.stdout)
    assert doc["synth"]["num"] == 8 and doc["synth"]["seed"] == 4 and doc["synth"]["image_size"] == "160x120"
    assert doc["crop"]["scale"] == 1.5 and doc["crop"]["size"] == 64 and "inputs" not in doc["crop"]
    (tmp_path / "run.toml").write_text(res.stdout)
    # both steps again from the file, into other folders: the same crops
    res = cli("--config", tmp_path / "run.toml", "synth", "--out", tmp_path / "fs")
    assert res.exit_code == 0, res.stderr
    res = cli("--config", tmp_path / "run.toml", "crop", "--out", tmp_path / "cs", input=res.stdout)
    assert res.exit_code == 0, res.stderr
    with ShardReader(res.stdout.strip()) as new, ShardReader(shards[0]) as old:
        assert np.array_equal(new.read("images"), old.read("images"))
        assert np.array_equal(new.read("K"), old.read("K"))


def test_info_config_refuses_what_has_no_configuration(cli, tmp_path):
    from tests.conftest import random_batch, write_shard

    p = write_shard(tmp_path / "old.h5", random_batch(2, v=1), num_views=1)
    res = cli("info", "--config", p)
    assert res.exit_code == 1 and "no recorded configuration" in res.stderr


def test_toml_round_trip():
    cfg = resolved(("import", "images"), {
        "inputs": ["a b/c.jpg"], "focal": 1.5e-3, "n": 3, "flag": False, "name": 'quo"te\\', "none": None,
        "overwrite": True, "inf": float("inf"), "nested": [[1, 2], ["x"]],
    })
    doc = tomllib.loads(to_toml([cfg], header=["a comment"]))
    got = doc["import"]["images"]
    assert got["focal"] == 1.5e-3 and got["n"] == 3 and got["flag"] is False and got["name"] == 'quo"te\\'
    assert got["inf"] == float("inf") and got["nested"] == [[1, 2], ["x"]]
    assert "none" not in got and "overwrite" not in got
    assert got["inputs"][0].endswith("/a b/c.jpg")
