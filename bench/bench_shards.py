"""Shard write and read throughput (crops at 256x256) per compression, and size on disk.

    $ python bench/bench_shards.py              # quick: 48 samples, 3 repeats
    $ python bench/bench_shards.py --full       # 256 samples, 5 repeats
    $ python bench/bench_shards.py --num 128 --compression lzf gzip

Content: synthetic crops rendered in process by ``handtools.core.data.synth_render``
(indoor clutter background, a hand filling most of the crop, sensor noise), so the
images compress as real crops do (zeros would compress unrealistically well). Each
sample holds ``images`` (V, 256, 256, 3) uint8, ``K`` (V, 3, 3), ``keypoints2d``
(V, 21, 3) and ``verts3d`` (778, 3); V = 1 and V = 2.

Rows per (V, compression):
* write: ``ShardWriter.append`` in batches of 8, one shard, file closed and renamed;
* read seq (ShardReader): ``ShardReader.read(name, slice)`` in batches of 8, in order;
* read seq / read random (ShardDataset): one ``ShardDataset[i]`` per sample, in order
  or in a random permutation (as a shuffling DataLoader does).
crops/s counts images (sample x view) per second; KiB/sample is the shard's size on
disk divided by the samples. Median over repeats; the page cache is warm (files were
just written), so reads measure decompression and h5py, not the disk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.io.dataset import ShardDataset  # noqa: E402
from handtools.io.shards import ShardReader, ShardWriter  # noqa: E402
from run_all import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)

FIELDS = ("images", "K", "keypoints2d", "verts3d")
SIZE = 256
BATCH = 8


def synth_crops(num: int, views: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``num`` samples of rendered 256x256 crops with ``views`` views (a stereo rig for 2)."""
    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer
    from handtools.core.data.synth import DOMAINS, STB_BASELINE, camera_rig
    from handtools.core.data.synth_render import SceneRenderer

    hw = (SIZE, SIZE)
    focal = 520.0  # a hand at 0.45-0.7 m spans about 150-230 px: most of the crop, as after handtools crop
    ks, ts = camera_rig(views, hw, focal, STB_BASELINE)
    scene = SceneRenderer(HandModel.from_path(None), Renderer("torch"), DOMAINS["indoor"], hw, ks, ts,
                          STB_BASELINE if views == 2 else None, seed=seed)
    parts = []
    with torch.no_grad():
        for start in range(0, num, BATCH):
            b = scene.render_batch(np.arange(start, min(num, start + BATCH)))
            parts.append({k: b[k] for k in FIELDS})
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


def bench_one(data: dict, views: int, compression: str, folder: Path, repeats: int, rng) -> dict:
    n = len(data["images"])
    write, seq, ds_seq, ds_rand = [], [], [], []
    path = folder / f"v{views}-{compression}.h5"
    for r in range(repeats):
        t = time.perf_counter()
        with ShardWriter(folder, kind="crops", num_views=views, producer="bench_shards", shard_size=n,
                         name=lambda _, p=path: p.name, overwrite=True, compression=compression) as w:
            for s in range(0, n, BATCH):
                w.append({k: v[s : s + BATCH] for k, v in data.items()})
        write.append(time.perf_counter() - t)

        t = time.perf_counter()
        with ShardReader(path, FIELDS) as reader:
            for s in range(0, n, BATCH):
                for k in FIELDS:
                    reader.read(k, slice(s, s + BATCH))
        seq.append(time.perf_counter() - t)

        for order, out in ((np.arange(n), ds_seq), (rng.permutation(n), ds_rand)):
            ds = ShardDataset([path], list(FIELDS))  # index built here (files opened, validated, closed)
            t = time.perf_counter()
            for i in order:
                ds[int(i)]
            out.append(time.perf_counter() - t)
            ds.close()
        if r == 0:  # the data round-trips (checked once)
            with ShardReader(path) as reader:
                assert np.array_equal(reader.read("images"), data["images"])
    crops = n * views
    return {
        "write": crops / statistics.median(write),
        "read seq (ShardReader)": crops / statistics.median(seq),
        "read seq (ShardDataset)": crops / statistics.median(ds_seq),
        "read random (ShardDataset)": crops / statistics.median(ds_rand),
        "kib": path.stat().st_size / 1024 / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num", type=int, default=None, help="samples per shard (default 48, --full 256)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, --full 5)")
    ap.add_argument("--views", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--compression", nargs="+", default=["lzf", "gzip", "none"], choices=["lzf", "gzip", "none"])
    ap.add_argument("--full", action="store_true", help="longer preset")
    args = ap.parse_args()
    num = args.num or (256 if args.full else 48)
    repeats = args.repeats or (5 if args.full else 3)
    print(machine_info())
    t = time.perf_counter()
    stereo = synth_crops(num, 2)
    print(f"content: {num} rendered indoor crops {SIZE}x{SIZE} (stereo pairs; V=1 uses the left view), "
          f"made in {time.perf_counter() - t:.1f} s; {repeats} repeats, medians")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for views in args.views:
            data = stereo if views == 2 else {
                "images": stereo["images"][:, :1], "K": stereo["K"][:, :1],
                "keypoints2d": stereo["keypoints2d"][:, :1], "verts3d": stereo["verts3d"],
            }
            for comp in args.compression:
                rows.append((views, comp, bench_one(data, views, comp, Path(tmp), repeats, rng)))
    cols = {"write": "write", "read seq (ShardReader)": "seq Reader", "read seq (ShardDataset)": "seq Dataset",
            "read random (ShardDataset)": "rand Dataset"}
    print("crops/s (images = sample x view, per second)")
    print(f"{'V':>2} {'compression':<12}" + "".join(f"{c:>13}" for c in cols.values()) + f"{'KiB/sample':>12}")
    for views, comp, res in rows:
        print(f"{views:>2} {comp:<12}" + "".join(f"{res[c]:>13.0f}" for c in cols) + f"{res['kib']:>12.1f}")
    raw = SIZE * SIZE * 3 / 1024
    print(f"(seq Reader: ShardReader.read of 8-sample slices; seq/rand Dataset: ShardDataset[i] in order / shuffled; "
          f"write includes closing and renaming the shard; raw image data is {raw:.0f} KiB per view)")


if __name__ == "__main__":
    main()
