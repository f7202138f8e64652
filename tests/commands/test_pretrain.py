"""pretrain and predict: learning, checkpoints, resume, clear errors, predictions shards."""

from __future__ import annotations

import json
import math
import shlex

import numpy as np
import pytest

from handtools.core.learning.checkpoints import load_checkpoint
from handtools.io.training_data import CropViewDataset
from handtools.io.shards import ShardReader
from tests.conftest import flat, handtools_cmd, random_batch, run_shell, write_shard


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from typer.testing import CliRunner

    from handtools.cli import app

    root = tmp_path_factory.mktemp("pt")
    r = CliRunner()
    for name, n, seed in (("train", 16, 1), ("test", 4, 2)):
        res = r.invoke(app, ["synth", "--domain", "studio", "-n", str(n), "--image-size", "160x120",
                             "--seed", str(seed), "--out", str(root / "frames" / name)])
        assert res.exit_code == 0, res.stderr
        res = r.invoke(app, ["crop", "--size", "64", "--center", "gt", "--out", str(root / name), res.stdout.strip()])
        assert res.exit_code == 0, res.stderr
    return root


ARGS = ["--encoder", "resnet18", "--batch-size", "4", "--lr", "1e-3", "--milestones", ""]


def test_pretrain_learns_and_predict_writes_predictions(cli, data, tmp_path):
    ck = tmp_path / "prior.pt"
    res = cli("pretrain", *ARGS, "--epochs", "4", "--out", ck, data / "train")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(ck)
    log = [json.loads(x) for x in ck.with_suffix(".log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and log[-1]["loss"] < log[0]["loss"]
    meta = load_checkpoint(ck)["meta"]
    assert meta["kind"] == "prior" and meta["net"]["encoder"] == "resnet18"

    res = cli("predict", "-c", ck, "--out", tmp_path / "pred", data / "test")
    assert res.exit_code == 0, res.stderr
    r = ShardReader(res.stdout.strip())
    assert r.kind == "predictions" and r.num_samples == 4
    pv, pj, gj = r.read("pred/verts3d"), r.read("pred/joints3d"), r.read("joints3d")
    assert pv.shape == (4, 778, 3) and np.isfinite(pv).all()
    # root-relative evaluation: the predicted wrist sits at the ground-truth wrist depth
    np.testing.assert_allclose(pj[:, 0, 2], gj[:, 0, 2], atol=0.02)
    # inputs and ground truth are carried through unchanged
    np.testing.assert_array_equal(r.read("verts3d"), ShardReader(data / "test" / "synth-00000.h5").read("verts3d"))
    assert r.kind == "predictions" and "crop/box" in r


def test_resume_and_overwrite_rules(cli, data, tmp_path):
    ck = tmp_path / "p.pt"
    assert cli("pretrain", *ARGS, "--epochs", "2", "--max-steps", "3", "--out", ck, data / "train").exit_code == 0
    assert load_checkpoint(ck)["global_step"] == 3
    res = cli("pretrain", *ARGS, "--epochs", "2", "--out", ck, data / "train")
    assert res.exit_code == 1 and "--resume" in res.stderr
    res = cli("pretrain", *ARGS, "--epochs", "2", "--resume", "--out", ck, data / "train")
    assert res.exit_code == 0, res.stderr
    ckpt = load_checkpoint(ck)
    n = len(CropViewDataset([data / "train" / "synth-00000.h5"], ground_truth=False))
    assert ckpt["finished"] and ckpt["global_step"] == 2 * math.ceil(n / 4)  # 2 epochs of batch 4
    res = cli("pretrain", *ARGS, "--epochs", "1", "--resume", "--out", tmp_path / "none.pt", data / "train")
    assert res.exit_code == 1 and "no checkpoint" in res.stderr


def test_pretrain_needs_ground_truth_meshes(cli, tmp_path):
    p = write_shard(tmp_path / "nogt.h5", random_batch(2, v=1, hw=(64, 64), names=["images", "K", "joints3d"]), num_views=1)
    res = cli("pretrain", *ARGS, "--out", tmp_path / "x.pt", p)
    assert res.exit_code == 1
    assert "verts3d" in res.stderr and str(p) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_predict_rejects_wrong_crop_shape(cli, data, tmp_path):
    """Square crops of another size are resampled for the model (tests/commands/test_predict.py);
    another aspect ratio is a one-line error."""
    ck = tmp_path / "p.pt"
    assert cli("pretrain", *ARGS, "--epochs", "1", "--max-steps", "1", "--out", ck, data / "train").exit_code == 0
    p = write_shard(tmp_path / "big.h5", random_batch(2, v=1, hw=(64, 96), names=["images", "K", "joints3d"]), num_views=1)
    res = cli("predict", "-c", ck, "--out", tmp_path / "o", p)
    assert res.exit_code == 1 and "crops are 96x64" in res.stderr and "Traceback" not in res.stderr
    p = write_shard(tmp_path / "sq.h5", random_batch(2, v=1, hw=(96, 96), names=["images", "K", "joints3d"]), num_views=1)
    res = cli("predict", "-c", ck, "--out", tmp_path / "o", p)
    assert res.exit_code == 0 and "resized for the model" in flat(res.stderr)
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    res = cli("predict", "-c", bad, "--out", tmp_path / "o", data / "test")
    assert res.exit_code == 1 and "checkpoint" in res.stderr


def test_pretrain_predict_pipe(data, tmp_path):
    h = handtools_cmd()
    p = run_shell(
        f"ls {data}/train/*.h5 | {h} pretrain {shlex.join(ARGS)} --epochs 1 --out {tmp_path}/p.pt"
        f" && {h} predict -c {tmp_path}/p.pt --out {tmp_path}/pred {data}/test | {h} info --json",
        check=True,
    )
    ckpt_line, info_line = p.stdout.strip().splitlines()
    assert ckpt_line == f"{tmp_path}/p.pt"
    assert json.loads(info_line)["shards"][0]["kind"] == "predictions"


def test_predict_checks_every_output_before_work(cli, data, tmp_path):
    ck = tmp_path / "p.pt"
    assert cli("pretrain", *ARGS, "--epochs", "1", "--max-steps", "1", "--out", ck, data / "train").exit_code == 0
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "synth-00000.h5").write_text("an earlier output")
    res = cli("predict", "-c", ck, "--out", tmp_path / "o", data / "test")
    assert res.exit_code == 1 and "--overwrite" in res.stderr and res.stdout == ""
    assert (tmp_path / "o" / "synth-00000.h5").read_text() == "an earlier output"
    res = cli("predict", "-c", ck, "--out", data / "test", data / "test")
    assert res.exit_code == 1 and "replace an input" in res.stderr
