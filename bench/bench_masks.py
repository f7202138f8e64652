"""Hand-mask quality (IoU against synthetic ground truth) and speed, per domain and method.

    $ python bench/bench_masks.py [--num 32] [--kp-noise 0 4]

For each synth domain (studio, indoor) and keypoint noise level: ``handtools synth`` makes
``--num`` mono samples at 640x480, ``handtools crop --center bbox --size 256`` cuts the
crops (ground-truth masks cropped with them), then the masks of ``handtools mask``'s
methods are computed on the crops with the same core calls the command makes and compared
with the ground truth. Prints one table: mean and median IoU, and masks/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.perception.skin import iou, keypoint_mask, skin_mask  # noqa: E402
from handtools.io.shards import ShardReader  # noqa: E402

METHODS = {
    "skin": lambda img, kp: skin_mask(img, kp),
    "skin (no keypoints)": lambda img, kp: skin_mask(img),
    "keypoints": lambda img, kp: keypoint_mask(kp, (img.shape[1], img.shape[0])),
}


def _crops(tmp: Path, domain: str, num: int, kp_noise: float, seed: int) -> Path:
    h = f"{sys.executable} -m handtools -q"
    d = tmp / f"{domain}-{kp_noise:g}"
    cmd = (f"{h} synth --domain {domain} -n {num} --image-size 640x480 --kp-noise {kp_noise} --seed {seed}"
           f" --out {d / 'frames'} | {h} crop --center bbox --size 256 --out {d / 'crops'}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{cmd!r} failed:\n{p.stderr}")
    return Path(p.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=32, help="samples per domain")
    ap.add_argument("--kp-noise", type=float, nargs="+", default=[0.0, 4.0], help="keypoint noise levels, px")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for domain in ("studio", "indoor"):
            for noise in args.kp_noise:
                with ShardReader(_crops(Path(tmp), domain, args.num, noise, args.seed)) as r:
                    images, kp, gt = r.read("images")[:, 0], r.read("keypoints2d")[:, 0], r.read("masks")[:, 0]
                for name, fn in METHODS.items():
                    if name == "skin (no keypoints)" and noise != args.kp_noise[0]:
                        continue  # does not use keypoints: one row per domain is enough
                    t0 = time.perf_counter()
                    masks = [fn(img, k) for img, k in zip(images, kp)]
                    rate = len(masks) / (time.perf_counter() - t0)
                    scores = np.array([iou(m, g) for m, g in zip(masks, gt)])
                    rows.append((domain, noise, name, scores.mean(), np.median(scores), scores.min(), rate))
    print(f"{'domain':8s} {'kp noise':>8s}  {'method':20s} {'mean IoU':>8s} {'median':>8s} {'min':>6s} {'masks/s':>8s}")
    for domain, noise, name, mean, med, lo, rate in rows:
        print(f"{domain:8s} {noise:6.1f}px  {name:20s} {mean:8.3f} {med:8.3f} {lo:6.3f} {rate:8.1f}")
    print(f"({args.num} samples per row, 256x256 crops of 640x480 synth frames)")


if __name__ == "__main__":
    main()
