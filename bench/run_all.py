"""Run every benchmark in bench/ and print all their tables.

    $ python bench/run_all.py                  # quick presets (a few minutes on a 2-core CPU)
    $ python bench/run_all.py --full           # each benchmark's longer preset
    $ python bench/run_all.py --only synth shards
    $ python bench/run_all.py --only prior      # an accuracy benchmark (15-30 min each)

Each benchmark runs in its own process (its own torch threads and memory), one after
the other; its table is printed as it finishes, then a summary of wall times and exit
codes. The exit status is 1 when any benchmark failed.

This module is also the one home of :func:`machine_info`, the header every benchmark
prints (CPU model, cores, torch version and threads, load average at start): timings
mean little without it, and on a shared machine the load average says how much.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: name -> (script, quick arguments, full arguments). Quick keeps the whole run to a few minutes;
#: None: not in the quick run (the accuracy benchmarks train networks for 15-30 min on 2 cores).
BENCHMARKS: dict[str, tuple[str, list[str] | None, list[str]]] = {
    "render": ("bench_render.py", ["--repeat", "2"], ["--repeat", "10"]),
    "nets": ("bench_nets.py", ["--iters", "2"], ["--iters", "10", "--warmup", "2"]),
    "hand_model": ("bench_hand_model.py", [], ["--full"]),
    "shards": ("bench_shards.py", [], ["--full"]),
    "synth": ("bench_synth.py", [], ["--full"]),
    "train": ("bench_train.py", [], ["--full"]),
    "frontend": ("bench_frontend.py", ["--seconds", "1"], ["--seconds", "5"]),
    "masks": ("bench_masks.py", ["--num", "8"], ["--num", "64"]),
    "detect_synth": ("bench_detect_synth.py", ["--num", "20", "--seeds", "0"], []),
    "prior": ("bench_prior.py", None, ["--preset", "cpu"]),
    "selfsup_stereo": ("bench_selfsup_stereo.py", None, ["--preset", "cpu"]),
}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> str:
    """One header line: CPU model, cores (usable/online), torch version and threads, load average now."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f", CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"machine: {cpu_model()}, {usable}/{os.cpu_count()} cores usable/online{gpu}; "
        f"python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}; "
        f"load average (1/5/15 min) at start {load}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="longer presets (more repeats, more data)")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                    help=f"run only these ({', '.join(BENCHMARKS)})")
    args = ap.parse_args()
    names = args.only or [n for n, (_, quick, _) in BENCHMARKS.items() if args.full or quick is not None]
    print(machine_info(), flush=True)
    summary = []
    for name in names:
        script, quick, full = BENCHMARKS[name]
        cmd = [sys.executable, str(BENCH / script), *(full if args.full or quick is None else quick)]
        print(f"\n=== {name}: {' '.join(['python', 'bench/' + script, *cmd[2:]])}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run(cmd, check=False).returncode  # output goes straight to ours
        summary.append((name, time.perf_counter() - t0, code))
    print(f"\n{'benchmark':<12}{'wall s':>8}  exit")
    for name, seconds, code in summary:
        print(f"{name:<12}{seconds:>8.1f}  {code}")
    print(f"total {sum(s for _, s, _ in summary):.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 1 if any(code for *_, code in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
