"""Repeated SIGTERM in a real process: the first asks for a checkpoint at the next step boundary, and
more SIGTERMs (Slurm and torchrun both signal a worker) neither cut a step short nor lose that checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from handtools.core.learning.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[3]

# A toy run whose steps and checkpoint writes are slow (marker files say where it is), with the
# CLI's SIGTERM handler installed, as `handtools <command>` has it.
SCRIPT = r'''
import signal, sys, time
from pathlib import Path
import torch
from handtools.cli import _terminate
from handtools.core.learning.trainer import Trainer, TrainConfig

out, slow, marks, steps, resume = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

class Data(torch.utils.data.Dataset):
    def __len__(self): return 16
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(4, generator=g)
        return {"x": x, "y": x.sum(0, keepdim=True)}

def loss(model, batch):
    if slow == "step":
        (marks / f"step{int(len(list(marks.glob('step*'))))}").touch()
        time.sleep(1.5)
    elif slow == "save":
        time.sleep(0.5)  # steps long enough that the first SIGTERM lands before the run ends
    return ((model(batch["x"]) - batch["y"]) ** 2).mean(), {}

class SlowSave(Trainer):
    def save(self):
        if slow == "save" and self._stop:
            (marks / "saving").touch()
            time.sleep(2.0)  # the second and third SIGTERM arrive while the checkpoint is written
        super().save()

signal.signal(signal.SIGTERM, _terminate)
torch.manual_seed(0)
cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-2, seed=1, max_steps=steps)
t = SlowSave(torch.nn.Linear(4, 1), loss, Data(), cfg, out, torch.device("cpu"), meta={"kind": "toy"})
if resume == "resume":
    t.resume_from(out)
t.report = lambda e, i: (marks / f"done{t.global_step}").touch() if e == "step" else None
try:
    t.fit()
except KeyboardInterrupt:
    (marks / "stopped").touch()
    sys.exit(130)
'''


def _start(tmp_path, out, slow, steps=8, resume=False):
    marks = tmp_path / f"marks-{out.stem}-{resume}"
    marks.mkdir()
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, str(script), str(out), slow, str(marks), str(steps),
                          "resume" if resume else "new"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, marks


def _wait(path: Path, p, timeout=300.0):
    end = time.monotonic() + timeout
    while not path.exists():
        assert p.poll() is None, f"run ended ({p.returncode}) before {path.name}: {p.stderr.read()}"
        assert time.monotonic() < end, f"no {path.name} after {timeout} s"
        time.sleep(0.02)


def test_repeated_sigterm_during_the_checkpoint_write_keeps_the_save(tmp_path):
    out = tmp_path / "run.pt"
    p, marks = _start(tmp_path, out, "save")
    _wait(marks / "done2", p)
    p.send_signal(signal.SIGTERM)  # stop at the next step boundary, then write the checkpoint
    _wait(marks / "saving", p)
    p.send_signal(signal.SIGTERM)  # again (twice) while it is being written
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    assert (marks / "stopped").exists()
    ck = load_checkpoint(out)  # written, complete
    steps = len(list(marks.glob("done*")))
    assert ck["global_step"] == steps >= 3


def test_repeated_sigterm_mid_step_stops_at_the_step_boundary_and_resumes_exactly(tmp_path):
    ref = tmp_path / "ref.pt"
    p, _ = _start(tmp_path, ref, "none", steps=5)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err

    out = tmp_path / "run.pt"
    p, marks = _start(tmp_path, out, "step", steps=5)
    _wait(marks / "step2", p)  # inside the third step's loss
    for _ in range(3):
        p.send_signal(signal.SIGTERM)
        time.sleep(0.1)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    assert load_checkpoint(out)["global_step"] == 3  # the step in progress was finished, not cut short

    # resume to the end: the same weights as the uninterrupted run
    p, _ = _start(tmp_path, out, "none", steps=5, resume=True)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    want, got = load_checkpoint(ref)["model"], load_checkpoint(out)["model"]
    assert all(torch.equal(want[k], got[k]) for k in want)
