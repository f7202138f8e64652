"""Benchmark the renderer: forward + backward, batch 4, a 778-vertex 1538-face mesh.

    $ python bench/bench_render.py            # CPU torch backend (+ nvdiffrast if CUDA)
    $ python bench/bench_render.py --repeat 10

Uses the bundled open hand model's template (handtools/data/open_hand_right.npz)
when it exists, else a hand-sized deformed sphere with the same vertex and face
counts. The mesh is placed so it fills a hand crop (about half the image).
Prints one table row per (backend, size): mean / median seconds per
forward+backward of silhouette + depth + RGB losses, and peak memory.
Target on a 2-core CPU: <= 0.5 s and <= 2 GB at 224^2 and 256^2.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from handtools.core.render import Renderer, default_light  # noqa: E402


def hand_like_mesh() -> tuple[np.ndarray, np.ndarray, str]:
    """(778, 3) float vertices in metres, (1538, 3) faces, and where they came from."""
    npz = REPO / "handtools" / "data" / "open_hand_right.npz"
    if npz.exists():
        data = np.load(npz)
        return data["v_template"].astype(np.float32), data["f"].astype(np.int64), npz.name
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3)  # 642 v, 1280 f
    # Subdivide a few faces to reach 778 vertices / 1538 faces (each split adds 1 vertex, 2 faces).
    v = np.asarray(sphere.vertices, dtype=np.float64)
    f = np.asarray(sphere.faces, dtype=np.int64)
    extra = 778 - len(v)
    centres = v[f[:extra]].mean(1)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    new_ids = np.arange(len(v), len(v) + extra)
    a, b, c = f[:extra].T
    split = np.concatenate([np.stack([a, b, new_ids], 1), np.stack([b, c, new_ids], 1), np.stack([c, a, new_ids], 1)])
    f = np.concatenate([f[extra:], split])
    f = np.delete(f, np.arange(14) * 97, axis=0)  # open 14 scattered holes: 1538 faces like MANO
    v = np.concatenate([v, centres])
    # Flatten and stretch into a hand-sized slab (palm + fingers ~ 18 x 9 x 3 cm) with a bend.
    v = v * np.array([0.045, 0.09, 0.015])
    v[:, 2] += 0.02 * np.sin(v[:, 1] / 0.09 * 2.0)
    return v.astype(np.float32), f, "deformed icosphere"


def bench(renderer: Renderer, verts, faces, K, size, colors, light, repeat: int):
    times, cpu = [], []
    for i in range(repeat + 1):
        v = verts.clone().requires_grad_(True)
        c = colors.clone().requires_grad_(True)
        li = light.clone().requires_grad_(True)
        if v.is_cuda:
            torch.cuda.synchronize()
        t, c0 = time.perf_counter(), time.process_time()
        out = renderer.render(v, faces, K, size, colors=c, light=li)
        loss = out.silhouette.mean() + out.depth.mean() + out.rgb.mean()
        loss.backward()
        if v.is_cuda:
            torch.cuda.synchronize()
        if i:  # first call warms caches
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c0)
    return statistics.mean(times), statistics.median(times), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 256])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    v, f, source = hand_like_mesh()
    print(f"mesh: {source}, {len(v)} vertices, {len(f)} faces; batch {args.batch}; torch threads {torch.get_num_threads()}")
    rows = []
    devices = [("torch", "cpu")]
    if torch.cuda.is_available():
        devices += [("nvdiffrast", "cuda"), ("torch", "cuda")]
    for backend, device in devices:
        renderer = Renderer(backend, device=device)
        for size in args.sizes:
            B = args.batch
            verts = torch.as_tensor(v, device=device)
            verts = verts - verts.mean(0)
            # Look at the hand's flat side: principal axes, thinnest along the optical axis.
            _, _, vt = torch.linalg.svd(verts.cpu().double(), full_matrices=False)
            vt[2] *= torch.linalg.det(vt)
            verts = verts @ vt.T.to(verts)
            rng = torch.Generator().manual_seed(0)
            angle = torch.rand(B, generator=rng) * 0.6 - 0.3
            rot = torch.zeros(B, 3, 3)
            rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = angle.cos(), -angle.sin(), angle.sin(), angle.cos(), 1
            verts = verts[None] @ rot.to(device).transpose(1, 2) + torch.tensor([0.0, 0.0, 0.5], device=device)
            extent = (verts[..., :2].amax(1) - verts[..., :2].amin(1)).amax().item()
            focal = 0.9 * size * 0.5 / extent  # at z = 0.5 m the mesh spans 90% of the crop, as in a hand crop
            K = torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], device=device).expand(B, 3, 3)
            faces = torch.as_tensor(f, device=device)
            colors = torch.full((B, len(v), 3), 0.7, device=device)
            light = default_light(B, device=device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            mean, median, cpu = bench(renderer, verts, faces, K, (size, size), colors, light, args.repeat)
            if device == "cuda":
                peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (CUDA)"
            else:
                peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (RSS)"
            rows.append((f"{renderer.backend} ({device})", f"{size}x{size}", mean, median, cpu, peak))
    print(f"{'backend':<22}{'size':>9}{'mean s':>9}{'median s':>10}{'cpu s':>8}  peak memory")
    for name, size, mean, median, cpu, peak in rows:
        print(f"{name:<22}{size:>9}{mean:>9.3f}{median:>10.3f}{cpu:>8.3f}  {peak}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(wall seconds per forward+backward; cpu s = process CPU seconds, all threads; "
          f"1-min load average {load:.1f} on {os.cpu_count()} cores: other load inflates wall time)")


if __name__ == "__main__":
    main()
