"""The figures behind selfsup-stereo's loss deviations from the paper (docs/selfsup-stereo-losses.md).

    $ python bench/bench_loss_deviations.py                  # ~3-6 min on 2 busy CPU cores
    $ python bench/bench_loss_deviations.py --prior prior.pt --crops masked/*.h5

Chen et al. (ICCV 2021) give eq. 10's weights but not the unit of the mesh losses, the
SSIM/L1 balance alpha, or whether eq. 7 is normalised. This bench measures, on real
stereo crops through ``StereoSelfSupLoss`` itself (the loss the command trains with):

1. **Mesh unit** (``BinocularConfig.mesh_unit``): per weighted term of eq. 10, its value and
   the norm of its gradient over all network parameters, with the mesh losses in
   metres, decimetres, centimetres and millimetres. Adam follows the direction of the
   summed gradient, so the ratios between these norms are the balance the unit sets.
2. **SSIM vs L1** (``alpha``, ``photo_consistency_terms``): the SSIM and L1 parts of eq. 3
   per pair, and the share of SSIM windows that see the hand (``A_R / A``): the factor by
   which averaging SSIM over the whole crop (the previous behaviour) shrank the SSIM
   part -- i.e. its effective alpha -- relative to L1, which is averaged over the mask.
3. **Mask reduction** (eq. 7, ``mask_reduction``): gradient norm of the weighted mask term
   as a mean over pixels (ours) and as the paper's sum, against the photo term's.

Data (defaults): ``synth --domain studio`` -> ``crop --center gt`` -> ``pretrain`` (the
prior: ResNet-18, 64 px, one epoch), and ``synth --views 2 --domain indoor`` -> ``crop
--center gt`` -> ``mask`` (skin). Ground truth places the crop windows and the
keypoints that bound the skin masks here (synth's); the figures are about loss scales,
not accuracy. Seeds are fixed (``--seed``); the spread is over ``--batches`` batches.
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

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from handtools.core.hand.model import HandModel  # noqa: E402
from handtools.core.learning.checkpoints import load_checkpoint  # noqa: E402
from handtools.core.losses.image import photo_consistency_terms  # noqa: E402
from handtools.core.methods.binocular import LOSS_NAMES, PAPER, StereoSelfSupLoss, pseudo_meshes  # noqa: E402
from handtools.core.methods.binocular import stereo_net_from_prior  # noqa: E402
from handtools.core.render import Renderer  # noqa: E402
from handtools.io.training_data import StereoCropDataset  # noqa: E402
from run_all import machine_info  # noqa: E402

UNITS = {"m": 1.0, "dm": 10.0, "cm": 100.0, "mm": 1000.0}


def sh(cmd: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, check=False)
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {cmd}\n{p.stderr[-2000:]}")
    return p.stdout.split()


def make_data(work: Path, args) -> tuple[Path, list[str]]:
    """A small prior and masked indoor stereo crops, through the CLI."""
    h = f"{sys.executable} -m handtools"
    prior = work / "prior.pt"
    if not prior.exists():
        t = time.time()
        sh(f"{h} synth -n {args.n_studio} --domain studio --image-size 320x240 --seed {args.seed} --out {work}/fs"
           f" | {h} crop --size {args.size} --center gt --out {work}/cs"
           f" | {h} pretrain --encoder resnet18 --epochs 1 --batch-size 8 --lr 1e-3 --milestones '' --seed {args.seed}"
           f" --out {prior}")
        print(f"# prior: {args.n_studio} studio crops x 1 epoch ({time.time() - t:.0f} s)", file=sys.stderr)
    crops = sh(f"{h} synth --views 2 --domain indoor -n {args.n_pairs} --image-size 320x240 --seed {args.seed + 1}"
               f" --out {work}/fi --overwrite | {h} crop --size {args.size} --center gt --out {work}/ci --overwrite"
               f" | {h} mask --out {work}/mi --overwrite")
    return prior, crops


def grad_norm(net, value: torch.Tensor) -> float:
    net.zero_grad(set_to_none=True)
    value.backward()
    return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters() if p.grad is not None)))


def fmt(xs: list[float]) -> str:
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.3g} ± {s:.2g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", type=Path, help="pretrain checkpoint (default: train a small one)")
    ap.add_argument("--crops", nargs="+", help="masked 2-view crops shards (default: make some)")
    ap.add_argument("--work", type=Path, help="folder for the generated data (default: a temporary one)")
    ap.add_argument("--n-studio", type=int, default=400)
    ap.add_argument("--n-pairs", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=4, help="batches the figures are averaged over")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_info())
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.prior is None or args.crops is None:
            prior, crops = make_data(work, args)
        prior = args.prior or prior
        crops = args.crops or crops
        run(prior, crops, args)
    print(f"# {time.time() - t0:.0f} s")
    return 0


def run(prior_path, crops, args) -> None:
    dev = torch.device("cpu")
    hand = HandModel.from_path(None)
    ckpt = load_checkpoint(prior_path)
    data = StereoCropDataset([Path(c) for c in crops])
    torch.manual_seed(args.seed)
    net = stereo_net_from_prior(ckpt, hand.joint_regressor, z_head=False).train()
    pseudo = pseudo_meshes(ckpt, hand.joint_regressor, data, dev)
    renderer = Renderer("torch")
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(args.seed))
    batches = [b for _, b in zip(range(args.batches), loader)]
    H, W = data.image_size
    print(f"# prior {prior_path}; {len(data)} pairs of {W}x{H} crops; {len(batches)} batches of {args.batch}; "
          f"seed {args.seed}; paper weights {dict((k, PAPER.loss_weights[k]) for k in LOSS_NAMES)}")

    # 1. mesh unit: weighted value and gradient norm of every term, per unit
    print("\n## 1. weighted terms of eq. 10 by mesh unit: value / gradient norm over all parameters "
          "(mean ± sd over batches)\n")
    print("| unit | " + " | ".join(LOSS_NAMES) + " |")
    print("|---|" + "---|" * len(LOSS_NAMES))
    for unit, scale in UNITS.items():
        vals = {k: [] for k in LOSS_NAMES}
        grads = {k: [] for k in LOSS_NAMES}
        for batch in batches:
            for k in LOSS_NAMES:
                loss = StereoSelfSupLoss(hand.faces, hand.joint_regressor, renderer, pseudo, enabled=[k],
                                         mesh_unit=scale)
                total, _ = loss(net, batch)
                vals[k].append(float(total.detach()))
                grads[k].append(grad_norm(net, total))
        print(f"| {unit} | " + " | ".join(f"{fmt(vals[k])} / {fmt(grads[k])}" for k in LOSS_NAMES) + " |")

    # 2. SSIM vs L1 parts of eq. 3 at the pseudo meshes' rendering (the start of training)
    print("\n## 2. eq. 3 parts per view at the start (alpha = %.2f): 1 - SSIM over the hand's windows, over the "
          "whole crop, L1 over the mask; A_R/A = share of SSIM windows that see the hand\n" % PAPER.alpha)
    loss = StereoSelfSupLoss(hand.faces, hand.joint_regressor, renderer, pseudo, enabled=["photo"])
    parts = {"dssim_mask": [], "dssim_crop": [], "l1": [], "share": [], "hand_frac": []}
    from handtools.core.geometry.stereo import disparity_from_depth, warp_with_disparity
    from handtools.core.methods.binocular import stereo_meshes

    with torch.no_grad():
        for batch in batches:
            n = batch["image_l"].shape[0]
            both = net.eval()(torch.cat([batch["image_l"], batch["image_r"]]))
            net.train()
            vl, vr, _ = stereo_meshes({"uv": both["uv"][:n]}, {"uv": both["uv"][n:]}, batch["K_l"], batch["K_r"],
                                      batch["baseline"], hand.joint_regressor)
            r = renderer.render(vr, hand.faces, batch["K_r"], (H, W))
            disp, _ = disparity_from_depth(r.depth, batch["K_r"], batch["baseline"])
            warped, _ = warp_with_disparity(batch["image_l"], disp, "left_to_right",
                                            batch["K_l"][:, 0, 2] - batch["K_r"][:, 0, 2])
            dm, l1 = photo_consistency_terms(batch["image_r"], warped, batch["mask_r"])
            dc, _ = photo_consistency_terms(batch["image_r"], warped, batch["mask_r"], ssim_region="crop")
            parts["dssim_mask"] += dm.tolist()
            parts["dssim_crop"] += dc.tolist()
            parts["l1"] += l1.tolist()
            ok = dm > 0
            parts["share"] += (dc[ok] / dm[ok]).tolist()
            parts["hand_frac"] += batch["mask_r"].flatten(1).mean(1).tolist()
    a = PAPER.alpha
    share = parts["share"]
    eff = [a * s / (a * s + (1 - a)) for s in share]  # alpha that the whole-crop SSIM effectively had
    print("| quantity | mean ± sd | min | max |")
    print("|---|---|---|---|")
    for name, xs in (("hand pixels / crop pixels", parts["hand_frac"]), ("A_R / A (SSIM windows on the hand)", share),
                     ("1 - SSIM, hand windows (now)", parts["dssim_mask"]),
                     ("1 - SSIM, whole crop (before)", parts["dssim_crop"]), ("L1 over the mask", parts["l1"]),
                     ("effective alpha before (alpha A_R/A renormalised)", eff)):
        print(f"| {name} | {fmt(xs)} | {min(xs):.3g} | {max(xs):.3g} |")

    # 3. mask reduction
    print("\n## 3. eq. 7 reduction: gradient norm of the weighted mask term vs the weighted photo term "
          f"({H}x{W} = {H * W} pixels)\n")
    print("| mask reduction | mask grad | photo grad | mask / photo |")
    print("|---|---|---|---|")
    g_photo = []
    for batch in batches:
        total, _ = StereoSelfSupLoss(hand.faces, hand.joint_regressor, renderer, pseudo, enabled=["photo"])(net, batch)
        g_photo.append(grad_norm(net, total))
    for red in ("mean", "sum"):
        g = []
        for batch in batches:
            total, _ = StereoSelfSupLoss(hand.faces, hand.joint_regressor, renderer, pseudo, enabled=["mask"],
                                         mask_reduction=red)(net, batch)
            g.append(grad_norm(net, total))
        ratio = [x / y for x, y in zip(g, g_photo)]
        print(f"| {red}{' (default)' if red == PAPER.mask_reduction else ' (eq. 7 as printed)'} | {fmt(g)} | "
              f"{fmt(g_photo)} | {fmt(ratio)} |")


if __name__ == "__main__":
    raise SystemExit(main())
