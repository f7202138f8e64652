"""Make ``docs/images/masks_realdata.png``: skin masks on the real photographs.

Runs the real pipeline in a shell on ``../shared/realdata`` (the folder beside the repo)::

    handtools import images REALDATA --resize 640x480 --out T/frames \\
        | handtools detect --out T/det | handtools crop --out T/crops \\
        | handtools mask --method skin --out T/masks

then tiles, for every sample kept, the 256x256 crop and the crop with its skin mask
(green tint, white outline) and the detected keypoints.

    $ python docs/scripts/make_mask_figure.py [--out docs/images/masks_realdata.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata"
sys.path.insert(0, str(REPO))

from handtools.core.hand.joints import BONES  # noqa: E402
from handtools.io.shards import ShardReader  # noqa: E402


def _run_pipeline(tmp: Path) -> list[Path]:
    h = f"{sys.executable} -m handtools -q"
    cmd = (f"{h} import images {REALDATA} --resize 640x480 --out {tmp / 'frames'}"
           f" | {h} detect --out {tmp / 'det'} | {h} crop --out {tmp / 'crops'}"
           f" | {h} mask --method skin --out {tmp / 'masks'}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit(f"pipeline failed ({p.returncode}):\n{p.stderr}")
    return [Path(line) for line in p.stdout.split() if line]


def _tile(image: np.ndarray, mask: np.ndarray, kp: np.ndarray, label: str) -> np.ndarray:
    """(280, 512, 3) RGB: a label strip over the crop | the crop with mask tint, outline, keypoints."""
    over = image.astype(np.float32)
    m = mask > 0
    over[m] = 0.5 * over[m] + 0.5 * np.array([40, 220, 60], np.float32)
    over = over.astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(over, contours, -1, (255, 255, 255), 1)
    pts = np.round(kp[:, :2] - 0.5).astype(int)
    for a, b in BONES:
        cv2.line(over, tuple(pts[a]), tuple(pts[b]), (255, 80, 40), 1, cv2.LINE_AA)
    for p in pts:
        cv2.circle(over, tuple(p), 2, (255, 80, 40), -1, cv2.LINE_AA)
    strip = np.full((24, 2 * image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, np.concatenate([image, over], axis=1)], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "masks_realdata.png")
    ap.add_argument("--columns", type=int, default=2)
    args = ap.parse_args()
    if not REALDATA.is_dir():
        raise SystemExit(f"{REALDATA} is absent")
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in _run_pipeline(Path(tmp)):
            with ShardReader(path, require=("images", "masks", "keypoints2d", "source")) as r:
                images, masks, kp = r.read("images"), r.read("masks"), r.read("keypoints2d")
                src, left, score = r.read("source"), r.read("hand/is_left"), r.read("hand/score")
            for i in range(len(images)):
                name = Path(str(src[i]).split(":")[0].split("#")[0]).stem
                side = "left" if left[i, 0] else "right"
                tiles.append(_tile(images[i, 0], masks[i, 0], kp[i, 0], f"{name} ({side}, {score[i, 0]:.2f})"))
    if not tiles:
        raise SystemExit("no hands detected")
    while len(tiles) % args.columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[k : k + args.columns], axis=1) for k in range(0, len(tiles), args.columns)]
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image  # pillow (a matplotlib dependency): 256-colour PNG, a third of the size

    Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
