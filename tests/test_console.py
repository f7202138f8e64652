"""Progress in batch logs: plain periodic lines when stderr is not a terminal."""

from __future__ import annotations

import io
import re

from handtools.console import PlainProgress
from tests.conftest import handtools_cmd, run_shell


def test_plain_lines_every_interval_with_rate_and_time_left():
    now = [0.0]
    out = io.StringIO()
    p = PlainProgress(out, interval=30, clock=lambda: now[0])
    task = p.add_task("synth", total=100)
    for _ in range(10):  # 10 items every 10 s: a line every 30 s
        now[0] += 10
        p.advance(task, 10)
    p.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "synth: 30/100 (30%), 1/s, 1m10s left"
    assert lines[1:] == ["synth: 60/100 (60%), 1/s, 40s left", "synth: 90/100 (90%), 1/s, 10s left",
                         "synth: 100/100 (100%), 1/s, 0s left"]  # and the end


def test_a_new_total_restarts_the_rate():
    now = [0.0]
    out = io.StringIO()
    p = PlainProgress(out, interval=1, clock=lambda: now[0])
    t = p.add_task("steps")
    now[0] = 100.0
    p.update(t, total=20, completed=0, description="epoch 2 loss 0.5")  # a new epoch starts
    now[0] = 102.0
    p.update(t, completed=4)
    assert out.getvalue().splitlines()[-1] == "epoch 2 loss 0.5: 4/20 (20%), 2/s, 8s left"


def test_quick_work_prints_nothing():
    out = io.StringIO()
    p = PlainProgress(out, interval=30)
    p.advance(p.add_task("crop", total=3), 3)
    p.finish()
    assert out.getvalue() == ""


def test_batch_log_has_progress_lines_and_no_control_characters(tmp_path):
    p = run_shell(f"HANDTOOLS_PROGRESS_SECONDS=0 {handtools_cmd()} synth -n 4 --batch-size 1 --image-size 64x48 "
                  f"--out {tmp_path} 2> {tmp_path / 'log.txt'}")
    assert p.returncode == 0
    log = (tmp_path / "log.txt").read_text()
    assert re.search(r"^synth: 4/4 \(100%\), [\d.]+/s, 0s left$", log, re.M), log
    assert "\x1b" not in log and "\r" not in log
