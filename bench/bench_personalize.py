"""personalize (DeepHandMesh) on a test subject the shape space cannot express.

1. A test subject (``core/data/subject.py``, seed 0): finger bones +-7-10 %, 2-3 mm normal
   offsets on the palm and two fingers, 3x pose correctives plus bulges. Its true template
   is known exactly.
2. ``synth --mano subject.npz --views 6 --rig dome`` renders a training capture (seed 1)
   and a held-out capture (seed 2, other poses), 128x128, ground-truth joints and depth.
3. ``personalize --fit-poses`` trains: the full model, a shape-only baseline (MANO's 10
   shape coefficients, same losses and data), and two ablations (no ΔS_β, no L_penet).
4. Held-out: each exported model frozen, per-frame poses fitted with the same losses; joint
   error and vertex-to-surface error (fitted vertices to the true posed surface), zero-pose
   template error against the true template, and interpenetration (share of finger
   vertices inside another finger's sphere proxies).

$ nice -n 10 python bench/bench_personalize.py --steps 500 --frames 24 --test-frames 12
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "handtools", "-q", *args], capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"handtools {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def load_capture(folder: Path):
    import h5py

    out = {}
    for f in sorted(folder.glob("*.h5")):
        with h5py.File(f) as h:
            for k in ("joints3d", "verts3d", "depth", "K", "T_view"):
                out.setdefault(k, []).append(h[k][:])
    return {k: np.concatenate(v) for k, v in out.items()}


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distance from points p (N, 3) to triangles (a, b, c) (N, 3) each (Ericson, Real-Time
    Collision Detection, §5.1.5), vectorised."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    v = vb / np.where(denom == 0, 1, denom)
    w = vc / np.where(denom == 0, 1, denom)
    q = a + ab * v[:, None] + ac * w[:, None]  # inside the face
    eps = 1e-30
    # edge regions
    t_ab = d1 / np.where(d1 - d3 == 0, eps, d1 - d3)
    t_ac = d2 / np.where(d2 - d6 == 0, eps, d2 - d6)
    t_bc = (d4 - d3) / np.where((d4 - d3) + (d5 - d6) == 0, eps, (d4 - d3) + (d5 - d6))
    q = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[:, None], b + (c - b) * t_bc[:, None], q)
    q = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[:, None], a + ac * t_ac[:, None], q)
    q = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[:, None], a + ab * t_ab[:, None], q)
    q = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, q)
    q = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, q)
    q = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, q)
    return np.linalg.norm(p - q, axis=-1)


def point_to_surface(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, k: int = 24) -> np.ndarray:
    """(N,) distance from each point to the mesh surface (exact over the k triangles whose
    centroids are nearest; a hand's triangles are small, so the closest one is among them)."""
    from scipy.spatial import cKDTree

    tri = verts[faces]  # (F, 3, 3)
    _, idx = cKDTree(tri.mean(1)).query(points, k=k)  # (N, k)
    p = np.repeat(points, k, 0)
    t = tri[idx.reshape(-1)]
    return closest_point_on_triangles(p, t[:, 0], t[:, 1], t[:, 2]).reshape(len(points), k).min(1)


def evaluate(npz: Path, subject: dict, test: dict, steps: int, seed: int = 0, use_penet: bool = True) -> dict:
    """Freeze the exported model, fit poses on the held-out capture, measure."""
    from handtools.core.hand.mano_io import load_mano
    from handtools.core.methods.deephandmesh.config import CPU
    from handtools.core.methods.deephandmesh.fit import FrameData, fit, palm_vertices
    from handtools.core.methods.deephandmesh.loss import (
        FINGER_BONES,
        TIP_BONES,
        DeepHandMeshLoss,
        SphereProxies,
        nonrigid_penetration,
        rigid_penetration,
    )
    from handtools.core.methods.deephandmesh.model import PersonalHandModel, kabsch
    from handtools.core.methods.deephandmesh.views import crop_depth_views
    from handtools.core.render import Renderer

    arrays = load_mano(npz)
    cfg = replace(CPU, init_std=0.0, skeleton_corrective=False, identity_corrective=False)
    model = PersonalHandModel(arrays, cfg)
    depth, K = crop_depth_views(test["depth"], test["K"], test["T_view"], test["joints3d"], cfg.depth_size)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    data = FrameData(t(test["joints3d"]), torch.ones(len(depth), 21, dtype=torch.bool), t(depth), t(K),
                     t(test["T_view"]))
    loss = DeepHandMeshLoss(cfg, model.faces, palm_vertices(model.weights), Renderer("torch"))
    poses, _ = fit(model, data, cfg, loss, steps, train_model=False, seed=seed, use_penet=use_penet)
    with torch.no_grad():
        out = model(poses.pose, poses.trans)
        rest = model(torch.zeros(1, 48))
    joints, verts = out["joints"].numpy(), out["verts"].numpy()
    jerr = np.linalg.norm(joints - test["joints3d"], axis=-1).mean() * 1e3
    faces = subject["f"]
    v2s = []
    for i in range(len(verts)):
        v2s.append(point_to_surface(verts[i].astype(np.float64), test["verts3d"][i].astype(np.float64),
                                    faces).mean())
    template = np.linalg.norm(arrays["v_template"] - subject["v_template"], axis=1).mean() * 1e3
    # the template's placement in model space is not observable (per-frame global poses absorb
    # it): also after the rigid (Kabsch) alignment onto the true template
    tv, sv = (torch.as_tensor(x, dtype=torch.float64)[None] for x in (arrays["v_template"], subject["v_template"]))
    R, tr = kabsch(tv, sv)
    aligned = (tv @ R.transpose(1, 2) + tr[:, None])[0].numpy()
    template_rigid = np.linalg.norm(aligned - subject["v_template"], axis=1).mean() * 1e3
    # interpenetration: finger vertices inside a sphere of another finger's bones
    sp = SphereProxies(rest["joints"][0], rest["verts"][0], 10)
    centres = sp.centres(out["joints"])  # (F, n, K, 3)
    finger_of_bone = torch.tensor([(c - 1) // 4 for _, c in FINGER_BONES])
    dom = torch.as_tensor(arrays["weights"]).argmax(1)
    mano_finger = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 10: 3, 11: 3, 12: 3, 7: 4, 8: 4, 9: 4, 13: 0, 14: 0, 15: 0}
    vf = torch.tensor([mano_finger.get(int(j), -1) for j in dom])
    fv = vf >= 0
    d = torch.linalg.norm(out["verts"][:, fv, None, None] - centres[:, None], dim=-1)  # (F, Vf, n, K)
    inside = (d < sp.radii[None, None] - 1e-4) & (finger_of_bone[None, None, :, None] != vf[fv][None, :, None, None])
    pen = inside.any(-1).any(-1).float().mean().item() * 100
    # the proxies' own overlap: eq. 2 (rigid) and eqs. 3-4 (fingertips in the palm), mm per frame
    with torch.no_grad():
        palm = palm_vertices(model.weights)
        overlap_r = rigid_penetration(centres, sp.radii, sp.pairs).mean().item()
        overlap_nr = nonrigid_penetration(centres, sp.radii, out["verts"][:, palm], TIP_BONES).mean().item()
    return {"joint_mm": float(jerr), "v2s_mm": float(np.mean(v2s) * 1e3), "template_mm": float(template),
            "template_rigid_mm": float(template_rigid), "penetrating_pct": pen, "overlap_r_mm": overlap_r,
            "overlap_nr_mm": overlap_nr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--eval-steps", type=int, default=300)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--test-frames", type=int, default=12)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--subject-seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--runs", default="true-subject,full,shape-only,no-skeleton,no-penet",
                    help="true-subject: the subject's own model, the floor of the held-out fitting")
    ap.add_argument("--args", default="", help="extra personalize options for every run, e.g. '--lr 2e-3'")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from handtools.core.data.subject import make_test_subject
    from handtools.core.hand.mano_io import load_mano
    from handtools.core.hand.open_hand import bundled_model_path

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_personalize_"))
    work.mkdir(parents=True, exist_ok=True)
    subject = make_test_subject(load_mano(bundled_model_path()), seed=args.subject_seed)
    np.savez(work / "subject.npz", **subject)
    for name, n, seed in (("train", args.frames, 1), ("test", args.test_frames, 2)):
        if not (work / name).exists():
            run(["synth", "--mano", str(work / "subject.npz"), "--views", str(args.views), "--rig", "dome",
                 "--image-size", "128x128", "-n", str(n), "--seed", str(seed), "--out", str(work / name)])
    test = load_capture(work / "test")
    flags = {"full": [], "shape-only": ["--shape-only"], "no-skeleton": ["--no-skeleton"], "no-penet": ["--no-penet"]}
    rows = {}
    for name in args.runs.split(","):
        t0 = time.time()
        npz = work / ("subject.npz" if name == "true-subject" else f"{name}.npz")
        if not npz.exists():
            run(["personalize", *map(str, sorted((work / "train").glob("*.h5"))), "--out", str(npz),
                 "--steps", str(args.steps), *flags[name], *args.args.split()])
        rows[name] = evaluate(npz, subject, test, args.eval_steps, use_penet=name != "no-penet")
        rows[name]["seconds"] = round(time.time() - t0)
        print(name, json.dumps(rows[name]), file=sys.stderr, flush=True)
    print(f"subject seed {args.subject_seed}; train {args.frames} frames (seed 1), held-out {args.test_frames} "
          f"(seed 2), {args.views} views 128x128 dome; {args.steps} training steps, {args.eval_steps} pose-fitting "
          "steps per held-out run; ground-truth joints3d and depth from synth")
    print("| model | joint error (mm) | vertex-to-surface (mm) | template error, raw / rigidly aligned (mm) | "
          "finger vertices in another finger's proxy (%) | proxy overlap, rigid / fingertip-palm (mm per frame) "
          "| time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['joint_mm']:.2f} | {r['v2s_mm']:.2f} | {r['template_mm']:.2f} / "
              f"{r['template_rigid_mm']:.2f} | {r['penetrating_pct']:.2f} | {r['overlap_r_mm']:.2f} / "
              f"{r['overlap_nr_mm']:.2f} | {r['seconds']} |")
    if "full" in rows and "shape-only" in rows:
        f, b = rows["full"], rows["shape-only"]
        print(f"\nfull vs shape-only: joints {100 * (1 - f['joint_mm'] / b['joint_mm']):.0f}% lower, "
              f"vertex-to-surface {100 * (1 - f['v2s_mm'] / b['v2s_mm']):.0f}% lower")
    (work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
