"""Where the error of a set of predictions sits: the hand's place, its size, and which joints.

Reads prediction shards (``handtools predict`` output: ``pred/joints3d`` next to the
ground-truth ``joints3d``, both (N, 21, 3) metres in the camera frame of view 0) and
prints, per folder, one block:

* absolute, root-relative (wrist) and centroid-relative MPJPE, mm;
* the hand centroid's error: mean |error| and mean (bias) per axis x, y, z, mm
  (camera axes: x right, y down, z forward);
* the wrist's error relative to the hand centroid (mean |error| and bias per axis): a
  root-relative error far above the centroid-relative one means a misplaced wrist;
* the centroid-relative error per joint (FreiHAND order: wrist, then thumb, index,
  middle, ring, little from base to tip), mm;
* the size ratio: mean distance of the joints from their centroid, predicted / true.

Used for docs/selfsup-stereo.md ("Mask term"), on ``bench_demo_ablation.py``'s folders:

    python bench/diag_predictions.py /tmp/demo-bench/seed0/pred-before \\
        /tmp/demo-bench/seed0/ablation/pred-*
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's handtools
from handtools.core.eval.errors import point_errors  # noqa: E402
from handtools.core.eval.metrics import compute_metrics  # noqa: E402
from handtools.errors import InputError  # noqa: E402
from handtools.io.evaluation import read_pooled  # noqa: E402


def load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pred, truth) joints of every shard in ``folder``, (N, 21, 3) metres each."""
    shards = sorted(folder.glob("*.h5"))
    if not shards:
        raise SystemExit(f"{folder}: no .h5 prediction shards")
    try:
        data, _ = read_pooled(shards, require=["pred/joints3d", "joints3d"])
    except InputError as exc:
        raise SystemExit(f"{folder}: {exc}") from None
    return data["pred/joints3d"].astype(np.float64), data["joints3d"].astype(np.float64)


def report(name: str, pred: np.ndarray, true: np.ndarray) -> str:
    mm = 1000.0
    metrics = compute_metrics(pred, true, selected=["mpjpe_mm", "rr_mpjpe_mm"])  # as handtools evaluate
    cp, ct = pred.mean(1, keepdims=True), true.mean(1, keepdims=True)  # (N, 1, 3) centroids
    rel_p, rel_t = pred - cp, true - ct
    centroid = (cp - ct)[:, 0] * mm  # (N, 3)
    wrist = (rel_p[:, 0] - rel_t[:, 0]) * mm  # (N, 3)
    per_joint = point_errors(rel_p, rel_t).mean(0) * mm  # (21,)
    size = np.linalg.norm(rel_p, axis=-1).mean(1) / np.linalg.norm(rel_t, axis=-1).mean(1)
    fmt = lambda v: " ".join(f"{x:+6.1f}" for x in v)  # noqa: E731
    fmt_abs = lambda v: " ".join(f"{x:6.1f}" for x in v)  # noqa: E731
    lines = [
        f"{name}  ({len(pred)} samples)",
        f"  MPJPE mm: absolute {metrics['mpjpe_mm']:.1f}, root-relative {metrics['rr_mpjpe_mm']:.1f}, "
        f"centroid-relative {per_joint.mean():.1f}",
        f"  centroid error x y z mm: mean |.| {fmt_abs(np.abs(centroid).mean(0))}   bias {fmt(centroid.mean(0))}",
        f"  wrist - centroid error x y z mm: mean |.| {fmt_abs(np.abs(wrist).mean(0))}   bias {fmt(wrist.mean(0))}",
        "  per joint, centroid-relative mm: " + " ".join(f"{x:.0f}" for x in per_joint),
        f"  size ratio (pred / true): {size.mean():.3f} ± {size.std():.3f}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="prediction folders (handtools predict --out)")
    args = ap.parse_args()
    for folder in args.folders:
        print(report(str(folder), *load(folder)))


if __name__ == "__main__":
    main()
