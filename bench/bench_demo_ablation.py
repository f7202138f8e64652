"""The binocular paper's Tables 1 and 2 on the demo's data, over several adaptation seeds.

Runs ``handtools demo`` (default preset) into ``--work`` unless it is there already,
then re-runs its ``selfsup-stereo`` step (same prior, same label-free training pairs)
with each loss removed, plus a zero-loss control (BatchNorm statistics only) and a
supervised oracle (the same prior fine-tuned with the indoor pairs' 3D labels, same
epochs and lr), once per ``--seeds`` value; predicts the demo's held-out indoor pairs
and prints mean ± standard deviation over the seeds of absolute, root-relative and
Procrustes-aligned MPJPE and PCK AUC. A peer: MediaPipe Hands' 3D world landmarks on
the left frames of the same held-out pairs (root-relative and Procrustes-aligned only:
MediaPipe gives no absolute depth).

The seeds vary the adaptation (initial data order, augmentation-free); the prior and the
data are the demo's (seed 0), so the spread is the adaptation's, not the prior's.

    python bench/bench_demo_ablation.py --work /tmp/demo-bench
    python bench/bench_demo_ablation.py --work demo-out --only "full (paper)" "no photo" --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's handtools (oracle, peer)
from run_all import machine_info  # noqa: E402

# Every run adapts as the demo does (--z-head: bounded per-vertex offsets from the z head);
# "u, v only" is the paper's binocular model (per-vertex disparity, bounded).
RUNS = {
    "full (paper losses)": [],
    "no photo": ["--no-photo"],
    "no edge": ["--no-edge"],
    # control: zero loss, so only BatchNorm's running statistics adapt to the indoor images
    "BatchNorm statistics only": ["--no-edge", "--no-laplacian", "--no-mask", "--no-chamfer", "--no-normal",
                                  "--no-depth", "--weight", "photo=0"],
    "oracle (3D labels)": None,  # supervised fine-tuning, see oracle()
    "no laplacian": ["--no-laplacian"],
    "no mask": ["--no-mask"],
    "no chamfer": ["--no-chamfer"],
    "no normal": ["--no-normal"],
    "u, v only (no z head)": ["--no-z-head"],
}
KEYS = (("mpjpe_mm", "abs MPJPE"), ("rr_mpjpe_mm", "rr MPJPE"), ("pa_mpjpe_mm", "PA-MPJPE"), ("pck_auc", "PCK AUC"))


def ht(*args) -> str:
    p = subprocess.run([sys.executable, "-m", "handtools", "-q", *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"handtools {' '.join(map(str, args[:2]))} failed:\n{p.stderr}")
    return p.stdout


def oracle(prior: Path, train: list[Path], out: Path, epochs: int, lr: float, seed: int, batch: int = 16) -> None:
    """The prior fine-tuned with the indoor training pairs' ground-truth meshes (both views),
    its pretraining loss, Adam, the adaptation's epochs and lr: the supervised upper bound."""
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.learning.nets.prior import build_prior
    from handtools.core.methods.prior.loss import PriorLoss
    from handtools.io.training_data import CropViewDataset

    torch.manual_seed(seed)
    ck = torch.load(prior, map_location="cpu", weights_only=False)
    hand = HandModel.from_path(None)
    net = build_prior(ck["meta"]["net"], J_regressor=hand.joint_regressor)
    net.load_state_dict(ck["model"])
    data = CropViewDataset(train, ground_truth=True)
    loss_fn = PriorLoss(hand.faces, hand.joint_regressor, data.image_size, net.config["depth_range"])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for b in torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, generator=gen, drop_last=True):
            loss, _ = loss_fn(net, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(ck, model=net.state_dict(), meta=dict(ck["meta"], oracle=True)), out)


def mediapipe_peer(test_frames: list[Path]) -> dict | None:
    """MediaPipe's world landmarks (view 0 of each held-out pair it finds) against the ground truth."""
    try:
        from handtools.core.eval.metrics import compute_metrics
        from handtools.core.perception.detector import HandDetector, select_hands
        from handtools.io.shards import ShardReader
    except ImportError:
        return None
    pred, gt = [], []
    with HandDetector(max_hands=2, flip_check=False) as det:
        for p in test_frames:
            with ShardReader(p) as r:
                images, joints = r.read("images"), r.read("joints3d")  # (N, V, H, W, 3), (N, 21, 3) view-0 frame
            for img, j in zip(images[:, 0], joints):
                dets = det.detect(img)
                if not dets:
                    continue
                pred.append(select_hands(dets, 1, "largest")[0].keypoints_world.astype(np.float64))
                gt.append(j.astype(np.float64))
    if not pred:
        return None
    m = compute_metrics(np.stack(pred), np.stack(gt))
    return {"num_samples": len(pred), **m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("demo-bench"), help="demo folder (made if missing)")
    ap.add_argument("--epochs", type=int, default=8, help="selfsup-stereo epochs (the demo's)")
    ap.add_argument("--lr", type=float, default=1e-4, help="selfsup-stereo lr (the demo's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="adaptation seeds")
    ap.add_argument("--only", nargs="*", help="run names to run (default: all)")
    ap.add_argument("--one-seed", nargs="*", default=[], help="run names to run with the first seed only")
    ap.add_argument("--no-peer", action="store_true", help="skip MediaPipe's world landmarks")
    args = ap.parse_args()
    torch_threads = os.environ.get("OMP_NUM_THREADS", "default")
    w = args.work
    t0 = time.perf_counter()
    if not (w / "prior.pt").exists():
        ht("demo", "--out", w, "--overwrite")
    train = sorted((w / "indoor" / "train").glob("*.h5"))
    test = sorted((w / "indoor" / "test").glob("*.h5"))
    rows: list[tuple[str, list[dict]]] = []
    before = json.loads(ht("evaluate", *sorted((w / "pred-before").glob("*.h5"))))
    rows.append(("test directly (prior, binocular)", [before]))
    for name, flags in RUNS.items():
        if args.only and name not in args.only:
            continue
        tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        runs = []
        for seed in args.seeds[:1] if name in args.one_seed else args.seeds:
            ck = w / "ablation" / f"{tag}-s{seed}.pt"
            pred = w / "ablation" / f"pred-{tag}-s{seed}"
            if ck.exists() and sorted(pred.glob("*.h5")):  # done by an earlier (interrupted) run
                runs.append(json.loads(ht("evaluate", *sorted(pred.glob("*.h5")))))
                continue
            if flags is None:
                oracle(w / "prior.pt", train, ck, args.epochs, args.lr, seed)
                mode = ["--mode", "binocular"]
            elif not flags and seed == 0 and args.epochs == 8 and args.lr == 1e-4 and (w / "adapted.pt").exists():
                ck, mode = w / "adapted.pt", []  # the demo's own adaptation (same settings, seed 0)
            else:
                z = [] if "--no-z-head" in flags else ["--z-head"]
                ht("selfsup-stereo", "--init", w / "prior.pt", *train, "--epochs", args.epochs, "--lr", args.lr,
                   "--milestones", "", "--seed", seed, *z, *[f for f in flags if f != "--no-z-head"],
                   "--out", ck, "--overwrite")
                mode = []
            ht("predict", "-c", ck, *mode, "--out", pred, "--overwrite", *test)
            runs.append(json.loads(ht("evaluate", *sorted(pred.glob("*.h5")))))
            print(f"  {name} seed {seed}: " + ", ".join(f"{k} {runs[-1][k]:.3f}" for k, _ in KEYS),
                  file=sys.stderr, flush=True)
        rows.append((name, runs))
        table(rows, None, sys.stderr)  # so far, in case the run is cut short
    peer = None if args.no_peer else mediapipe_peer(sorted((w / "indoor" / "test-det").glob("*.h5")))
    print(machine_info())
    print(f"held-out indoor stereo pairs: {rows[0][1][0]['num_samples']} (crops from MediaPipe detections); "
          f"selfsup-stereo {args.epochs} epochs, lr {args.lr:g}; seeds {' '.join(map(str, args.seeds))} "
          f"(mean ± std over seeds, population std); OMP_NUM_THREADS={torch_threads}")
    table(rows, peer, sys.stdout)
    print(f"wall time {time.perf_counter() - t0:.0f} s")


def table(rows, peer, file) -> None:
    print(f"{'run':<34}" + "".join(f"{label + (' (mm)' if k != 'pck_auc' else ''):>20}" for k, label in KEYS)
          + "   seeds", file=file)
    for name, runs in rows:
        cells = []
        for k, _ in KEYS:
            v = np.array([r[k] for r in runs])
            fmt = ".3f" if k == "pck_auc" else ".1f"
            cells.append(f"{v.mean():{fmt}} ± {v.std():{fmt}}" if len(v) > 1 else f"{v.mean():{fmt}}")
        print(f"{name:<34}" + "".join(f"{c:>20}" for c in cells) + f"   {len(runs)}", file=file)
    if peer is not None:
        print(f"{'MediaPipe world landmarks':<34}{'-':>20}{peer['rr_mpjpe_mm']:>20.1f}{peer['pa_mpjpe_mm']:>20.1f}"
              f"{'-':>20}   ({peer['num_samples']} left frames it found)", file=file, flush=True)


if __name__ == "__main__":
    main()
