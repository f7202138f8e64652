"""Does the hand prior learn? Held-out accuracy of ``handtools pretrain`` on studio-domain data (issue 5).

    $ python bench/bench_prior.py --preset cpu                 # <= 15 min on a 2-core CPU
    $ python bench/bench_prior.py --preset paper --device cuda   # 256², ResNet-50, paper schedule
    $ python bench/bench_prior.py --preset cpu --n-train 3000 --epochs 6 --json prior.json

Runs exactly what a user runs, and scores it with ``handtools evaluate``'s JSON::

    handtools synth --domain studio -n N --seed 1 | handtools crop --center gt --size S   # train
    handtools synth --domain studio -n M --seed 2 | handtools crop --center gt --size S   # held out
    handtools pretrain --encoder E ... --out prior.pt  train-crops
    handtools predict -c prior.pt test-crops | handtools evaluate

and reports on the held-out set, root-relative (the prior predicts root-relative depth;
``predict`` places its wrist at the ground-truth wrist depth):

* ``untrained``: the same network, freshly initialised (seeded), no training step;
* ``mean pose``: the mean root-relative training mesh (``verts3d - joints3d[:, 0]`` in the
  camera frame of view 0, averaged over the training samples, joints likewise) placed at
  each test sample's ground-truth wrist. Studio frames are single-view, so every mesh is
  in its own camera frame and the average keeps the mean orientation w.r.t. the camera:
  the best constant root-relative prediction under L2, the baseline to beat;
* ``trained``: the pretrain checkpoint.

Columns: ``rr_mpjpe_mm``, ``pa_mpjpe_mm``, ``rr_pck_auc`` (0-50 mm) from ``evaluate``,
and the wall time of each step. The machine is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PRESETS = {
    # 64 px crops, ResNet-18, 1500 samples x 3 epochs, batch 8, Adam 1e-3 constant (the prior the
    # other CPU benches use). Measured on 2 cores: synth+crop 195 s, pretrain 875 s while other jobs
    # shared the CPU (5.5 images/s; 39 images/s when it had the cores to itself, ~2 min).
    "cpu": dict(size=64, encoder="resnet18", n_train=1500, n_test=200, image_size="320x240", epochs=3,
                batch_size=8, lr=1e-3, milestones="", gamma=0.1, device="cpu", workers=0, scales="1.4",
                focal=411.4),
    # The prior shipped in the package (handtools/data/prior_default.pt, what `handtools demo`
    # starts from): ResNet-10 at the demo's 64 px crops and 320x240 frames, 10000 studio frames
    # cropped at three scales around the ground-truth joints (so detection boxes of other sizes
    # are in range), 8 epochs with lr x0.1 after 5 and 7. `--export` writes it in float16.
    "shipped": dict(size=64, encoder="resnet10", n_train=10000, n_test=300, image_size="320x240", epochs=8,
                    batch_size=32, lr=1e-3, milestones="5,7", gamma=0.1, device="cpu", workers=0,
                    scales="1.25,1.45,1.7", focal=411.4),
    # The paper (supplementary §3): 256² crops, ResNet-50, batch 32, Adam 1e-5 (FreiHAND's
    # 130k images; 1e-4 for this smaller synthetic set), 25 epochs, x0.1 after 17 and 21.
    "paper": dict(size=256, encoder="resnet50", n_train=20000, n_test=1000, image_size="640x480", epochs=25,
                  batch_size=32, lr=1e-4, milestones="17,21", gamma=0.1, device="auto", workers=4, scales="1.4",
                  focal=822.8),
}
METRICS = ("rr_mpjpe_mm", "pa_mpjpe_mm", "rr_pck_auc")


def sh(cmd: list[str], log: Path, stdin: str | None = None) -> str:
    """Run one handtools command with the repo importable; return stdout, fail loudly."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full = [sys.executable, "-m", "handtools", *map(str, cmd)]
    t = time.time()
    p = subprocess.run(full, input=stdin, capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(full)}\n# {time.time() - t:.1f} s, rc {p.returncode}\n{p.stderr[-4000:]}\n")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(full)}\n{p.stderr[-3000:]}")
    return p.stdout


def untrained_checkpoint(cfg: dict, crops: list[str], out: Path, seed: int) -> None:
    """A prior checkpoint holding freshly initialised weights (what ``pretrain`` starts from)."""
    sys.path.insert(0, str(REPO))
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.learning.nets.prior import HandPriorNet
    from handtools.core.learning.checkpoints import CHECKPOINT_FORMAT, atomic_save

    hand = HandModel.from_path(None)
    torch.manual_seed(seed)  # pretrain seeds the same way before building its network
    net = HandPriorNet(cfg["encoder"], cfg["size"], with_z=True, J_regressor=hand.joint_regressor)
    meta = {"kind": "prior", "net": net.config, "hand_model": hand.identity, "train_shards": crops}
    atomic_save({"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "meta": meta, "finished": False}, out)


def mean_pose_predictions(train: list[str], test: list[str], out_dir: Path) -> list[str]:
    """Predictions shards of the mean-pose baseline for the test crops (see the module docs)."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from handtools.io.shards import ShardReader, ShardWriter, history_entry

    rel_v, rel_j, n = 0.0, 0.0, 0
    for p in train:
        with ShardReader(p, require=["verts3d", "joints3d"]) as r:
            v, j = r.read("verts3d").astype(np.float64), r.read("joints3d").astype(np.float64)
            rel_v = rel_v + (v - j[:, :1]).sum(0)  # (778, 3) root-relative, camera frame of view 0
            rel_j = rel_j + (j - j[:, :1]).sum(0)  # (21, 3)
            n += len(v)
    mean_v, mean_j = rel_v / n, rel_j / n
    paths = []
    for p in test:
        with ShardReader(p, require=["joints3d"]) as r:
            wrist = r.read("joints3d")[:, :1].astype(np.float64)  # (N, 1, 3) ground-truth wrist
            with ShardWriter(out_dir, kind="predictions", num_views=r.num_views, producer="bench_prior mean pose",
                             history=r.history + [history_entry("bench_prior mean pose", {"train_samples": n})],
                             shard_size=r.num_samples, name=lambda _, nm=r.path.name: nm, overwrite=True) as w:
                w.append({"pred/verts3d": (mean_v[None] + wrist).astype(np.float32),
                          "pred/joints3d": (mean_j[None] + wrist).astype(np.float32)}, copy_from=r, drop=["pred"])
        paths.append(str(out_dir / r.path.name))
    return paths


def export_shipped(ck: Path, dest: Path, cfg: dict, seed: int) -> None:
    """Write checkpoint ``ck`` as the package's prior: float16 tensors (half the size; loading casts
    them back to the network's float32), finished, and its provenance in ``meta`` instead of the
    training shards' local paths."""
    sys.path.insert(0, str(REPO))
    import torch

    from handtools.core.learning.checkpoints import atomic_save, load_checkpoint

    state = load_checkpoint(ck, meta_keys=("kind", "net"))
    model = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    meta = dict(state["meta"])
    meta["train_shards"] = []
    meta["provenance"] = (f"python bench/bench_prior.py --preset shipped --seed {seed} --export {dest.name} "
                          f"(config {json.dumps(cfg, sort_keys=True)}); torch {torch.__version__}")
    atomic_save({"format": state["format"], "model": model, "meta": meta, "finished": True}, dest)
    print(f"exported {dest} ({dest.stat().st_size / 1e6:.1f} MB)")


def evaluate(preds: list[str], log: Path) -> dict:
    res = json.loads(sh(["evaluate", *preds], log))
    return {k: res[k] for k in METRICS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--work", type=Path, default=Path("bench_prior_work"), help="working folder (kept; data reused)")
    ap.add_argument("--seed", type=int, default=0, help="network seed (data: train seed 1, test seed 2)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--reuse", action="store_true", help="score the prior.pt already in --work (no training)")
    ap.add_argument("--export", type=Path, help="write the trained prior here in float16 (the shipped prior: "
                    "handtools/data/prior_default.pt)")
    for k, v in PRESETS["cpu"].items():  # every preset value can be overridden: --size 96 --epochs 8 ...
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None)
    args = ap.parse_args()
    cfg = dict(PRESETS[args.preset], **{k: getattr(args, k) for k in PRESETS["cpu"] if getattr(args, k) is not None})
    work, log = args.work, args.work / "commands.log"
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    def timed(name, fn, *a):
        t = time.time()
        r = fn(*a)
        times[name] = times.get(name, 0.0) + time.time() - t
        return r

    def dataset(split: str, n: int, seed: int, domain: str = "studio", scales: str = "1.4") -> list[str]:
        tag = f"{split}-{domain}-n{n}-s{seed}-{cfg['image_size']}-f{cfg['focal']}-c{cfg['size']}-x{scales}"
        crops = work / "crops" / tag
        done = crops / "DONE"
        if done.exists():  # reuse data made by an earlier run with the same settings
            return sorted(str(p) for p in crops.rglob("*.h5"))
        frames = sh(["synth", "--domain", domain, "-n", n, "--seed", seed, "--image-size", cfg["image_size"],
                     "--focal", cfg["focal"], "--shard-size", 500, "--device", cfg["device"],
                     "--out", work / "frames" / tag, "--overwrite"], log)
        out = []
        for scale in scales.split(","):  # one crop of every frame per scale (windows of several sizes)
            out += sh(["crop", "--center", "gt", "--size", cfg["size"], "--scale", scale, "--out",
                       crops / f"scale{scale}", "--overwrite"], log, stdin=frames).split()
        done.write_text("ok\n")
        return sorted(out)

    train = timed("synth+crop", dataset, "train", cfg["n_train"], 1, "studio", cfg["scales"])
    test = timed("synth+crop", dataset, "test", cfg["n_test"], 2)
    test_indoor = timed("synth+crop", dataset, "test", cfg["n_test"], 3, "indoor")
    common = ["--device", cfg["device"]]

    rows = {}
    ck0 = work / "untrained.pt"
    untrained_checkpoint(cfg, train, ck0, args.seed)
    ck = work / "prior.pt"
    if not (args.reuse and ck.exists()):
        timed("pretrain", sh, ["pretrain", "--encoder", cfg["encoder"], "--epochs", cfg["epochs"],
                               "--batch-size", cfg["batch_size"], "--lr", cfg["lr"], "--milestones", cfg["milestones"],
                               "--gamma", cfg["gamma"], "--workers", cfg["workers"], "--seed", args.seed,
                               "--checkpoint-every", 500, "--out", ck, "--overwrite", *common, *train], log)
    for domain, shards in (("studio", test), ("indoor", test_indoor)):
        preds = sh(["predict", "-c", ck0, "--out", work / f"pred_untrained_{domain}", "--overwrite", *common,
                    *shards], log).split()
        rows[f"{domain}: untrained"] = evaluate(preds, log)
        rows[f"{domain}: mean pose"] = evaluate(mean_pose_predictions(train, shards, work / f"pred_mean_{domain}"), log)
        preds = timed("predict", sh, ["predict", "-c", ck, "--out", work / f"pred_trained_{domain}", "--overwrite",
                                      *common, *shards], log).split()
        rows[f"{domain}: trained"] = evaluate(preds, log)
    if args.export:
        export_shipped(ck, args.export, cfg, args.seed)

    import torch

    machine = (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch {torch.__version__}, "
               f"torch threads {torch.get_num_threads()}"
               + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    print(f"\nhand-prior bench, preset {args.preset}: {machine}")
    print("config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    print(f"held-out {cfg['n_test']} studio and {cfg['n_test']} indoor frames (crops around the true joints)")
    print(f"{'model':<20}" + "".join(f"{m:>14}" for m in METRICS))
    for name, r in rows.items():
        print(f"{name:<20}" + "".join(f"{r[m]:>14.3f}" if m.endswith("auc") else f"{r[m]:>14.1f}" for m in METRICS))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "config": cfg, "machine": machine, "rows": rows,
                                         "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
