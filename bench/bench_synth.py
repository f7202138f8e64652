"""Throughput of ``handtools synth --views 2 --domain indoor`` at 640x480 (target: >= 10 stereo samples/s).

    $ python bench/bench_synth.py              # quick: 2 batches in process, 2 runs of -n 16
    $ python bench/bench_synth.py --full       # 8 batches, 3 runs of -n 64
    $ python bench/bench_synth.py --workers 1 2 4

Two measurements:
* in process: ``SceneRenderer.render_batch`` (sampling, hand model, rendering,
  compositing, noise), batches of 8, for each ``workers`` setting (samples rendered at
  once on threads; the default is torch's thread count). Also the CPU time per sample
  (all threads) and, with one worker, the share spent inside ``Renderer.render``.
* whole command: ``python -m handtools -q synth --views 2 --domain indoor -n N`` in a
  fresh process, start-up (imports, model load) and shard writing (lzf) included.
Medians over batches / runs. On a shared machine other processes take CPU: compare
the load average in the header with the cores, and prefer the CPU-time column.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.hand.model import HandModel  # noqa: E402
from handtools.core.render import Renderer  # noqa: E402
from handtools.core.data.synth import DOMAINS, STB_BASELINE, STB_FOCAL, camera_rig  # noqa: E402
from handtools.core.data.synth_render import SceneRenderer  # noqa: E402
from run_all import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)

TARGET = 10.0  # stereo samples/s at 640x480 on a 2-core CPU (issue 3)
HW = (480, 640)
BATCH = 8


def in_process(workers: int, batches: int, profile_render: bool) -> dict:
    """Samples/s of render_batch (median over batches, after one warm-up batch)."""
    ks, ts = camera_rig(2, HW, STB_FOCAL * HW[1] / 640.0, STB_BASELINE)
    renderer = Renderer("auto")
    scene = SceneRenderer(HandModel.from_path(None), renderer, DOMAINS["indoor"], HW, ks, ts, STB_BASELINE,
                          workers=workers)
    in_render = [0.0]
    if profile_render:  # CPU seconds inside Renderer.render (one worker: this thread does all of it)
        inner = renderer.render

        def timed(*a, **k):
            t = time.thread_time()
            try:
                return inner(*a, **k)
            finally:
                in_render[0] += time.thread_time() - t

        renderer.render = timed
    rates, cpu = [], []
    with torch.no_grad():
        scene.render_batch(np.arange(BATCH))  # warm-up: caches, first-call costs
        in_render[0] = 0.0
        for b in range(1, batches + 1):
            c, t = time.process_time(), time.perf_counter()
            scene.render_batch(np.arange(b * BATCH, (b + 1) * BATCH))
            rates.append(BATCH / (time.perf_counter() - t))
            cpu.append((time.process_time() - c) / BATCH)
    out = {"rate": statistics.median(rates), "best": max(rates), "cpu_ms": 1000 * statistics.median(cpu)}
    if profile_render:
        out["render_ms"] = 1000 * in_render[0] / (batches * BATCH)
    return out


def whole_command(num: int, runs: int) -> dict:
    """Wall seconds of the whole synth command (fresh process each run), median over runs."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs):
            cmd = [sys.executable, "-m", "handtools", "-q", "synth", "--views", "2", "--domain", "indoor",
                   "-n", str(num), "--image-size", f"{HW[1]}x{HW[0]}", "--out", str(Path(tmp) / f"run{r}")]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            walls.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if p.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    wall = statistics.median(walls)
    return {"wall": wall, "rate": num / wall, "best": num / min(walls), "cpu_ms": 1000 * statistics.median(cpus) / num}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=None, help="timed in-process batches of 8 (default 2, --full 8)")
    ap.add_argument("--num", type=int, default=None, help="samples per whole-command run (default 16, --full 64)")
    ap.add_argument("--runs", type=int, default=None, help="whole-command runs (default 2, --full 3)")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="SceneRenderer workers to time (default: torch's thread count, and 1)")
    ap.add_argument("--full", action="store_true", help="longer preset")
    args = ap.parse_args()
    batches = args.batches or (8 if args.full else 2)
    num = args.num or (64 if args.full else 16)
    runs = args.runs or (3 if args.full else 2)
    workers = args.workers or sorted({torch.get_num_threads(), 1}, reverse=True)
    print(machine_info())
    rows = []
    for w in workers:
        r = in_process(w, batches, profile_render=(w == 1))
        note = f"renderer {r['render_ms']:.0f} ms CPU/sample ({100 * r['render_ms'] / r['cpu_ms']:.0f}%)" if w == 1 else ""
        rows.append((f"render_batch, {w} worker{'s' if w > 1 else ''}", f"{batches} x {BATCH}", r, note))
    r = whole_command(num, runs)
    rows.append((f"handtools synth -n {num}", f"{runs} runs", r, f"median wall {r['wall']:.1f} s incl. start-up"))
    print(f"640x480, 2 views (stereo), indoor; target >= {TARGET:g} samples/s")
    print(f"{'what':<26}{'timed':>10}{'samples/s':>11}{'best/s':>8}{'CPU ms/sample':>15}  notes")
    for name, timed, r, note in rows:
        print(f"{name:<26}{timed:>10}{r['rate']:>11.2f}{r['best']:>8.2f}{r['cpu_ms']:>15.0f}  {note}")
    best = max(r["rate"] for _, _, r, _ in rows)
    print(f"(samples/s: median; CPU ms/sample: user+system of all threads; "
          f"target {'met' if best >= TARGET else 'NOT met'} at the best median {best:.2f}/s "
          f"with load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
