"""Throughput of the hand-prior network (encoder + lixel regressor).

    $ python bench/bench_nets.py                       # R18 and R50, 256², batch 8, CPU
    $ python bench/bench_nets.py --device cuda --batch 32 --iters 20

Prints a table of images/s for a forward pass (eval, no grad) and a
forward + backward pass (train mode, L1 loss on uv and z) per encoder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

try:
    from handtools.core.learning.nets import HandPriorNet
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from handtools.core.learning.nets import HandPriorNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(encoder: str, size: int, batch: int, iters: int, warmup: int, device: torch.device, with_z: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    model = HandPriorNet(encoder, image_size=size, with_z=with_z).to(device)
    images = torch.rand(batch, 3, size, size, device=device)

    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(images)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(images)
        _sync(device)
    fwd = batch * iters / (time.perf_counter() - t0)

    model.train()

    def step() -> None:
        out = model(images)
        loss = out["uv"].abs().mean() + (out["z"].abs().mean() if "z" in out else 0.0)
        model.zero_grad(set_to_none=True)
        loss.backward()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    fwd_bwd = batch * iters / (time.perf_counter() - t0)
    return fwd, fwd_bwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-z", dest="with_z", action="store_false", help="u, v only (binocular model)")
    args = ap.parse_args()
    device = torch.device(args.device)

    print(f"device={device} threads={torch.get_num_threads()} size={args.size} batch={args.batch} "
          f"iters={args.iters} with_z={args.with_z} torch={torch.__version__}")
    print(f"{'encoder':<10} {'params (M)':>10} {'fwd img/s':>10} {'fwd+bwd img/s':>14}")
    for enc in args.encoders:
        params = sum(p.numel() for p in HandPriorNet(enc, image_size=args.size, with_z=args.with_z).parameters()) / 1e6
        fwd, fwd_bwd = bench(enc, args.size, args.batch, args.iters, args.warmup, device, args.with_z)
        print(f"{enc:<10} {params:>10.1f} {fwd:>10.1f} {fwd_bwd:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
