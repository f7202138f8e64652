"""Throughput of the real-data front end's core steps on this machine's CPU.

    $ python bench/bench_frontend.py

Prints one table: detector images/s (MediaPipe Hands on ../shared/realdata, or on
synthetic images when that folder is absent; with and without the flipped second pass),
skin-mask images/s at 640x480 (colour rule alone and refined by keypoints), and crops/s
at 256x256 (image warp + K + keypoints). Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.geometry import crop as C  # noqa: E402
from handtools.core.perception import skin as S  # noqa: E402

REALDATA = REPO.parent / "shared" / "realdata"


def _rate(fn, items, min_seconds: float) -> float:
    """Items per second of ``fn`` over ``items``, repeated for at least ``min_seconds``."""
    fn(items[0])  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        for it in items:
            fn(it)
        n += len(items)
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n / dt


def _synthetic_hand(rng, w=640, h=480):
    """A skin-coloured hand drawn from keypoints on a noisy background, and its keypoints."""
    cx, cy, size = rng.uniform(200, 440), rng.uniform(180, 300), rng.uniform(120, 200)
    wrist = np.array([cx, cy + 0.5 * size])
    kp = [wrist]
    for bx, dx in zip((-0.35, -0.2, 0.0, 0.17, 0.32), (-0.8, -0.1, 0.0, 0.1, 0.25)):
        d = np.array([dx, -1.0]) / np.hypot(dx, 1.0)
        base = np.array([cx + bx * size, cy - 0.1 * size])
        kp += [base + k * 0.16 * size * d for k in range(4)]
    kp = np.concatenate([np.array(kp), np.ones((21, 1))], 1).astype(np.float32)
    img = np.clip(rng.normal(110, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    img[S.keypoint_mask(kp, (w, h)) > 0] = (224, 172, 105)
    return img, kp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum time per row")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    # -- detector ------------------------------------------------------------------------
    try:
        from handtools.core.perception.detector import HandDetector
    except ImportError as err:  # pragma: no cover
        print(f"detector skipped: {err}", file=sys.stderr)
        HandDetector = None
    if HandDetector is not None:
        files = sorted(REALDATA.glob("*.jpg")) if REALDATA.is_dir() else []
        if files:
            images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
            what = f"{len(images)} realdata photos"
        else:
            images = [_synthetic_hand(rng)[0] for _ in range(4)]
            what = "4 synthetic 640x480"
        mean_px = np.mean([im.shape[0] * im.shape[1] for im in images]) / 1e6
        try:
            for flip in (True, False):
                with HandDetector(max_hands=2, flip_check=flip) as det:
                    r = _rate(det.detect, images, args.seconds)
                rows.append((f"detect (flip_check={flip})", f"{what}, {mean_px:.2f} MP mean",
                             "images/s", r))
        except ImportError as err:
            print(f"detector skipped: {err}", file=sys.stderr)

    # -- skin masks ----------------------------------------------------------------------
    samples = [_synthetic_hand(rng) for _ in range(8)]
    rows.append(("skin_mask (colour only)", "640x480", "images/s",
                 _rate(lambda s: S.skin_mask(s[0]), samples, args.seconds)))
    rows.append(("skin_mask (+ keypoints)", "640x480, hand ~160 px", "images/s",
                 _rate(lambda s: S.skin_mask(s[0], s[1]), samples, args.seconds)))
    rows.append(("keypoint_mask", "640x480", "images/s",
                 _rate(lambda s: S.keypoint_mask(s[1], (640, 480)), samples, args.seconds)))

    # -- crops ---------------------------------------------------------------------------
    K = np.array([[600, 0, 320], [0, 600, 240], [0, 0, 1]], np.float32)

    def one_crop(s):
        box = C.hand_crop_box("bbox", keypoints=s[1])
        C.crop_image(s[0], box, 256)
        C.crop_K(K, box, 256)
        C.crop_points(s[1], box, 256)

    def stereo_crop(s):
        bl = C.hand_crop_box("bbox", keypoints=s[1])
        br = bl + np.array([-30.0, 2.0, -30.0, 2.0])
        bl, br, _ = C.stereo_crop_boxes(bl, br)
        for b in (bl, br):
            C.crop_image(s[0], b, 256)
            C.crop_K(K, b, 256)

    rows.append(("crop (image+K+keypoints)", "640x480 -> 256x256 bilinear", "crops/s",
                 _rate(one_crop, samples, args.seconds)))
    rows.append(("crop mask (nearest)", "640x480 -> 256x256", "crops/s",
                 _rate(lambda s: C.crop_image(s[0][..., 0], [100, 50, 400, 350], 256, "nearest"),
                       samples, args.seconds)))
    rows.append(("stereo crop pair", "2 x (640x480 -> 256x256)", "pairs/s",
                 _rate(stereo_crop, samples, args.seconds)))

    print(f"{'step':28s} {'input':34s} {'rate':>10s}  unit   (cv2 threads: {cv2.getNumThreads()})")
    for step, inp, unit, rate in rows:
        print(f"{step:28s} {inp:34s} {rate:10.1f}  {unit}")


if __name__ == "__main__":
    main()
