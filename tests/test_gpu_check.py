"""bench/gpu_check.sh: valid bash, a dry run that names every step, and its CPU fallback
(``--tiny``: no CUDA here, so GPU steps are skipped with that reason and it exits 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"


def _run(*args, env=None, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHON=sys.executable, **(env or {})))


def test_is_valid_bash():
    p = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", "-S", "error", str(SCRIPT)], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout


def test_dry_run_names_every_step_and_runs_nothing(tmp_path):
    p = _run("--dry-run", "--work", str(tmp_path / "w"))
    assert p.returncode == 0, p.stderr
    for needle in ("torch.cuda.is_available", "RasterizeCudaContext", "pytest -q -m gpu",
                   "selfsup-stereo --init prior.pt --max-steps 300", "--size 256", "resnet50"):
        assert needle in p.stdout, needle
    assert not (tmp_path / "w").exists()


def test_rejects_unknown_options():
    p = _run("--bogus")
    assert p.returncode == 2 and "unknown option" in p.stderr


@pytest.mark.slow
def test_cpu_fallback_with_tiny_sizes(tmp_path):
    """~1.5 min on 2 busy cores: the whole chain on the CPU, GPU steps reported as skipped."""
    p = _run("--tiny", "--work", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    table = [line for line in p.stdout.splitlines() if line.startswith("|")]
    assert table[0] == "| check | result | seconds |" and len(table) == 2 + 5
    text = "\n".join(table)
    assert "no CUDA" in text and "| nvdiffrast build | skipped: no CUDA |" in text
    assert "skipped" in table[4]  # pytest -m gpu: collected and skipped
    assert "selfsup-stereo tiny preset (cpu, torch)" in text and "2 steps in" in text and "steps/s" in text
    assert "no CUDA" in p.stderr
