"""pretrain / selfsup-stereo hardening (issue 12): --overwrite destroys nothing before the
new run's first checkpoint, a last batch of one image trains, --resume continues the same
run or refuses naming what differs, a full disk and damaged files are one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from handtools import durable
from handtools.core.learning.checkpoints import load_checkpoint
from tests.conftest import random_batch, write_shard

ARGS = ["--encoder", "resnet18", "--lr", "1e-3", "--milestones", "", "--device", "cpu", "--no-amp"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two crops shards of 4 images (64 px): a/ and b/."""
    from typer.testing import CliRunner

    from handtools.cli import app

    root = tmp_path_factory.mktemp("th")
    r = CliRunner()
    for name, seed in (("a", 1), ("b", 2)):
        res = r.invoke(app, ["synth", "--domain", "studio", "-n", "4", "--image-size", "160x120", "--device", "cpu",
                             "--seed", str(seed), "--out", str(root / "frames" / name)])
        assert res.exit_code == 0, res.stderr
        res = r.invoke(app, ["crop", "--size", "64", "--center", "gt", "--out", str(root / name), res.stdout.strip()])
        assert res.exit_code == 0, res.stderr
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished 1-epoch run (batch 4 on a/): checkpoint and log bytes."""
    from typer.testing import CliRunner

    from handtools.cli import app

    ck = tmp_path_factory.mktemp("run") / "p.pt"
    res = CliRunner().invoke(app, ["pretrain", *ARGS, "--epochs", "1", "--batch-size", "4", "--out", str(ck),
                                   str(data / "a")])
    assert res.exit_code == 0, res.stderr
    return ck.read_bytes(), ck.with_suffix(".log.jsonl").read_bytes()


def _place(trained, tmp_path):
    ck = tmp_path / "p.pt"
    ck.write_bytes(trained[0])
    ck.with_suffix(".log.jsonl").write_bytes(trained[1])
    return ck


def _unchanged(ck, trained) -> bool:
    return ck.read_bytes() == trained[0] and ck.with_suffix(".log.jsonl").read_bytes() == trained[1]


def _one_line_error(res, *words):
    lines = [line for line in res.stderr.splitlines() if "error" in line]  # (info lines may come before)
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


FAILURES = {
    "empty stdin": ([], ""),
    "bad --milestones": (["--milestones", "x"], None),
    "--device cuda without GPU": (["--device", "cuda"], None),
    "bad shard": (["BAD"], None),
    "crop size": (["SMALL"], None),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_overwrite_keeps_the_old_run_when_the_new_one_fails(cli, data, trained, tmp_path, case):
    """Before: the old checkpoint and log were deleted before anything was checked."""
    if case == "--device cuda without GPU" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ck = _place(trained, tmp_path)
    extra, stdin = FAILURES[case]
    extra = list(extra)
    if "BAD" in extra:
        (tmp_path / "bad.h5").write_bytes(b"not a shard")
        extra = [tmp_path / "bad.h5"]
    elif "SMALL" in extra:
        names = ["images", "K", "joints3d", "verts3d"]
        extra = [write_shard(tmp_path / "small.h5", random_batch(2, v=1, hw=(48, 48), names=names), num_views=1)]
    elif stdin is None:
        extra = [*extra, data / "a"]
    res = cli("pretrain", *ARGS, "--epochs", "1", "--overwrite", "--out", ck, *extra, input=stdin)
    assert res.exit_code in (1, 2), res.stderr
    assert _unchanged(ck, trained)


def test_overwrite_replaces_checkpoint_and_log_at_the_first_new_checkpoint(cli, data, trained, tmp_path):
    ck = _place(trained, tmp_path)
    res = cli("pretrain", *ARGS, "--epochs", "2", "--batch-size", "2", "--max-steps", "1", "--overwrite", "--out", ck,
              data / "a")
    assert res.exit_code == 0, res.stderr
    new = load_checkpoint(ck)
    assert new["global_step"] == 1 and new["config"]["batch_size"] == 2
    assert ck.with_suffix(".log.jsonl").read_text() == ""  # no epoch of the new run finished yet
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.log.jsonl", "p.pt"]


def test_last_batch_of_one_image_trains_and_resumes(cli, data, tmp_path):
    """Before: 'Expected more than 1 value per channel when training' (batch 3 on 4 images), also on --resume."""
    ck = tmp_path / "b3.pt"
    res = cli("pretrain", *ARGS, "--epochs", "2", "--batch-size", "3", "--max-steps", "1", "--out", ck, data / "a")
    assert res.exit_code == 0, res.stderr
    res = cli("pretrain", *ARGS, "--epochs", "2", "--batch-size", "3", "--resume", "--out", ck, data / "a")
    assert res.exit_code == 0, res.stderr
    log = [json.loads(x) for x in ck.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in log] == [1, 1]  # 3 + 1 images: one batch of 4
    assert load_checkpoint(ck)["finished"]


def test_resume_continues_the_same_run_or_refuses(cli, data, trained, tmp_path):
    """Before: a different --batch-size, --lr or shard list was accepted (and --lr ignored)."""
    ck = _place(trained, tmp_path)
    same = [*ARGS, "--batch-size", "4", "--resume", "--out", ck]
    cases = [
        (["--epochs", "2", "--lr", "1e-2", data / "a"], ["--lr 0.001 -> 0.01", "--allow-change"]),
        (["--epochs", "2", "--batch-size", "2", data / "a"], ["--batch-size 4 -> 2"]),
        (["--epochs", "2", data / "a", data / "b"], ["input shards: 1 saved, 2 given"]),
        (["--epochs", "2", data / "b"], ["input shards: synth-00000.h5", "differs"]),
        (["--epochs", "2", "--encoder", "resnet34", data / "a"], ["different network", "encoder resnet18 -> resnet34"]),
    ]
    for extra, words in cases:
        args = [a for a in same if a != "--lr" and a != "1e-3"] if "--lr" in extra else same
        res = cli("pretrain", *args, *extra)
        _one_line_error(res, str(ck), *words)
        assert _unchanged(ck, trained)
    # more epochs: the normal way to continue
    res = cli("pretrain", *same, "--epochs", "2", data / "a")
    assert res.exit_code == 0, res.stderr
    # a deliberate change
    res = cli("pretrain", *[a for a in same if a not in ("--lr", "1e-3")], "--lr", "1e-2", "--allow-change",
              "--epochs", "3", data / "a")
    assert res.exit_code == 0, res.stderr
    assert "--allow-change: --lr 0.001 -> 0.01" in res.stderr
    log = [json.loads(x) for x in ck.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([1e-3, 1e-3, 1e-2])
    assert load_checkpoint(ck)["config"]["lr"] == pytest.approx(1e-2)


def test_resume_refuses_a_data_order_change_inside_an_epoch(cli, data, tmp_path):
    ck = tmp_path / "m.pt"
    res = cli("pretrain", *ARGS, "--epochs", "1", "--batch-size", "2", "--max-steps", "1", "--out", ck, data / "a")
    assert res.exit_code == 0, res.stderr
    res = cli("pretrain", *ARGS, "--epochs", "1", "--batch-size", "4", "--resume", "--allow-change", "--out", ck,
              data / "a")
    _one_line_error(res, "--batch-size 2 -> 4", "inside an epoch")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_keeps_the_old_checkpoint(cli, data, trained, tmp_path, monkeypatch):
    """Before: 'internal error: RuntimeError: [enforce fail at inline_container.cc:672]'."""
    ck = _place(trained, tmp_path)
    real = durable.create_exclusive

    def create(path):  # the temp file exists, its writes fail with ENOSPC
        os.close(real(path))
        return os.open("/dev/full", os.O_RDWR)

    monkeypatch.setattr(durable, "create_exclusive", create)
    res = cli("pretrain", *ARGS, "--epochs", "1", "--batch-size", "4", "--overwrite", "--out", ck, data / "a")
    line = _one_line_error(res, "disk full: cannot write checkpoint", str(ck), "previous checkpoint")
    assert "internal error" not in line
    assert _unchanged(ck, trained)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.log.jsonl", "p.pt"]


def test_damaged_checkpoints_and_weights_are_one_line_errors(cli, data, trained, tmp_path):
    """Before: KeyError 'net' (internal error) and torch's advice to use weights_only=False."""
    ck = _place(trained, tmp_path)
    state = torch.load(ck, weights_only=True)
    no_net = dict(state, meta={k: v for k, v in state["meta"].items() if k != "net"})
    torch.save(no_net, tmp_path / "no-net.pt")
    res = cli("predict", "-c", tmp_path / "no-net.pt", "--out", tmp_path / "pred", data / "a")
    _one_line_error(res, "no-net.pt", "damaged checkpoint", "net")
    res = cli("selfsup-stereo", "--init", tmp_path / "no-net.pt", "--out", tmp_path / "s.pt", data / "a")
    _one_line_error(res, "no-net.pt", "damaged checkpoint", "net")
    model_only = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler")}
    torch.save(model_only, tmp_path / "m.pt")
    res = cli("pretrain", *ARGS, "--epochs", "2", "--batch-size", "4", "--resume", "--out", tmp_path / "m.pt", data / "a")
    _one_line_error(res, "m.pt", "not a training checkpoint", "optimizer")

    subprocess.run([sys.executable, "-c", "import torch, collections\nclass Foo: pass\n"
                    f"torch.save({{'conv1.weight': Foo()}}, {str(tmp_path / 'obj.pth')!r})"], check=True)
    (tmp_path / "text.pth").write_text("not a weights file")
    for name in ("obj.pth", "text.pth", "missing.pth"):
        res = cli("pretrain", *ARGS, "--backbone-weights", tmp_path / name, "--out", tmp_path / "w.pt", data / "a")
        line = _one_line_error(res, name)
        assert "weights_only" not in line and "internal error" not in line
    assert "Python objects besides tensors" in _one_line_error(
        cli("pretrain", *ARGS, "--backbone-weights", tmp_path / "obj.pth", "--out", tmp_path / "w.pt", data / "a"))
    assert not (tmp_path / "w.pt").exists()


def test_temp_files_of_a_killed_run_are_removed(cli, data, tmp_path):
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(p.stdout)  # a process that has ended
    stale = tmp_path / f".p.pt.tmp-{durable.host_tag()}-{dead}-0123abcd"
    stale.write_bytes(b"half a checkpoint")
    res = cli("pretrain", *ARGS, "--epochs", "1", "--batch-size", "4", "--max-steps", "1", "--out", tmp_path / "p.pt",
              data / "a")
    assert res.exit_code == 0, res.stderr
    assert not stale.exists()


def test_input_fingerprints_name_size_and_digest(tmp_path):
    from handtools.commands._training import input_fingerprints

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(os.urandom(3 << 20))
    b.write_bytes(a.read_bytes()[:-1] + b"x")
    fa, fb = input_fingerprints([a, b])
    assert fa["name"] == "a.h5" and fa["bytes"] == 3 << 20 and fa["sha256"] != fb["sha256"]
    assert fa["sha256"] == input_fingerprints([a])[0]["sha256"]
    assert len(hashlib.sha256().hexdigest()[:16]) == len(fa["sha256"])


def test_selfsup_stereo_overwrite_keeps_the_old_run_when_the_new_one_fails(cli, trained, tmp_path):
    ck = _place(trained, tmp_path)
    init = tmp_path / "init.pt"
    init.write_bytes(trained[0])
    res = cli("selfsup-stereo", "--init", init, "--overwrite", "--out", ck, input="")  # an upstream step died
    assert res.exit_code == 1 and "no input shards" in res.stderr
    (tmp_path / "bad.h5").write_bytes(b"not a shard")
    res = cli("selfsup-stereo", "--init", init, "--overwrite", "--out", ck, tmp_path / "bad.h5")
    assert res.exit_code == 1 and "bad.h5" in res.stderr
    assert _unchanged(ck, trained)
