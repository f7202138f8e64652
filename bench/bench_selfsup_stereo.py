"""Tables 1 and 2 of the binocular self-supervised paper (Chen et al., ICCV 2021) on synthetic data.

    $ python bench/bench_selfsup_stereo.py --preset cpu            # <= 30 min on a 2-core CPU
    $ python bench/bench_selfsup_stereo.py --preset paper --device cuda
    $ python bench/bench_selfsup_stereo.py --preset cpu --prior prior.pt --no-ablation

Source domain ``synth --domain studio`` (the FreiHAND stand-in) trains the prior
(``handtools pretrain``); target domain ``synth --views 2 --domain indoor`` (the STB
stand-in, rectified pairs, f = 411 px at 320x240 and b = 12 cm by default) gives
unlabelled training pairs (``crop | mask``) and a held-out test set. Every number comes
from the CLI exactly as a user runs it and from ``handtools evaluate``'s JSON:

* Table 1: test-directly (the prior on both views, depth from disparity:
  ``predict --mode binocular``), self-supervised binocular (``selfsup-stereo``) and
  self-supervised monocular (``selfsup-stereo --z-head``, ``predict --mode monocular``,
  root-relative). Binocular rows report absolute ``mpjpe_mm`` / ``pck_auc``, and their
  root-relative ``rr_mpjpe_mm`` too; monocular rows are root-relative only.
* Table 2: self-supervised binocular with each loss removed (``--no-<loss>``).

Ground truth is used only to place the crop windows (``crop --center gt``, as the paper
does on STB, supplementary §3) and by ``evaluate``; ``selfsup-stereo`` reads images, K,
baseline and skin masks only. Prior settings are options (``--prior-*``) so the bench
follows whatever ``pretrain`` recipe is current; ``--prior`` reuses a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("photo", "edge", "laplacian", "mask", "chamfer", "normal")

PRESETS = {
    # 64 px crops, ResNet-18, small sets: the whole run fits in ~30 min on 2 CPU cores.
    "cpu": dict(size=64, encoder="resnet18", n_studio=800, n_indoor=128, n_test=64, image_size="320x240", focal=411.0,
                prior_epochs=8, prior_batch=8, prior_lr=1e-3, prior_milestones="",
                ss_epochs=2, ss_batch=4, ss_lr=1e-4, ss_milestones="", device="cpu"),
    # the paper: 256 px crops, ResNet-50, pretrain batch 32 / 25 epochs / decay after 17, 21
    # (lr 1e-5 there for FreiHAND's 130k images; 1e-4 for our smaller synthetic set),
    # self-supervised batch 4, lr 1e-5, 13 epochs, decay after 8 and 10.
    "paper": dict(size=256, encoder="resnet50", n_studio=20000, n_indoor=2000, n_test=500, image_size="640x480",
                  focal=822.79, prior_epochs=25, prior_batch=32, prior_lr=1e-4, prior_milestones="17,21",
                  ss_epochs=13, ss_batch=4, ss_lr=1e-5, ss_milestones="8,10", device="auto"),
}


def sh(cmd: str, log: Path) -> str:
    """Run a shell pipeline with the repo importable; return stdout, fail loudly."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.time()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as f:
        f.write(f"$ {cmd}\n# {time.time() - t:.1f} s, rc {p.returncode}\n{p.stderr[-4000:]}\n")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {cmd}\n{p.stderr[-3000:]}")
    return p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--work", type=Path, default=Path("bench_selfsup_stereo_work"), help="working folder (kept)")
    ap.add_argument("--prior", type=Path, help="reuse this pretrain checkpoint (skips the studio data and pretrain)")
    ap.add_argument("--no-ablation", dest="ablation", action="store_false", help="Table 1 only")
    ap.add_argument("--no-mono", dest="mono", action="store_false", help="skip the --z-head monocular row")
    ap.add_argument("--ablate", nargs="+", choices=LOSSES, default=list(LOSSES), help="losses to remove in Table 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    for k, v in PRESETS["cpu"].items():  # every preset value can be overridden: --size 96, --ss-lr 1e-5 ...
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None)
    args = ap.parse_args()
    cfg = dict(PRESETS[args.preset], **{k: getattr(args, k) for k in PRESETS["cpu"] if getattr(args, k) is not None})
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    h = f"{shlex.quote(sys.executable)} -m handtools -q"
    dev = f"--device {cfg['device']}"
    S, t0 = cfg["size"], time.time()
    timings: dict[str, float] = {}

    def step(name, fn):
        t = time.time()
        out = fn()
        timings[name] = time.time() - t
        print(f"[{time.time() - t0:7.1f} s] {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)
        return out

    # ---------------------------------------------------------------- data and prior
    prior = args.prior.resolve() if args.prior else work / "prior.pt"
    if not args.prior and not prior.exists():
        step("studio data", lambda: sh(
            f"{h} synth --domain studio -n {cfg['n_studio']} --image-size {cfg['image_size']} --seed {args.seed}"
            f" --out {work}/studio_frames | {h} crop --size {S} --center gt --out {work}/studio_crops", log))
        step("pretrain", lambda: sh(
            f"{h} pretrain {work}/studio_crops --encoder {cfg['encoder']} --epochs {cfg['prior_epochs']}"
            f" --batch-size {cfg['prior_batch']} --lr {cfg['prior_lr']} --milestones '{cfg['prior_milestones']}'"
            f" --seed {args.seed} {dev} --out {prior}", log))
    for name, n, seed in (("train", cfg["n_indoor"], args.seed + 101), ("test", cfg["n_test"], args.seed + 202)):
        if not (work / f"{name}_masked").exists():
            step(f"indoor {name} data", lambda n=n, seed=seed, name=name: sh(
                f"{h} synth --views 2 --domain indoor -n {n} --image-size {cfg['image_size']} --focal {cfg['focal']}"
                f" --seed {seed} --out {work}/{name}_frames | {h} crop --size {S} --center gt --out {work}/{name}_crops"
                f" | {h} mask --out {work}/{name}_masked", log))

    def evaluate(ckpt: Path, tag: str, mode: str) -> dict:
        pred = work / f"pred_{tag}"
        out = sh(f"{h} predict -c {ckpt} --mode {mode} {dev} --overwrite --out {pred} {work}/test_crops"
                 f" | {h} evaluate", log)
        return json.loads(out)

    def adapt(tag: str, flags: str = "") -> Path:
        ckpt = work / f"{tag}.pt"
        if not ckpt.exists():
            sh(f"{h} selfsup-stereo --init {prior} {work}/train_masked --epochs {cfg['ss_epochs']}"
               f" --batch-size {cfg['ss_batch']} --lr {cfg['ss_lr']} --milestones '{cfg['ss_milestones']}'"
               f" --seed {args.seed} {dev} {flags} --out {ckpt}", log)
        return ckpt

    rows: list[dict] = []

    def row(table, name, ckpt, mode, rr_only=False):
        m = step(f"{table}: {name}", lambda: evaluate(ckpt, name.replace(" ", "_").replace("(", "").replace(")", ""), mode))
        r = {"table": table, "model": name, "rr_mpjpe_mm": m["rr_mpjpe_mm"], "rr_pck_auc": m["rr_pck_auc"]}
        if not rr_only:
            r.update(mpjpe_mm=m["mpjpe_mm"], pck_auc=m["pck_auc"])
        rows.append(r)

    # ---------------------------------------------------------------- Table 1
    row("1", "test-directly (binocular)", prior, "binocular")
    row("1", "test-directly (monocular)", prior, "monocular", rr_only=True)
    full = step("selfsup binocular", lambda: adapt("selfsup_full"))
    row("1", "self-supervised (binocular)", full, "binocular")
    if args.mono:
        mono = step("selfsup monocular", lambda: adapt("selfsup_zhead", "--z-head"))
        row("1", "self-supervised (monocular)", mono, "monocular", rr_only=True)
    # ---------------------------------------------------------------- Table 2
    if args.ablation:
        for loss in args.ablate:
            ck = step(f"selfsup --no-{loss}", lambda loss=loss: adapt(f"selfsup_no_{loss}", f"--no-{loss}"))
            row("2", f"w/o {loss}", ck, "binocular")

    # ---------------------------------------------------------------- report
    import torch

    machine = (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch {torch.__version__}, "
               f"device {cfg['device']}" + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available()
                                            and cfg["device"] != "cpu" else ""))
    print(f"\nselfsup-stereo bench, preset {args.preset}: {machine}")
    print("config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + f", total {time.time() - t0:.0f} s\n")
    print("| table | model | MPJPE abs (mm) | PCK AUC abs | MPJPE root-rel (mm) | PCK AUC root-rel |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        a = (f"{r['mpjpe_mm']:.2f} | {r['pck_auc']:.3f}") if "mpjpe_mm" in r else "– | –"
        print(f"| {r['table']} | {r['model']} | {a} | {r['rr_mpjpe_mm']:.2f} | {r['rr_pck_auc']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "config": cfg, "machine": machine, "rows": rows,
                                         "timings_s": timings}, indent=1))


if __name__ == "__main__":
    main()
