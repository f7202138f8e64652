"""Training and inference images/s of the hand prior on CPU (ResNet-18 / ResNet-50, 256x256, batch 8).

    $ python bench/bench_train.py               # quick: 3 training steps, 2 inference batches
    $ python bench/bench_train.py --full        # 10 training steps, 8 inference batches
    $ python bench/bench_train.py --encoders resnet18 --threads 1 2

Data: ``handtools synth --domain studio --image-size 320x240`` piped through
``handtools crop --size 256 --center gt`` (as ``handtools pretrain`` gets it), made
once in a temporary folder.

* train: ``handtools.core.learning.trainer.Trainer`` with ``handtools.core.methods.prior.loss.PriorLoss``
  (forward, backward, Adam step), fed by ``CropViewDataset`` in the main process
  (``num_workers=0``: reading and decoding the shard is in the time). A step's time
  is the interval between the trainer's consecutive ``step`` reports; the first step
  (start-up) is not counted.
* infer: ``handtools.core.methods.prior.predictor.PriorPredictor.predict`` on a batch of 8 crops under
  ``torch.no_grad`` (network + camera-space meshes), after one warm-up batch.
images/s = 8 / median seconds per step (or batch).
"""

from __future__ import annotations

import argparse
import os
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
from handtools.core.methods.prior.predictor import PriorPredictor  # noqa: E402
from handtools.core.learning.nets.prior import HandPriorNet  # noqa: E402
from handtools.core.methods.prior.loss import PriorLoss  # noqa: E402
from handtools.core.learning.trainer import Trainer, TrainConfig  # noqa: E402
from handtools.io.shards import ShardReader  # noqa: E402
from handtools.io.training_data import CropViewDataset  # noqa: E402
from run_all import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)

SIZE = 256
BATCH = 8


def make_crops(folder: Path, num: int) -> Path:
    """``num`` labelled 256x256 crops made by the CLI (synth | crop); returns the crops shard."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    h = f"{sys.executable} -m handtools -q"
    cmd = (f"{h} synth --domain studio -n {num} --image-size 320x240 --seed 5 --out {folder / 'frames'}"
           f" | {h} crop --size {SIZE} --center gt --out {folder / 'crops'}")
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{cmd!r} failed:\n{p.stderr}")
    return Path(p.stdout.split()[0])


def train_rate(encoder: str, crops: Path, steps: int, folder: Path, hand: HandModel) -> tuple[float, float, HandPriorNet]:
    """Median and best images/s of Trainer steps (steps 2..steps), and the trained net."""
    data = CropViewDataset([crops], ground_truth=True)
    torch.manual_seed(0)
    net = HandPriorNet(encoder, (SIZE, SIZE), with_z=True, J_regressor=hand.joint_regressor)
    loss = PriorLoss(hand.faces, hand.joint_regressor, (SIZE, SIZE), net.config["depth_range"])
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-4, max_steps=steps, num_workers=0)
    stamps: list[float] = []

    def report(event: str, info: dict) -> None:
        if event == "step":
            stamps.append(time.perf_counter())

    trainer = Trainer(net, loss, data, cfg, folder / f"{encoder}.pt", torch.device("cpu"), report=report)
    trainer.fit()
    steps_s = np.diff(stamps)  # step k's time = report k - report k-1, k >= 2
    if len(steps_s) == 0:
        raise SystemExit(f"need at least 2 training steps, got {len(stamps)} (more data or --steps)")
    return BATCH / float(np.median(steps_s)), BATCH / float(steps_s.min()), net


def infer_rate(net: HandPriorNet, crops: Path, iters: int, hand: HandModel) -> tuple[float, float]:
    """Median and best images/s of PriorPredictor.predict on batches of 8."""
    ckpt = {"meta": {"kind": "prior", "net": net.config}, "model": net.state_dict()}
    predictor = PriorPredictor(ckpt, hand, torch.device("cpu"))
    with ShardReader(crops, ["images", "K", "joints3d"]) as r:
        batch = {k: r.read(k, slice(0, BATCH)) for k in ("images", "K", "joints3d")}
    times = []
    with torch.no_grad():
        predictor.predict(batch)  # warm-up
        for _ in range(iters):
            t = time.perf_counter()
            predictor.predict(batch)
            times.append(time.perf_counter() - t)
    return BATCH / statistics.median(times), BATCH / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--steps", type=int, default=None, help="training steps per encoder (default 3, --full 10)")
    ap.add_argument("--iters", type=int, default=None, help="timed inference batches (default 2, --full 8)")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="torch thread counts (default: torch's)")
    ap.add_argument("--full", action="store_true", help="longer preset")
    args = ap.parse_args()
    steps = args.steps or (10 if args.full else 3)
    iters = args.iters or (8 if args.full else 2)
    threads = args.threads or [torch.get_num_threads()]
    print(machine_info())
    hand = HandModel.from_path(None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        crops = make_crops(Path(tmp), steps * BATCH)
        print(f"data: {steps * BATCH} crops {SIZE}x{SIZE} from handtools synth | crop, made in {time.perf_counter() - t:.1f} s")
        for nt in threads:
            torch.set_num_threads(nt)
            for enc in args.encoders:
                tr, tr_best, net = train_rate(enc, crops, steps, Path(tmp), hand)
                inf, inf_best = infer_rate(net, crops, iters, hand)
                rows.append((enc, nt, tr, tr_best, inf, inf_best))
                del net
    print(f"batch {BATCH}, {SIZE}x{SIZE}, float32 CPU; train: {steps - 1} timed steps, infer: {iters} timed batches")
    print(f"{'encoder':<10}{'threads':>8}{'train img/s':>13}{'best':>7}{'infer img/s':>13}{'best':>7}")
    for enc, nt, tr, trb, inf, infb in rows:
        print(f"{enc:<10}{nt:>8}{tr:>13.2f}{trb:>7.2f}{inf:>13.2f}{infb:>7.2f}")
    print("(img/s = 8 / median seconds per step or batch; best = 8 / fastest; train includes reading the shard)")


if __name__ == "__main__":
    main()
