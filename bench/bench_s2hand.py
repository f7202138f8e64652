"""S2HAND (selfsup-mono) on this CPU: (a) the objective, fitted per sample; (b) the method, trained.

(a) ``--part fit``: synthetic indoor frames (``synth``) -> ``detect`` (MediaPipe: real
detector noise) -> ``crop``; for each crop the S2HAND objective is minimised over the
MANO codes, texture and light directly (no network), from the network's mean-hand start.
Printed: PA-MPJPE (mm) against the ground truth and the 2D error (px) of the projected
joints against the projected ground truth, next to the detector's own 2D error (the
noise level), with the geometric + regularisation terms only and with the photometric
terms (pixel, SSIM through the rendered silhouette) on.

(b) ``--part train``: ``selfsup-mono --preset cpu`` on detected synthetic crops, 3 seeds;
held-out PA-MPJPE of the trained network vs the untrained network and the mean pose.

Ground truth is read here only to score; training and fitting never see it.

    $ nice -n 10 python bench/bench_s2hand.py --part fit -n 16
    $ nice -n 10 python bench/bench_s2hand.py --part train --seeds 0 1 2
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
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.eval.errors import pa_mpjpe  # noqa: E402
from handtools.core.methods.s2hand import S2HandLoss, S2HandNet, mano_hand  # noqa: E402
from handtools.core.render import Renderer  # noqa: E402
from handtools.io.shards import ShardReader  # noqa: E402

H = f"{sys.executable} -m handtools"


def sh(cmd: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"{cmd} failed:\n{p.stderr}")
    return p.stdout.split()


def make_crops(root: Path, n: int, seed: int, size: int) -> list[str]:
    return sh(f"{H} -q synth -n {n} --domain indoor --image-size 320x240 --seed {seed} --out {root}/f"
              f" | {H} -q detect --out {root}/d | {H} -q crop --size {size} --center bbox --out {root}/c")


def load(paths):
    out = {k: [] for k in ("images", "K", "keypoints2d", "joints3d")}
    for p in paths:
        with ShardReader(p) as r:
            for k in out:
                out[k].append(r.read(k))
    return {k: np.concatenate(v) for k, v in out.items()}


def project(X, K):
    uv = np.einsum("bij,bnj->bni", K, X)
    return uv[..., :2] / uv[..., 2:]


def fit(data, losses, steps, lr, hand, renderer):
    """Per-sample S2HAND fit; returns predicted joints (B, 21, 3) and their projections."""
    img = torch.from_numpy(data["images"][:, 0]).permute(0, 3, 1, 2).float() / 255
    K = torch.from_numpy(data["K"][:, 0]).float()
    kp = torch.from_numpy(data["keypoints2d"][:, 0]).float()
    batch = {"image": img, "K": K, "keypoints": kp[..., :2], "conf": kp[..., 2].clamp(0, 1)}
    with torch.no_grad():  # the network's starting point: the mean hand at the crop centre
        start = S2HandNet("resnet18", img.shape[-1]).eval()
        for m in (start.f_pose, start.f_shape, start.f_trans, start.f_rot, start.f_scale, start.f_tex, start.f_light):
            torch.nn.init.zeros_(m[-1].weight)
        codes0 = start(img, K)
    codes = {k: v.detach().clone().requires_grad_(True) for k, v in codes0.items()}
    crit = S2HandLoss(hand, renderer, enabled=losses)
    opt = torch.optim.Adam(codes.values(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        terms, _ = crit.terms(codes, batch)
        crit.total(terms).backward()
        opt.step()
        with torch.no_grad():
            codes["texture"].clamp_(0, 1)
            codes["scale"].clamp_(min=0.5)  # the network's scale is |1 + s_raw| > 0; a free one could mirror the hand
    with torch.no_grad():
        _, h = crit.terms(codes, batch)
        _, h0 = crit.terms(codes0, batch)
    return h["joints"].numpy(), h0["joints"].numpy()


def part_fit(args):
    hand, renderer = mano_hand(), Renderer("torch")
    with tempfile.TemporaryDirectory() as tmp:
        data = load(make_crops(Path(tmp), args.n, args.seed, args.size))
    K, gt = data["K"][:, 0], data["joints3d"]
    gt2d = project(gt, K)
    det_err = np.linalg.norm(data["keypoints2d"][:, 0, :, :2] - gt2d, axis=-1).mean()
    rows = []
    geo = ("loc", "ori", "shape", "texture", "scale", "angle")
    for name, losses in (("E_geo + E_regu", geo), ("+ E_photo (pixel, SSIM)", geo + ("pixel", "ssim"))):
        t1 = time.time()
        j, j0 = fit(data, losses, args.steps, args.lr, hand, renderer)
        e2d = np.linalg.norm(project(j, K) - gt2d, axis=-1).mean()
        rows.append((name, pa_mpjpe(j0, gt).mean() * 1000, pa_mpjpe(j, gt).mean() * 1000,
                     np.linalg.norm(project(j0, K) - gt2d, axis=-1).mean(), e2d, time.time() - t1))
    print(f"\n(a) per-sample fit of the S2HAND objective: {len(gt)} of {args.n} synthetic indoor frames kept by detect "
          f"(seed {args.seed}), {args.size}px crops, Adam lr {args.lr}, {args.steps} steps; 2-core shared CPU")
    print(f"detector 2D error vs projected ground truth (the noise level): {det_err:.2f} px")
    print(f"{'objective':<26}{'PA-MPJPE start':>16}{'PA-MPJPE fit':>14}{'2D err start':>14}{'2D err fit':>12}{'s':>7}")
    for r in rows:
        print(f"{r[0]:<26}{r[1]:>13.1f} mm{r[2]:>11.1f} mm{r[3]:>11.2f} px{r[4]:>9.2f} px{r[5]:>7.0f}")


def part_train(args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = make_crops(tmp / "tr", args.n_train, 100, args.size)
        test = make_crops(tmp / "te", args.n_test, 200, args.size)
        gt = load(test)["joints3d"]
        for seed in args.seeds:
            out = tmp / f"m{seed}.pt"
            sh(f"{H} -q selfsup-mono --preset cpu --epochs {args.epochs} --seed {seed} --out {out} {' '.join(train)}")
            res = {}
            for tag, ck in (("trained", out),):
                pred = sh(f"{H} -q predict -c {ck} --out {tmp}/p{seed}{tag} {' '.join(test)}")
                j = np.concatenate([ShardReader(p).read("pred/joints3d") for p in pred])
                res[tag] = pa_mpjpe(j, gt).mean() * 1000
            sh(f"{H} -q selfsup-mono --preset cpu --epochs 1 --lr 1e-12 --seed {seed} --out {tmp}/u{seed}.pt {' '.join(train)}")
            pred = sh(f"{H} -q predict -c {tmp}/u{seed}.pt --out {tmp}/pu{seed} {' '.join(test)}")
            j = np.concatenate([ShardReader(p).read("pred/joints3d") for p in pred])
            res["untrained"] = pa_mpjpe(j, gt).mean() * 1000
            rows.append(res)
        hand = mano_hand()
        with torch.no_grad():
            z = torch.zeros(1, 33)
            mean = hand(z, torch.zeros(1, 10)).joints.numpy().repeat(len(gt), 0)
        res_mean = pa_mpjpe(mean, gt).mean() * 1000
    print(f"\n(b) selfsup-mono --preset cpu, {args.epochs} epochs on {len(train)} shard(s) of detected synthetic indoor "
          f"crops ({args.n_train} frames), held-out {len(gt)} frames, seeds {args.seeds}; 2-core shared CPU")
    for k in ("trained", "untrained"):
        v = np.array([r[k] for r in rows])
        print(f"{k:<12} PA-MPJPE {v.mean():6.1f} +- {v.std():.1f} mm  ({', '.join(f'{x:.1f}' for x in v)})")
    print(f"{'mean pose':<12} PA-MPJPE {res_mean:6.1f} mm")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("fit", "train"), default="fit")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    (part_fit if args.part == "fit" else part_train)(args)


if __name__ == "__main__":
    main()
