"""S2HAND (selfsup-mono) on this CPU: (a) the objective, fitted per sample; (b) the method, trained.

(a) ``--part fit``: synthetic indoor frames (``synth``) -> ``detect`` (MediaPipe: real
detector noise) -> ``crop``; for each crop the S2HAND objective is minimised over the
MANO codes, texture and light directly (no network), from the network's mean-hand start.
Printed: PA-MPJPE (mm) against the ground truth and the 2D error (px) of the projected
joints against the projected ground truth, next to the detector's own 2D error (the
noise level), with the geometric + regularisation terms only and with the photometric
terms (pixel, SSIM through the rendered silhouette) on.

(b) ``--part train``: ``selfsup-mono --preset cpu`` on detected synthetic crops, 3 seeds;
held-out PA-MPJPE of the trained network (from scratch, and with the encoder from the
shipped prior) vs the untrained network and the mean pose; Table 4's ablation and Table 5's
3D-supervised network, from scratch and from the prior. Output of the last run:
``bench/results_s2hand_train.txt``.

Ground truth is read here only to score; training and fitting never see it.

    $ nice -n 10 python bench/bench_s2hand.py --part fit -n 16
    $ OMP_NUM_THREADS=1 python bench/bench_s2hand.py --part train --seeds 0 1 2 --ablation-seeds 0 1 --jobs 2

On a 2-core CPU run two trainings of one thread each (as above, about 40 min for its 22
runs): two of two threads each on two cores ran 5x slower than one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.eval.errors import pa_mpjpe  # noqa: E402
from handtools.core.methods.s2hand import S2HandLoss, S2HandNet, mano_hand  # noqa: E402
from handtools.core.methods.s2hand.config import INIT_ROT  # noqa: E402
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


def _batch(data, idx=None):
    sel = slice(None) if idx is None else idx
    img = torch.from_numpy(data["images"][sel, 0]).permute(0, 3, 1, 2).float() / 255
    K = torch.from_numpy(data["K"][sel, 0]).float()
    kp = torch.from_numpy(data["keypoints2d"][sel, 0]).float()
    return {"image": img, "K": K, "keypoints": kp[..., :2], "conf": kp[..., 2].clamp(0, 1)}


def mean_start(batch):
    """The network's starting point: the mean hand at the crop centre (heads at zero)."""
    with torch.no_grad():
        start = S2HandNet("resnet18", batch["image"].shape[-1]).eval()
        for m in (start.f_pose, start.f_shape, start.f_trans, start.f_rot, start.f_scale, start.f_tex, start.f_light):
            torch.nn.init.zeros_(m[-1].weight)
        return start(batch["image"], batch["K"])


#: In-plane turns (about the camera axis) and the palm / back flip tried as PnP starts.
_TURNS = [cv2.Rodrigues(np.array([0.0, 0.0, a]))[0] for a in (0, np.pi / 2, np.pi, 3 * np.pi / 2)]
_FLIP = cv2.Rodrigues(np.array([np.pi, 0.0, 0.0]))[0]


def pnp_starts(kp, conf, K, X0):
    """Rigid starts of the mean hand from the detected keypoints alone (no label).

    kp (21, 2) pixels, conf (21,), K (3, 3), X0 (21, 3) the mean hand's joints (metres,
    model frame). The mean hand is posed by OpenCV's PnP against the confident keypoints:
    SQPnP, then Levenberg-Marquardt from 8 orientations (4 in-plane turns of the
    back-of-hand view and of the palm view), each starting at the depth the keypoints'
    spread gives. Returns a list of (rvec (3,), tvec (3,)) with x_cam = R(rvec) X0 + tvec.
    """
    use = conf > 0.2
    if use.sum() < 6:
        use = np.ones_like(use)
    obj, img = X0[use].astype(np.float64), kp[use].astype(np.float64)
    K = K.astype(np.float64)
    out = []
    ok, r, t = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if ok and t[2, 0] > 0:
        out.append((r.ravel(), t.ravel()))
    spread = np.linalg.norm(img - img.mean(0), axis=1).mean()
    z = K[0, 0] * np.linalg.norm(obj - obj.mean(0), axis=1).mean() / max(spread, 1.0)
    c = np.linalg.inv(K) @ np.array([*img.mean(0), 1.0]) * z
    R0 = cv2.Rodrigues(np.array(INIT_ROT))[0]
    for flip in (np.eye(3), _FLIP):
        for turn in _TURNS:
            r0 = cv2.Rodrigues(turn @ R0 @ flip)[0]
            t0 = (c - (turn @ R0 @ flip) @ obj.mean(0))[:, None]
            ok, r, t = cv2.solvePnP(obj, img, K, None, rvec=r0.copy(), tvec=t0.copy(), useExtrinsicGuess=True,
                                    flags=cv2.SOLVEPNP_ITERATIVE)
            if ok and t[2, 0] > 0:
                out.append((r.ravel(), t.ravel()))
    return out


def _optimise(codes, crit, batch, steps, lr):
    opt = torch.optim.Adam(codes.values(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr * 0.05)
    for _ in range(steps):
        opt.zero_grad()
        terms, _ = crit.terms(codes, batch)
        crit.total(terms).backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            codes["texture"].clamp_(0, 1)
            codes["scale"].clamp_(min=0.5)  # the network's scale is |1 + s_raw| > 0; a free one could mirror the hand
    return codes


def _per_sample_objective(crit, codes, batch):
    with torch.no_grad():
        out = []
        for i in range(batch["image"].shape[0]):
            one = {k: v[i:i + 1] for k, v in codes.items()}
            terms, _ = crit.terms(one, {k: v[i:i + 1] for k, v in batch.items()})
            out.append(float(crit.total(terms)))
    return np.array(out)


def fit(data, losses, steps, lr, hand, renderer, init="pnp", select_steps=60):
    """Per-sample S2HAND fit; returns fitted and starting joints (B, 21, 3), metres.

    init ``mean``: the network's mean-hand start. ``pnp``: the rigid PnP starts of
    :func:`pnp_starts` (from the detected keypoints only), each fitted ``select_steps``
    steps with the geometric + regularisation terms; per sample the start with the lowest
    objective is kept, then the objective ``losses`` is minimised ``steps`` steps (Adam,
    cosine decay to 5 % of ``lr``).
    """
    batch = _batch(data)
    codes0 = mean_start(batch)
    if init == "pnp":
        with torch.no_grad():
            X0 = hand(torch.zeros(1, 33), torch.zeros(1, 10)).joints[0].numpy()  # mean hand, model frame
        rows, starts = [], []
        for i in range(len(batch["K"])):
            for r, t in pnp_starts(batch["keypoints"][i].numpy(), batch["conf"][i].numpy(), batch["K"][i].numpy(), X0):
                rows.append(i)
                starts.append((r, t))
        idx = torch.tensor(rows)
        multi = {k: v[idx].clone() for k, v in codes0.items()}
        multi["rot"] = torch.tensor(np.array([r for r, _ in starts]), dtype=torch.float32)
        multi["trans"] = torch.tensor(np.array([t for _, t in starts]), dtype=torch.float32)
        multi["scale"] = torch.ones_like(multi["scale"])
        mb = {k: v[idx] for k, v in batch.items()}
        geo = [n for n in losses if n not in ("pixel", "ssim")]
        crit0 = S2HandLoss(hand, renderer, enabled=geo)
        multi = _optimise({k: v.requires_grad_(True) for k, v in multi.items()}, crit0, mb, select_steps, lr)
        obj = _per_sample_objective(crit0, multi, mb)
        best = [int(np.flatnonzero(rows_i)[np.argmin(obj[rows_i])])
                for rows_i in (np.array(rows) == i for i in range(len(batch["K"])))]
        start = {k: v.detach()[best].clone() for k, v in multi.items()}
    else:
        start = {k: v.clone() for k, v in codes0.items()}
    crit = S2HandLoss(hand, renderer, enabled=losses)
    codes = _optimise({k: v.requires_grad_(True) for k, v in start.items()}, crit, batch, steps, lr)
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
    det = np.linalg.norm(data["keypoints2d"][:, 0, :, :2] - gt2d, axis=-1).mean(1)  # (N,) px
    rows = []
    geo = ("loc", "ori", "shape", "texture", "scale", "angle")
    for init in args.init:
        for name, losses in (("E_geo + E_regu", geo), ("+ E_photo (pixel, SSIM)", geo + ("pixel", "ssim"))):
            t1 = time.time()
            j, j0 = fit(data, losses, args.steps, args.lr, hand, renderer, init=init, select_steps=args.select_steps)
            e2d = np.linalg.norm(project(j, K) - gt2d, axis=-1).mean(1)
            rows.append((init, name, pa_mpjpe(j0, gt) * 1000, pa_mpjpe(j, gt) * 1000,
                         np.linalg.norm(project(j0, K) - gt2d, axis=-1).mean(1), e2d, time.time() - t1))
    print(f"\n(a) per-sample fit of the S2HAND objective: {len(gt)} of {args.n} synthetic indoor frames kept by detect "
          f"(seed {args.seed}), {args.size}px crops, Adam lr {args.lr} cosine, {args.steps} steps "
          f"(pnp: + {args.select_steps} selection steps per start); 2-core shared CPU")
    print(f"detector 2D error vs projected ground truth (the noise level): {det.mean():.2f} px "
          f"(median {np.median(det):.2f}, max {det.max():.2f})")
    print(f"{'start':<6}{'objective':<26}{'PA-MPJPE start':>16}{'PA-MPJPE fit':>14}{'2D err start':>14}"
          f"{'2D err fit':>12}{'median':>9}{'max':>8}{'s':>6}")
    for r in rows:
        print(f"{r[0]:<6}{r[1]:<26}{r[2].mean():>13.1f} mm{r[3].mean():>11.1f} mm{r[4].mean():>11.2f} px"
              f"{r[5].mean():>9.2f} px{np.median(r[5]):>9.2f}{r[5].max():>8.2f}{r[6]:>6.0f}")
    print("PA-MPJPE fit per frame, mm:")
    for r in rows:
        print(f"  {r[0]:<6}{r[1]:<26}" + " ".join(f"{x:.1f}" for x in r[3]))


#: Table 4's rows (the paper's ablation) as selfsup-mono options.
TABLE4 = {
    "E_loc + E_regu": ["--stacks", "0", "--no", "ori", "--no", "pixel", "--no", "ssim"],
    "+ E_ori": ["--stacks", "0", "--no", "pixel", "--no", "ssim"],
    "+ 2D branch, E_2d, E_con": ["--no", "pixel", "--no", "ssim"],
    "+ E_photo (full S2HAND)": [],
}
FULL = "+ E_photo (full S2HAND)"
#: The full method with the encoder started from the prior shipped in the package (a
#: ResNet-10 trained with 3D labels on synthetic *studio* frames, not on these indoor ones).
PRIOR_INIT = "full S2HAND, encoder from the shipped prior"
PRIOR_INIT_ARGS = ["--encoder", "resnet10", "--init", "default"]
SUP_PRIOR = "3D labels, encoder from the shipped prior"
PRIOR_TAG = " [prior]"
#: Each Table 4 row's twin with the encoder from the shipped prior (the full method's is PRIOR_INIT).
PRIOR_ROWS = {row: PRIOR_INIT if row == FULL else row + PRIOR_TAG for row in TABLE4}
#: selfsup-mono options of every self-supervised row.
ROW_ARGS = {**TABLE4, **{PRIOR_ROWS[row]: TABLE4[row] + PRIOR_INIT_ARGS for row in TABLE4}}


def _crops_cached(root: Path, n: int, seed: int, size: int) -> list[str]:
    listing = root / "crops.txt"
    if listing.exists():
        return listing.read_text().split()
    root.mkdir(parents=True, exist_ok=True)
    paths = make_crops(root, n, seed, size)
    listing.write_text("\n".join(paths) + "\n")
    return paths


def _finished(ck: Path) -> bool:
    from handtools.core.learning.checkpoints import load_checkpoint

    if not ck.exists():
        return False
    c = load_checkpoint(ck)
    return bool(c["finished"]) and (c["meta"].get("stage") == 2 or c["meta"].get("kind") == "mono-supervised-bench")


def _scores(pred_paths, gt):
    """PA-MPJPE and root-relative MPJPE (mm) per frame of predicted vs true joints."""
    j = np.concatenate([ShardReader(p).read("pred/joints3d") for p in pred_paths])
    rr = np.linalg.norm((j - j[:, :1]) - (gt - gt[:, :1]), axis=-1).mean(1)
    return pa_mpjpe(j, gt) * 1000, rr * 1000


class _Supervised:
    """The same network (``--stacks 0``) trained with 3D labels: mean joint distance in
    the camera frame (cm) plus the root-relative one. Bench only: reads joints3d."""

    def __call__(self, model, batch):
        from handtools.core.methods.s2hand import decode

        codes = model(batch["image"], batch["K"], with_2d=False)
        j = decode(codes, self.hand)["joints"]
        gt = batch["joints3d"]
        d = (j - gt).norm(dim=-1).mean() + ((j - j[:, :1]) - (gt - gt[:, :1])).norm(dim=-1).mean()
        return d * 100, {"mpjpe_cm": float((j - gt).detach().norm(dim=-1).mean() * 100)}


class _LabelledCrops(torch.utils.data.Dataset):
    def __init__(self, paths):
        from handtools.io.dataset import ShardDataset

        self.base = ShardDataset(paths, ["images", "K", "joints3d"])

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        it = self.base[int(i)]
        return {"image": torch.from_numpy(np.ascontiguousarray(it["images"][0])).permute(2, 0, 1).float() / 255,
                "K": torch.from_numpy(it["K"][0].astype(np.float32)),
                "joints3d": torch.from_numpy(it["joints3d"].astype(np.float32).reshape(21, 3))}


def train_supervised(args):
    """``--part supervised``: one 3D-supervised run (called by part_train in a subprocess)."""
    from handtools.core.learning.trainer import TrainConfig, Trainer
    from handtools.core.methods.s2hand import CPU, PAPER

    cfg0 = {"cpu": CPU, "paper": PAPER}[args.preset]
    torch.manual_seed(args.seed)
    net = S2HandNet(args.encoder or cfg0.encoder, args.size, pool=cfg0.pool, texture=cfg0.texture)
    if args.prior_init:  # the encoder from the shipped prior, as selfsup-mono --init default
        from handtools.commands.selfsup_mono import _load_init
        from handtools.core.learning.checkpoints import load_checkpoint

        _load_init(net, load_checkpoint("default"), Path("default"))
    loss = _Supervised()
    loss.hand = mano_hand()
    cfg = TrainConfig(epochs=args.epochs + args.finetune_epochs, batch_size=args.batch_size, lr=cfg0.lr,
                      milestones=(args.epochs,), gamma=cfg0.finetune_lr / cfg0.lr, seed=args.seed)
    meta = {"kind": "mono", "net": net.config, "hand_model": loss.hand.identity, "mirror_left": False,
            "supervision": "3d-joints (bench only)", "stage": 2}
    tr = Trainer(net, loss, _LabelledCrops(args.paths), cfg, Path(args.out), torch.device("cpu"), meta=meta)
    tr.fit()


def part_train(args):
    """(b) and Table 4: trained vs untrained vs mean pose, the ablation rows, 3D supervision."""
    from concurrent.futures import ThreadPoolExecutor

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train = _crops_cached(work / "train", args.n_train, 100, args.size)
    test = _crops_cached(work / "test", args.n_test, 200, args.size)
    gt = load(test)["joints3d"]
    n_train = sum(len(ShardReader(p).read("K")) for p in train)
    print(f"data: {n_train} training crops of {args.n_train} frames, {len(gt)} held-out of {args.n_test} "
          f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    common = (f"--preset {args.preset} --no-mirror-left --epochs {args.epochs} --finetune-epochs {args.finetune_epochs}"
              f" --batch-size {args.batch_size}")
    jobs = []  # (row, seed, checkpoint, command)
    abl_seeds = args.ablation_seeds if args.ablation_seeds is not None else args.seeds[:1]
    for seed in args.seeds:
        jobs.append((FULL, seed))
    for seed in args.seeds:
        jobs.append((PRIOR_INIT, seed))
    for seed in abl_seeds:
        jobs.append(("3D labels (same network, --stacks 0)", seed))
        jobs.append((SUP_PRIOR, seed))
        for row in TABLE4:  # Table 4 again, every row with the encoder from the shipped prior
            if row != FULL:
                jobs.append((PRIOR_ROWS[row], seed))
        for row in TABLE4:
            if row != FULL:
                jobs.append((row, seed))
    slug = {row: f"r{i}" for i, row in enumerate(list(TABLE4) + ["3D labels (same network, --stacks 0)"])}
    slug[PRIOR_INIT] = "prior-init"
    slug.update({PRIOR_ROWS[row]: f"{slug[row]}-prior" for row in TABLE4 if row != FULL})
    slug[SUP_PRIOR] = "sup-prior-init"

    def run(job):
        row, seed = job
        ck = work / f"{slug[row]}-s{seed}.pt"
        t1 = time.time()
        if not _finished(ck):
            if row.startswith("3D labels"):
                prior = f" --encoder {PRIOR_INIT_ARGS[1]} --prior-init" if row == SUP_PRIOR else ""
                sh(f"{sys.executable} {Path(__file__).resolve()} --part supervised --preset {args.preset} --size {args.size}{prior}"
                   f" --epochs {args.epochs} --finetune-epochs {args.finetune_epochs} --batch-size {args.batch_size}"
                   f" --seed {seed} --out {ck} --paths {' '.join(train)}")
            else:
                resume = "--resume" if ck.exists() else ""
                sh(f"{H} -q selfsup-mono {common} {' '.join(ROW_ARGS[row])} --seed {seed} {resume} --out {ck} {' '.join(train)}")
        pred = sh(f"{H} -q predict -c {ck} --overwrite --out {work}/pred-{slug[row]}-s{seed} {' '.join(test)}")
        sc = _scores(pred, gt)
        print(f"  done {row} seed {seed} ({time.time() - t1:.0f} s): PA-MPJPE {sc[0].mean():.1f} mm, "
              f"root-relative MPJPE {sc[1].mean():.1f} mm", file=sys.stderr, flush=True)
        return job, sc

    res = {}
    untrained = []
    for seed in args.seeds:  # the network before training: one step at lr 1e-12
        ck = work / f"untrained-s{seed}.pt"
        if not ck.exists():
            sh(f"{H} -q selfsup-mono {common} --seed {seed} --lr 1e-12 --max-steps 1 --out {ck} {' '.join(train)}")
        pred = sh(f"{H} -q predict -c {ck} --overwrite --out {work}/pred-untrained-s{seed} {' '.join(test)}")
        untrained.append(_scores(pred, gt))
        print(f"  untrained seed {seed}: PA-MPJPE {untrained[-1][0].mean():.1f} mm, root-relative MPJPE "
              f"{untrained[-1][1].mean():.1f} mm", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for job, sc in pool.map(run, jobs):
            res[job] = sc
    hand = mano_hand()
    with torch.no_grad():
        mean = hand(torch.zeros(1, 33), torch.zeros(1, 10)).joints.numpy().repeat(len(gt), 0)
    mean_pa = pa_mpjpe(mean, gt).mean() * 1000

    def stat(rows, k):
        v = np.array([r[k].mean() for r in rows])
        return f"{v.mean():6.1f} +- {v.std():4.1f}  ({', '.join(f'{x:.1f}' for x in v)})"

    print(f"\n(b) selfsup-mono --preset {args.preset} --no-mirror-left, {args.epochs} + {args.finetune_epochs} epochs, "
          f"batch {args.batch_size}, on {n_train} crops ({args.size} px) of synthetic indoor frames with MediaPipe "
          f"keypoints (detect); held-out {len(gt)} crops (another synth seed); {os.cpu_count()}-core CPU, {args.jobs} trainings at once, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')} "
          f"({time.time() - t0:.0f} s in all); mean +- std over seeds (per-seed means in brackets), mm")
    print(f"{'':<40}{'PA-MPJPE':>34}{'root-rel. MPJPE':>34}")
    full = [res[(FULL, s)] for s in args.seeds]
    print(f"{'trained (full S2HAND), seeds ' + ','.join(map(str, args.seeds)):<40}{stat(full, 0):>34}{stat(full, 1):>34}")
    prior = [res[(PRIOR_INIT, s)] for s in args.seeds]
    print(f"{PRIOR_INIT:<40}{stat(prior, 0):>34}{stat(prior, 1):>34}")
    print(f"{'untrained network':<40}{stat(untrained, 0):>34}{stat(untrained, 1):>34}")
    print(f"{'mean pose (PA aligns it)':<40}{mean_pa:>6.1f}")
    print(f"\nTable 4 (ablation), seeds {abl_seeds}; paper (FreiHAND, MPJPE cm): 1.54 -> 1.24 -> 1.19 -> 1.18")
    for row in list(TABLE4) + ["3D labels (same network, --stacks 0)"]:
        rows = [res[(row, s)] for s in abl_seeds if (row, s) in res]
        print(f"{row:<40}{stat(rows, 0):>34}{stat(rows, 1):>34}")
    sup = [res[("3D labels (same network, --stacks 0)", s)] for s in abl_seeds]
    selfsup = [res[(FULL, s)] for s in abl_seeds]
    for k, name in ((0, "PA-MPJPE"), (1, "root-relative MPJPE")):
        r = np.mean([a[k].mean() for a in selfsup]) / np.mean([b[k].mean() for b in sup])
        print(f"self-supervised / 3D-supervised, {name}: {r:.2f}x (paper about 1.2x, goal <= 1.3x)")
    sup_p = [res[(SUP_PRIOR, s)] for s in abl_seeds]
    self_p = [res[(PRIOR_INIT, s)] for s in abl_seeds if (PRIOR_INIT, s) in res]
    print(f"\nTable 4 and 5 with the encoder from the shipped prior (every run), seeds {abl_seeds}:")
    for row in TABLE4:
        rows = [res[(PRIOR_ROWS[row], s)] for s in abl_seeds]
        print(f"{row:<40}{stat(rows, 0):>34}{stat(rows, 1):>34}")
    print(f"{SUP_PRIOR:<40}{stat(sup_p, 0):>34}{stat(sup_p, 1):>34}")
    for k, name in ((0, "PA-MPJPE"), (1, "root-relative MPJPE")):
        r = np.mean([a[k].mean() for a in self_p]) / np.mean([b[k].mean() for b in sup_p])
        print(f"self-supervised / 3D-supervised, {name}: {r:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("fit", "train", "supervised"), default="fit")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64, help="crop side (fit: 96 unless given)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--init", nargs="+", choices=("pnp", "mean"), default=["pnp"],
                    help="fit starts: pnp (multi-start from the detected keypoints) and/or mean (mean hand)")
    ap.add_argument("--select-steps", type=int, default=60, help="steps per PnP start before choosing one")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-test", type=int, default=80)
    ap.add_argument("--preset", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--epochs", type=int, default=20, help="stage 1 epochs (train)")
    ap.add_argument("--finetune-epochs", type=int, default=10, help="stage 2 epochs (train)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablation-seeds", type=int, nargs="+", default=None,
                    help="seeds of the Table 4 rows and the 3D-supervised run (default: the first of --seeds)")
    ap.add_argument("--encoder", help=argparse.SUPPRESS)
    ap.add_argument("--prior-init", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    ap.add_argument("--work", default="bench-s2hand-work", help="data, checkpoints and predictions; finished runs are reused")
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part == "fit" and args.size == 64 and "--size" not in sys.argv:
        args.size = 96
    torch.manual_seed(args.seed)
    {"fit": part_fit, "train": part_train, "supervised": train_supervised}[args.part](args)


if __name__ == "__main__":
    main()
