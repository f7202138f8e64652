"""How often the project's detector (MediaPipe Hands, ``handtools detect``) finds the hand in ``synth`` frames.

    $ python bench/bench_detect_synth.py                       # 100 frames per domain and seed, 320x240, seeds 0 1
    $ python bench/bench_detect_synth.py --num 20 --seeds 0    # quick look
    $ python bench/bench_detect_synth.py --save out/           # also write every frame, detection drawn (green: ground truth)

The label-free path (``detect`` -> ``crop`` -> ``mask`` -> self-supervised training)
only sees the frames in which the detector finds a hand, so synthetic domains are
useful to it only when they look enough like hands. For each domain and seed, mono
frames of ``SceneRenderer`` (the work behind ``handtools synth``) go through
``HandDetector`` with the settings of ``handtools detect`` (threshold 0.5, up to 2
hands, the largest kept). The detector never sees ground truth; ground truth is only
used afterwards to score it:

* detection rate: frames with at least one hand found;
* 2D error: mean distance in pixels between the kept hand's 21 keypoints and the
  projected ground-truth joints (both in FreiHAND order), over detected frames;
  PCK@10px: the share of those keypoints within 10 px;
* wrong: detected frames whose mean keypoint error exceeds half the ground-truth
  hand size (the detector found something, but not this hand);
* right: the share of detections labelled a right hand (synth renders right hands).

The mirrored second pass of ``detect`` (``--flip-check``) only sets confidences: the
frames and keypoints it reports come from the first pass, so it is off here.
With ``--realdata`` (default ``../shared/realdata`` when present) the same detector
runs on those photographs as a check that its settings are the ones that work on real
footage: the hands it finds, per image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GLOG_minloglevel", "2")

from handtools.core.hand.model import HandModel  # noqa: E402
from handtools.core.render import Renderer  # noqa: E402
from handtools.core.data.synth import DOMAINS, STB_FOCAL, camera_rig  # noqa: E402
from handtools.core.data.synth_render import SceneRenderer  # noqa: E402
from run_all import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)

BATCH = 8
PCK_PX = 10.0
THRESHOLD = 0.5  # handtools detect's default --threshold
MAX_HANDS = 2  # handtools detect's default --max-hands


def render_frames(domain: str, seed: int, num: int, hw: tuple[int, int], model, renderer) -> dict:
    """Mono ``synth`` frames: images (N, H, W, 3) and ground-truth keypoints (N, 21, 2); seconds spent."""
    ks, ts = camera_rig(1, hw, STB_FOCAL * hw[1] / 640.0, 0.12)
    scene = SceneRenderer(model, renderer, DOMAINS[domain], hw, ks, ts, None, seed=seed)
    images, kps = [], []
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, num, BATCH):
            b = scene.render_batch(np.arange(start, min(num, start + BATCH)))
            images.append(b["images"][:, 0])
            kps.append(b["keypoints2d"][:, 0, :, :2])
    return {"images": np.concatenate(images), "gt": np.concatenate(kps), "seconds": time.perf_counter() - t}


def score(detector, images: np.ndarray, gt: np.ndarray, save: Path | None, tag: str) -> dict:
    """Detection rate, 2D errors and handedness of ``detector`` on frames with ground truth ``gt`` (N, 21, 2)."""
    from handtools.core.perception.detector import select_hands

    found, errs, wrong, right = 0, [], 0, 0
    for i, img in enumerate(images):
        dets = detector.detect(img)
        d = select_hands(dets, 1, "largest")[0] if dets else None
        if d is not None:
            found += 1
            e = np.linalg.norm(d.keypoints[:, :2] - gt[i], axis=1)  # (21,)
            size = float(np.ptp(gt[i], axis=0).max())
            wrong += int(e.mean() > 0.5 * size)
            right += int(d.handedness == "right")
            errs.append(e)
        if save is not None:
            _save(save / f"{tag}_{i:03d}_{'hit' if d is not None else 'miss'}.png", img, gt[i], d)
    e = np.concatenate(errs) if errs else np.zeros(0)
    return {
        "frames": len(images), "found": found, "rate": found / len(images),
        "err": float(e.mean()) if len(e) else float("nan"),
        "pck": float((e <= PCK_PX).mean()) if len(e) else float("nan"),
        "wrong": wrong, "right": right / max(found, 1),
    }


def _save(path: Path, img: np.ndarray, gt: np.ndarray, det) -> None:
    import imageio.v3 as iio

    from handtools.core.render.visualize import draw_skeleton

    out = draw_skeleton(img, gt, thickness=1)
    if det is not None:
        out = np.concatenate([out, draw_skeleton(img, det.keypoints[:, :2], thickness=1)], 1)
    else:
        out = np.concatenate([out, img], 1)
    iio.imwrite(path, np.asarray(out))


def realdata(detector, folder: Path) -> list[tuple[str, int]]:
    """(file, hands found) for every photograph in ``folder``."""
    import imageio.v3 as iio

    rows = []
    for f in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
        rows.append((f.name, len(detector.detect(np.ascontiguousarray(iio.imread(f)[..., :3])))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num", type=int, default=100, help="frames per domain and seed (default 100)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="synth seeds (default 0 1)")
    ap.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    ap.add_argument("--image-size", default="320x240", metavar="WxH")
    ap.add_argument("--threshold", type=float, default=THRESHOLD,
                    help="palm detection and presence threshold (default 0.5, as handtools detect)")
    default_real = REPO.parent / "shared" / "realdata"
    ap.add_argument("--realdata", type=Path, default=default_real if default_real.is_dir() else None,
                    help="folder of real photographs to run the same detector on (default ../shared/realdata if present)")
    ap.add_argument("--save", type=Path, default=None, help="write every frame with its detection to this folder")
    args = ap.parse_args()
    if args.realdata is not None and not args.realdata.is_dir():
        ap.error(f"--realdata {args.realdata}: not a folder")
    w, h = (int(x) for x in args.image_size.lower().split("x"))
    hw = (h, w)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # render_batch runs samples on threads of its own; keep the detector's CPU

    from handtools.core.perception.detector import HandDetector

    print(machine_info())
    model, renderer = HandModel.from_path(None), Renderer("torch")
    rows = []
    with HandDetector(max_hands=MAX_HANDS, min_detection_confidence=args.threshold,
                      min_presence_confidence=args.threshold, flip_check=False) as det:
        for domain in args.domains:
            for seed in args.seeds:
                fr = render_frames(domain, seed, args.num, hw, model, renderer)
                t = time.perf_counter()
                r = score(det, fr["images"], fr["gt"], args.save, f"{domain}_s{seed}")
                r.update(domain=domain, seed=str(seed), synth_s=fr["seconds"], detect_s=time.perf_counter() - t)
                rows.append(r)
                print(f"  {domain} seed {seed}: {r['found']}/{r['frames']}", file=sys.stderr, flush=True)
        real = realdata(det, args.realdata) if args.realdata is not None else None

    print(f"synth frames {w}x{h}, mono; detector MediaPipe Hands (full), threshold {args.threshold:g}, "
          f"max {MAX_HANDS} hands, largest kept, no ground truth given to it")
    head = f"{'domain':<8}{'seeds':>6}{'frames':>8}{'found':>7}{'rate':>8}{'2D err px':>11}{'PCK@10px':>10}{'wrong':>7}{'right':>7}"
    print(head)
    for domain in args.domains:
        mine = [r for r in rows if r["domain"] == domain]
        for r in mine:
            print(f"{domain:<8}{r['seed']:>6}{r['frames']:>8}{r['found']:>7}{100 * r['rate']:>7.1f}%"
                  f"{r['err']:>11.1f}{100 * r['pck']:>9.1f}%{r['wrong']:>7}{100 * r['right']:>6.0f}%")
        if len(mine) > 1:
            n, f = sum(r["frames"] for r in mine), sum(r["found"] for r in mine)
            rates = [r["rate"] for r in mine]
            err = sum(r["err"] * r["found"] for r in mine) / max(f, 1)
            pck = sum(r["pck"] * r["found"] for r in mine) / max(f, 1)
            print(f"{domain:<8}{'all':>6}{n:>8}{f:>7}{100 * f / n:>7.1f}%{err:>11.1f}{100 * pck:>9.1f}%"
                  f"{sum(r['wrong'] for r in mine):>7}{100 * sum(r['right'] * r['found'] for r in mine) / max(f, 1):>6.0f}%"
                  f"   (rate over seeds {100 * min(rates):.0f}-{100 * max(rates):.0f}%)")
    synth_s, det_s = sum(r["synth_s"] for r in rows), sum(r["detect_s"] for r in rows)
    frames = sum(r["frames"] for r in rows)
    print(f"(2D err and PCK over detected frames; wrong: mean error > half the hand size; right: labelled "
          f"right hand. synth {frames / synth_s:.1f} frames/s, detect {frames / det_s:.1f} frames/s; "
          f"load average now {os.getloadavg()[0]:.1f})")
    if real is not None:
        print(f"real photographs ({args.realdata}): {sum(n for _, n in real)} hands in "
              f"{sum(n > 0 for _, n in real)}/{len(real)} images: " + ", ".join(f"{f} {n}" for f, n in real))


if __name__ == "__main__":
    main()
