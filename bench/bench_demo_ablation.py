"""The binocular paper's Tables 1 and 2 on the demo's data, over several adaptation seeds.

For each seed, runs ``handtools demo --seed S`` (default preset: the shipped prior, its own
synthesised indoor pairs, detections, crops, masks and adaptation seed) into
``--work/seedS`` unless it is there already, then re-runs its ``selfsup-stereo`` step
(same prior, same label-free training pairs, same seed) with each loss removed, plus a zero-loss control (BatchNorm statistics only) and a
supervised oracle (the same prior fine-tuned with the indoor pairs' 3D labels, same
epochs and lr), once per ``--seeds`` value; predicts the demo's held-out indoor pairs
and prints mean ± standard deviation over the seeds of absolute, root-relative and
Procrustes-aligned MPJPE and PCK AUC. A peer: MediaPipe Hands' 3D world landmarks on
the left frames of the same held-out pairs (root-relative and Procrustes-aligned only:
MediaPipe gives no absolute depth), averaged over the seeds' test sets likewise.

The seeds vary the indoor data (training and held-out pairs), hence the detections,
crops and masks, and the adaptation's data order; the prior is the shipped one
(``--prior train``: each seed's demo pretrains its own), so the spread is the data's
and the adaptation's.

    python bench/bench_demo_ablation.py --work /tmp/demo-bench
    python bench/bench_demo_ablation.py --work /tmp/demo-bench --only "full (paper losses)" "no photo" --seeds 0 1 2
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
    # the baseline to beat: the prior's own starting point, the labelled set's mean hand, for
    # every image (its lixel heads' output convolutions zeroed), placed by stereo like the prior
    "mean hand (no image)": "mean",
    "no laplacian": ["--no-laplacian"],
    "no mask": ["--no-mask"],
    "no chamfer": ["--no-chamfer"],
    "no normal": ["--no-normal"],
    # the default until 2026-12-01: eq. 7 averaged over the crop's pixels, i.e. the sum at
    # 0.1 / (64 * 64) for the demo's 64 px crops (docs/selfsup-stereo.md, "Mask term")
    "mask term as a mean (until 2026-12-01)": ["--weight", "mask=2.44140625e-05"],
    "u, v only (no z head)": ["--no-z-head"],
    # the paper's own ablation (Table 2) on its own model: per-vertex depth from disparity,
    # where the edge loss is what keeps the mesh's edges (the z head does that above)
    "u, v only, no edge": ["--no-z-head", "--no-edge"],
    "u, v only, no photo": ["--no-z-head", "--no-photo"],
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
    from handtools.core.learning.checkpoints import load_checkpoint

    ck = load_checkpoint(prior, meta_keys=("kind", "net"))
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


def mean_hand(prior, out: Path) -> None:
    """The prior with its image-dependent residual switched off (``mean_hand_state``): it outputs
    the labelled set's mean hand (``HandPriorNet.init_mean``), whatever the image."""
    import torch

    from handtools.core.learning.checkpoints import load_checkpoint
    from handtools.core.learning.nets.prior import mean_hand_state

    ck = load_checkpoint(prior, meta_keys=("kind", "net"))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(ck, model=mean_hand_state(ck["model"])), out)


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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo seeds (data and adaptation)")
    ap.add_argument("--only", nargs="*", help="run names to run (default: all)")
    ap.add_argument("--one-seed", nargs="*", default=[], help="run names to run with the first seed only")
    ap.add_argument("--no-peer", action="store_true", help="skip MediaPipe's world landmarks")
    ap.add_argument("--prior", choices=("shipped", "train"), default="shipped", help="the demo's --prior")
    args = ap.parse_args()
    torch_threads = os.environ.get("OMP_NUM_THREADS", "default")
    t0 = time.perf_counter()
    names = [n for n in RUNS if not args.only or n in args.only]
    results: dict[str, list[dict]] = {"test directly (prior, binocular)": []}
    results.update({n: [] for n in names})
    peers = []
    reused = 0  # runs found finished in --work (their time is not in the wall time)
    for seed in args.seeds:
        w = args.work / f"seed{seed}"
        if not (w / "adapted.pt").exists():
            ht("demo", "--out", w, "--seed", seed, "--prior", args.prior, "--overwrite")
        else:
            reused += 1  # the demo itself
        prior = w / "prior.pt" if args.prior == "train" else "default"
        train = sorted((w / "indoor" / "train").glob("*.h5"))
        test = sorted((w / "indoor" / "test").glob("*.h5"))
        results["test directly (prior, binocular)"].append(
            json.loads(ht("evaluate", *sorted((w / "pred-before").glob("*.h5")))))
        for name in names:
            if name in args.one_seed and seed != args.seeds[0]:
                continue
            flags = RUNS[name]
            tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            ck = w / "ablation" / f"{tag}.pt"
            pred = w / "ablation" / f"pred-{tag}"
            if ck.exists() and sorted(pred.glob("*.h5")):  # done by an earlier (interrupted) run
                results[name].append(json.loads(ht("evaluate", *sorted(pred.glob("*.h5")))))
                reused += 1
                continue
            if flags is None:
                oracle(prior, train, ck, args.epochs, args.lr, seed)
                mode = ["--mode", "binocular"]
            elif flags == "mean":
                mean_hand(prior, ck)
                mode = ["--mode", "binocular"]
            elif not flags and args.epochs == 8 and args.lr == 1e-4:
                ck, mode = w / "adapted.pt", []  # the demo's own adaptation (same settings and seed)
            else:
                z = [] if "--no-z-head" in flags else ["--z-head"]
                ht("selfsup-stereo", "--init", prior, *train, "--epochs", args.epochs, "--lr", args.lr,
                   "--milestones", "", "--seed", seed, *z, *[f for f in flags if f != "--no-z-head"],
                   "--out", ck, "--overwrite")
                mode = []
            ht("predict", "-c", ck, *mode, "--out", pred, "--overwrite", *test)
            results[name].append(json.loads(ht("evaluate", *sorted(pred.glob("*.h5")))))
            print(f"  {name} seed {seed}: " + ", ".join(f"{k} {results[name][-1][k]:.3f}" for k, _ in KEYS),
                  file=sys.stderr, flush=True)
        if not args.no_peer:
            peer = mediapipe_peer(sorted((w / "indoor" / "test-det").glob("*.h5")))
            if peer is not None:
                peers.append(peer)
        table(list(results.items()), None, sys.stderr)  # so far, in case the run is cut short
    print(machine_info())
    counts = [r["num_samples"] for r in results["test directly (prior, binocular)"]]
    print(f"held-out indoor stereo pairs per seed: {' '.join(map(str, counts))} (crops from MediaPipe detections); "
          f"prior: {args.prior}; selfsup-stereo {args.epochs} epochs, lr {args.lr:g}; seeds "
          f"{' '.join(map(str, args.seeds))} (mean ± std over seeds, population std); OMP_NUM_THREADS={torch_threads}")
    table(list(results.items()), peers, sys.stdout)
    print(f"wall time {time.perf_counter() - t0:.0f} s" + (f" ({reused} runs finished earlier in {args.work} reused, "
                                                          f"their time not included)" if reused else ""))


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
    if peer:
        rr, pa = (np.array([p[k] for p in peer]) for k in ("rr_mpjpe_mm", "pa_mpjpe_mm"))
        n = "+".join(str(p["num_samples"]) for p in peer)
        fmt = (lambda v: f"{v.mean():.1f} ± {v.std():.1f}") if len(peer) > 1 else (lambda v: f"{v.mean():.1f}")
        print(f"{'MediaPipe world landmarks':<34}{'-':>20}{fmt(rr):>20}{fmt(pa):>20}"
              f"{'-':>20}   {len(peer)} ({n} left frames it found)", file=file, flush=True)

if __name__ == "__main__":
    main()
