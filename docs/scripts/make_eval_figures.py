"""Make the README's evaluation figures from synthetic data, with the real commands.

    $ python docs/scripts/make_eval_figures.py [--out docs/images] [--keep WORKDIR]

* ``render_example.png``: ``handtools render`` panels (input | mesh | skeleton |
  side | top) of two samples.
* ``pck_example.png``: ``handtools evaluate --plot`` with ``--compare``: the
  3D PCK curves of two runs in one plot.

There is no trained model here: the "predictions" are the ground truth of
``handtools synth`` perturbed on purpose. The hand model is re-posed with noise
on its MANO pose (radians), shape and translation (metres), so the errors look
like a network's (articulation, scale, depth) rather than jitter. Captions must
say so.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from handtools.core.hand.model import HandModel  # noqa: E402
from handtools.io.shards import ShardReader, ShardWriter  # noqa: E402

#: The two perturbed "runs": (label, pose noise rad, shape noise, translation noise m, seed).
RUNS = (
    ("GT + small perturbation", 0.06, 0.3, 0.004, 1),
    ("GT + large perturbation", 0.15, 1.0, 0.012, 2),
)


def handtools(*args: str) -> str:
    """Run one handtools command as a user would; returns its stdout."""
    p = subprocess.run([sys.executable, "-m", "handtools", *args], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"handtools {args[0]} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def perturbed_predictions(gt: Path, out_dir: Path, pose_sigma: float, shape_sigma: float, trans_sigma: float,
                          seed: int) -> Path:
    """A predictions shard: the ground truth re-posed with Gaussian noise on pose, shape, translation."""
    rng = np.random.default_rng(seed)
    model = HandModel.from_path(None)
    with ShardReader(gt) as r:
        pose, shape = r.read("mano/pose"), r.read("mano/shape")  # (N, 48), (N, 10)
        trans = r.read("synth/trans")  # (N, 3) metres
        pose = pose + rng.normal(scale=pose_sigma, size=pose.shape).astype(np.float32)
        shape = shape + rng.normal(scale=shape_sigma, size=shape.shape).astype(np.float32)
        trans = trans + rng.normal(scale=trans_sigma, size=trans.shape).astype(np.float32)
        with torch.no_grad():
            hand = model(torch.as_tensor(pose), torch.as_tensor(shape), trans=torch.as_tensor(trans))
        with ShardWriter(out_dir, kind="predictions", num_views=r.num_views, producer="make_eval_figures",
                         history=r.history, name=lambda k: "pred.h5", overwrite=True) as w:
            w.append({"pred/joints3d": hand.joints.numpy(), "pred/verts3d": hand.verts.numpy(),
                      "pred/pose": pose, "pred/shape": shape, "pred/trans": trans}, copy_from=r)
    return out_dir / "pred.h5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    ap.add_argument("-n", type=int, default=64, help="synthetic samples")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="handtools-figs-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        gt = Path(handtools("synth", "--domain", "indoor", "-n", str(args.n), "--image-size", "224x224",
                            "--focal", "420", "--seed", "11", "--out", str(work / "gt"), "--overwrite").split()[0])
        preds = [perturbed_predictions(gt, work / f"run{k}", *run[1:]) for k, run in enumerate(RUNS)]

        first = work / "run0.json"
        first.write_text(handtools("evaluate", "--label", RUNS[0][0], str(preds[0])))
        report = handtools("evaluate", "--label", RUNS[1][0], str(preds[1]), "--plot", str(args.out / "pck_example.png"),
                           "--compare", str(first), "--overwrite")
        print(f"wrote {args.out / 'pck_example.png'}; {RUNS[1][0]}: {report[:120]}...")

        vis = work / "vis"
        handtools("render", str(preds[0]), "--out", str(vis), "--every", "5", "--max", "2", "--overwrite")
        strips = [cv2.imread(str(p)) for p in sorted(vis.glob("*.png"))]
        cv2.imwrite(str(args.out / "render_example.png"), np.concatenate(strips, axis=0))
        print(f"wrote {args.out / 'render_example.png'}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
