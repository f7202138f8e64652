"""Make docs/images/mono_realdata.png: S2HAND (`selfsup-mono`) meshes on real photographs.

Everything a user would run, on the photographs of ../shared/realdata (not in the
repository) and on synthetic frames that ``synth`` makes here:

1. a warm start learnt without a label of its domain: ``synth`` indoor frames (their
   ground truth is never read) | ``detect`` | ``crop --size 64`` | ``selfsup-mono --preset
   cpu --encoder resnet10 --init default`` (the encoder starts from the prior shipped in the
   package, trained with 3D labels on synthetic *studio* frames; the recipe of
   ``bench/bench_s2hand.py --part train``'s "encoder from the shipped prior" row);
2. the photographs: ``import images`` | ``detect`` | ``crop --size 64`` |
   ``selfsup-mono --init warm.pt`` (a short self-supervised run on the photographs
   themselves, 200 epochs of 8 crops);
3. ``predict`` | ``render --sheet``.

It prints, for the warm start alone, the fine-tuned model, and the same short run from
scratch, the distance of the projected joints from the detected keypoints (px of the
64 px crop: what E_loc minimises; no 3D truth exists for the photographs). The mesh is
drawn over 192 px crops of the same windows (``predict`` resamples them for the 64 px
model) so the picture is legible.

Run: python docs/scripts/make_mono_realdata.py [--photos DIR] [--work DIR] [--seed S]
(about 8 min on a 2-core CPU; --work keeps the warm start and reuses it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from _figures import ROOT, save_shrunk

PHOTOS = ROOT.parent / "shared" / "realdata"
SIZE, SHOW = 64, 192
ENCODER = "--encoder resnet10"


def sh(cmd: str, cwd: Path) -> list[str]:
    p = subprocess.run(f"set -o pipefail; {cmd}", shell=True, check=True, executable="/bin/bash", cwd=cwd,
                       stdout=subprocess.PIPE, text=True)
    return p.stdout.split()


def joint_error(pred_paths) -> np.ndarray:
    """Per crop: mean distance (px) of the projected predicted joints from the detected
    keypoints (``predict`` carries the crops' K and keypoints2d into its shards)."""
    import torch

    from handtools.core.geometry.cameras import project
    from handtools.io.shards import ShardReader

    out = []
    for p in pred_paths:
        with ShardReader(p) as r:
            j, K, kp = r.read("pred/joints3d"), r.read("K")[:, 0], r.read("keypoints2d")[:, 0]
        uv = project(torch.from_numpy(j), torch.from_numpy(K.astype(np.float32))).numpy()
        w = kp[..., 2] > 0
        out.append((np.linalg.norm(uv - kp[..., :2], axis=-1) * w).sum(1) / w.sum(1).clip(1))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--work", type=Path, default=Path("mono-realdata-work"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-synth", type=int, default=300)
    ap.add_argument("--finetune-epochs", type=int, default=200)
    args = ap.parse_args()
    w = args.work.resolve()
    w.mkdir(parents=True, exist_ok=True)
    ht = f"{sys.executable} -m handtools -q"
    warm = w / "warm.pt"
    if not warm.exists():  # 1. a warm start from synthetic frames, keypoints from detect (no label read)
        crops = sh(f"{ht} synth -n {args.n_synth} --domain indoor --image-size 320x240 --seed 100 --out {w}/synth | {ht} detect --out {w}/synth-det"
                   f" | {ht} crop --size {SIZE} --center bbox --out {w}/synth-crops", ROOT)
        sh(f"{ht} selfsup-mono --preset cpu {ENCODER} --init default --no-mirror-left --seed {args.seed}"
           f" --out {w}/warm-run.pt {' '.join(crops)} && cp {w}/warm-run.pt {warm}", ROOT)
    # 2. the photographs
    det = sh(f"{ht} import images {args.photos} --out {w}/frames --overwrite | {ht} detect --out {w}/det --overwrite", ROOT)
    crops = sh(f"{ht} crop --size {SIZE} --center bbox --out {w}/crops --overwrite {' '.join(det)}", ROOT)
    show = sh(f"{ht} crop --size {SHOW} --center bbox --out {w}/show --overwrite {' '.join(det)}", ROOT)
    milestone = args.finetune_epochs * 3 // 4
    common = (f"--preset cpu {ENCODER} --epochs {args.finetune_epochs} --milestones {milestone} --finetune-epochs 0"
              f" --batch-size 4 --seed {args.seed} --overwrite {' '.join(crops)}")
    errs = {}
    runs = (("warm start alone", None), ("fine-tuned from the warm start", f"--init {warm}"), ("from scratch", ""))
    for name, init in runs:
        ck = warm if init is None else w / f"real-{'warm' if init else 'scratch'}.pt"
        if init is not None:
            sh(f"{ht} selfsup-mono {common} {init} --out {ck}", ROOT)
        pred = sh(f"{ht} predict -c {ck} --overwrite --out {w}/pred-{ck.stem} {' '.join(crops)}", ROOT)
        errs[name] = joint_error(pred)
        if init:  # the same model on 192 px crops of the same windows (predict resamples them)
            shown = sh(f"{ht} predict -c {ck} --overwrite --out {w}/pred-show {' '.join(show)}", ROOT)
            sh(f"{ht} render --sheet --no-png --overwrite --out {w}/vis {' '.join(shown)}", ROOT)
    print(f"{len(crops)} hands in {args.photos}; projected joints vs detected keypoints ({SIZE} px crops), "
          f"{args.finetune_epochs} epochs on the photographs, seed {args.seed}:")
    for name, e in errs.items():
        print(f"  {name:<32} mean {e.mean():5.2f} px  median {np.median(e):5.2f}  max {e.max():5.2f}")
    print(save_shrunk(w / "vis" / "sheet.png", "mono_realdata.png"))


if __name__ == "__main__":
    main()
