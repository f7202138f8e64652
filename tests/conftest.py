"""Shared test fixtures: tiny shards, the CLI runner, subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from handtools.io.schema import DATASETS
from handtools.io.shards import ShardWriter, history_entry

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def random_batch(n: int, v: int = 2, hw=(16, 20), names=None, seed: int = 0) -> dict:
    """Random arrays for every schema dataset (or ``names``), n samples of v views."""
    rng = np.random.default_rng(seed)
    sym = {"N": n, "V": v, "H": hw[0], "W": hw[1]}
    out = {}
    for name, (dtype, spec) in DATASETS.items():
        if names is not None and name not in names:
            continue
        shape = tuple(sym[s] if isinstance(s, str) else s for s in spec)
        if dtype == "str":
            out[name] = np.array([f"sample-{seed}-{i}" for i in range(n)], dtype=object)
        elif dtype == "uint8":
            out[name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    # Values the reader accepts: pinhole intrinsics (fx, fy > 0, bottom row 0 0 1), baseline > 0;
    # drawn from their own generator so they do not depend on which other names were asked for.
    rng = np.random.default_rng([seed, 1])
    if "K" in out:
        K = np.zeros(out["K"].shape, np.float32)
        K[..., 0, 0] = rng.uniform(50, 500, K.shape[:-2])
        K[..., 1, 1] = K[..., 0, 0] * rng.uniform(0.9, 1.1, K.shape[:-2])
        K[..., 0, 2], K[..., 1, 2] = hw[1] / 2, hw[0] / 2
        K[..., 2, 2] = 1
        out["K"] = K
    if "baseline" in out:
        out["baseline"] = rng.uniform(0.05, 0.2, out["baseline"].shape).astype(np.float32)
    return out


def write_shard(path: Path, batch: dict, kind: str = "frames", num_views: int = 2, **kw) -> Path:
    path = Path(path)
    with ShardWriter(
        path.parent,
        kind=kind,
        num_views=num_views,
        producer="tests",
        history=[history_entry("tests")],
        name=lambda k: path.name,
        **kw,
    ) as w:
        w.append(batch)
    return path


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns the result (exit_code, stdout, stderr)."""
    from handtools.cli import app

    r = CliRunner()

    def invoke(*args, input=None):
        return r.invoke(app, [str(a) for a in args], input=input)

    return invoke


def flat(text: str) -> str:
    """Log text with the console's line wrapping undone (rich wraps stderr at the terminal width)."""
    return " ".join(text.split())


def run_cli(*args) -> list[str]:
    """Invoke the CLI in-process (module-scoped fixtures can't use ``cli``); fail on a non-zero
    exit; return stdout's words (the shard paths it printed)."""
    from handtools.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return res.stdout.split()


def tiny_training_crops(root: Path, n_labelled: int) -> tuple[list[str], list[str], list[str]]:
    """What the learning commands' CLI tests train on, made by the CLI at 160x120 / 64 px:
    ``n_labelled`` labelled studio crops (synth seed 1), and 4 indoor stereo pairs (seed 2) as
    frames and as skin-masked crops. Returns (labelled crops, stereo frames, masked stereo crops)."""
    frames = run_cli("synth", "-n", n_labelled, "--image-size", "160x120", "--out", root / "fs", "--seed", "1")
    crops = run_cli("crop", "--size", "64", "--center", "gt", "--out", root / "cs", *frames)
    stereo = run_cli("synth", "--views", "2", "--domain", "indoor", "-n", "4", "--image-size", "160x120", "--out",
                     root / "fi", "--seed", "2")
    masked = run_cli("mask", "--out", root / "mi",
                     *run_cli("crop", "--size", "64", "--center", "gt", "--out", root / "ci", *stereo))
    return crops, stereo, masked


def run_shell(cmd: str, cwd=None, timeout=600, check=False) -> subprocess.CompletedProcess:
    """Run a real shell pipeline with this interpreter's handtools first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {p.returncode}:\n{p.stderr}")
    return p


def handtools_cmd() -> str:
    """The shell words that run handtools with this interpreter."""
    return f"{sys.executable} -m handtools"
