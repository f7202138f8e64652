"""Forward throughput of the hand model (MANO layer over smplx), float32 on CPU.

    $ python bench/bench_hand_model.py            # quick: ~0.5 s per row
    $ python bench/bench_hand_model.py --full     # ~3 s per row
    $ python bench/bench_hand_model.py --batch 1 64 256 --device cuda

``HandModel.from_path(None)`` (the bundled open hand model; ``$HANDTOOLS_MANO`` if set)
at batch 1 and 256: hands/s of the forward pass without autograd (inference, synth),
with autograd recording (inputs that require grad, as in fitting), and of forward +
backward (``verts.sum() + joints.sum()``). Random poses (0.3 rad spread) and shapes.
Each row is the median over repeats of one call's time; hands/s = batch / median.
Rows for torch's default thread count and for 1 thread: on a busy machine the
multi-threaded small ops can be many times slower than one thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.hand.model import HandModel  # noqa: E402
from run_all import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device: torch.device, seconds: float, min_repeats: int = 5) -> list[float]:
    """Seconds per call of ``fn``, called until ``seconds`` have passed (at least ``min_repeats``), after one warm-up."""
    fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--seconds", type=float, default=None, help="time per row (default 0.5, --full 3)")
    ap.add_argument("--full", action="store_true", help="longer preset")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch thread counts to run (default: torch's default, and 1)")
    args = ap.parse_args()
    seconds = args.seconds if args.seconds is not None else (3.0 if args.full else 0.5)
    threads = args.threads or sorted({torch.get_num_threads(), 1}, reverse=True)
    print(machine_info())
    device = torch.device(args.device)
    model = HandModel.from_path(None, device=device)
    print(f"hand model: {model.identity}; float32 on {device}")
    rows = []
    for nt, B in [(nt, B) for nt in threads for B in args.batch]:
        torch.set_num_threads(nt)
        gen = torch.Generator().manual_seed(0)
        pose = (torch.randn(B, 48, generator=gen) * 0.3).to(device)
        shape = torch.randn(B, 10, generator=gen).to(device)

        def no_grad():
            with torch.no_grad():
                model(pose, shape)

        p, s = pose.clone().requires_grad_(True), shape.clone().requires_grad_(True)

        def with_grad():
            model(p, s)

        def forward_backward():
            out = model(p, s)
            (out.verts.sum() + out.joints.sum()).backward()

        for mode, fn in (("forward, no grad", no_grad), ("forward, grad", with_grad), ("forward+backward", forward_backward)):
            times = time_calls(fn, device, seconds)
            med = statistics.median(times)
            rows.append((nt, B, mode, len(times), med, B / med, B / min(times)))
    print(f"{'threads':>7}{'batch':>6}  {'mode':<18}{'calls':>6}{'median ms':>11}{'hands/s':>11}{'best hands/s':>14}")
    for nt, B, mode, n, med, rate, best in rows:
        print(f"{nt:>7}{B:>6}  {mode:<18}{n:>6}{med * 1000:>11.2f}{rate:>11.0f}{best:>14.0f}")
    print("(hands/s = batch / median seconds per call; best = batch / fastest call)")


if __name__ == "__main__":
    main()
