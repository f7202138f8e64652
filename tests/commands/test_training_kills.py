"""SIGKILL and SIGTERM at random moments during pretrain and selfsup-stereo.

Whatever the moment: every file under a final name is complete (the checkpoint loads,
every log line is JSON); SIGTERM exits 130 (checkpoint written at the step boundary,
no temporary file left); SIGKILL leaves at most recognisable temporary files. Resuming
(or, if no checkpoint was written yet, rerunning) ends with bitwise the same weights and
log as a run never interrupted (CPU, one thread). Each case runs the command two or
three times (~15-30 s each on a shared 2-core machine), so all are ``slow``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from handtools import durable
from handtools.core.learning.checkpoints import load_checkpoint
from tests.conftest import REPO

pytestmark = pytest.mark.slow

ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
TRAIN = ["--lr", "1e-3", "--milestones", "1", "--device", "cpu", "--no-amp", "--epochs", "2", "--checkpoint-every", "2"]
PRETRAIN = ["pretrain", "--encoder", "resnet18", "--batch-size", "3", *TRAIN]  # 8 images: batches 3, 3, 2
STEREO = ["selfsup-stereo", "--batch-size", "2", "--renderer", "torch", *TRAIN]  # 4 pairs: batches 2, 2


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "handtools", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=600, **kw)


def _ok(args):
    p = _run(args)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Inputs, and one uninterrupted run per command: its checkpoint, log and duration."""
    root = tmp_path_factory.mktemp("kills")
    frames = _ok(["synth", "-n", "8", "--image-size", "160x120", "--device", "cpu", "--seed", "1", "--out", root / "f"])
    crops = _ok(["crop", "--size", "64", "--center", "gt", "--out", root / "c", *frames])
    _ok(["pretrain", "--encoder", "resnet18", "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--milestones", "",
         "--device", "cpu", "--out", root / "prior.pt", *crops])
    frames = _ok(["synth", "--views", "2", "--domain", "indoor", "-n", "4", "--image-size", "160x120", "--device", "cpu",
                  "--seed", "2", "--out", root / "fs"])
    stereo = _ok(["crop", "--size", "64", "--center", "gt", "--out", root / "cs", *frames])
    stereo = _ok(["mask", "--out", root / "ms", *stereo])
    commands = {
        "pretrain": [*PRETRAIN, *crops],
        "selfsup-stereo": [*STEREO, "--init", root / "prior.pt", *stereo],
    }
    refs = {}
    for name, args in commands.items():
        out = root / f"ref-{name}.pt"
        t0 = time.perf_counter()
        _ok([*args, "--out", out])
        refs[name] = (args, out, time.perf_counter() - t0)
    return refs


def _log(path):
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "samples_per_s")}
            for line in path.with_suffix(".log.jsonl").read_text().splitlines()]


def _check_files(folder) -> list:
    """Every file under a final name is complete; returns the temporary files."""
    temps = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            assert durable.parse_temp_name(p.name) is not None, f"unrecognisable leftover {p.name}"
            temps.append(p)
        elif p.suffix == ".pt":
            load_checkpoint(p)
        else:
            assert p.name.endswith(".log.jsonl"), p
            [json.loads(line) for line in p.read_text().splitlines()]
    return temps


CASES = [pytest.param(c, s, seed, id=f"{c}-{s.name}-seed{seed}")
         for c in ("pretrain", "selfsup-stereo") for s in (signal.SIGKILL, signal.SIGTERM) for seed in (0, 1)]


@pytest.mark.parametrize("command,sig,seed", CASES)
def test_killed_training_resumes_to_the_same_weights(setup, tmp_path, command, sig, seed):
    args, ref, duration = setup[command]
    out = tmp_path / "run.pt"
    delay = np.random.default_rng(seed).uniform(0.5, 0.95) * duration  # mostly while training
    proc = subprocess.Popen([sys.executable, "-m", "handtools", *map(str, args), "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    temps = _check_files(tmp_path)
    step = load_checkpoint(out)["global_step"] if out.exists() else None
    print(f"{command} {sig.name} after {delay:.1f}s of {duration:.1f}s: exit {proc.returncode}, "
          f"checkpoint at step {step}, {len(temps)} temp(s)")
    if sig == signal.SIGTERM:
        assert proc.returncode in (0, 130, -signal.SIGTERM), stderr  # -15: before handtools started or after it finished
        if proc.returncode == 130:
            assert "handtools: interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
        assert temps == []
    else:
        assert proc.returncode in (0, -signal.SIGKILL), stderr
    if proc.returncode == 0 or stdout:  # announced only once finished (a kill may still come during exit)
        assert stdout.split() == [str(out)] and load_checkpoint(out)["finished"]

    again = _run([*args, "--out", out, *(["--resume"] if out.exists() else [])])
    assert again.returncode == 0, again.stderr
    assert _check_files(tmp_path) == []  # a killed run's temporary files are removed
    got, want = load_checkpoint(out), load_checkpoint(ref)
    assert got["finished"] and got["global_step"] == want["global_step"]
    for k, v in want["model"].items():
        assert torch.equal(got["model"][k], v), k
    assert _log(out) == _log(ref)
