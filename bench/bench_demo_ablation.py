"""The binocular paper's Table 1 and Table 2 on the demo's data.

Runs ``handtools demo`` (default preset) into ``--work`` unless it is there already,
then re-runs its ``selfsup-stereo`` step with each loss removed (and two extra
combinations), predicts the same 50 held-out indoor pairs and prints mean joint
error (absolute 3D, binocular), PA-MPJPE and PCK AUC per run.

    python bench/bench_demo_ablation.py --work /tmp/demo-bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import machine_info  # noqa: E402

RUNS = {
    "full (paper)": [],
    "no photo": ["--no-photo"],
    "no edge": ["--no-edge"],
    "no laplacian": ["--no-laplacian"],
    "no mask": ["--no-mask"],
    "no chamfer": ["--no-chamfer"],
    "no normal": ["--no-normal"],
    "no edge, no photo": ["--no-edge", "--no-photo"],
    "photo only": ["--no-edge", "--no-laplacian", "--no-mask", "--no-chamfer", "--no-normal"],
    # control: zero loss, so only BatchNorm's running statistics adapt to the indoor images
    "BatchNorm statistics only": ["--no-edge", "--no-laplacian", "--no-mask", "--no-chamfer", "--no-normal",
                                  "--weight", "photo=0"],
}


def ht(*args) -> str:
    p = subprocess.run([sys.executable, "-m", "handtools", "-q", *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"handtools {' '.join(map(str, args[:2]))} failed:\n{p.stderr}")
    return p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("demo-bench"), help="demo folder (made if missing)")
    ap.add_argument("--epochs", type=int, default=4, help="selfsup-stereo epochs (the demo's)")
    ap.add_argument("--lr", type=float, default=1e-4, help="selfsup-stereo lr (the demo's)")
    ap.add_argument("--only", nargs="*", help="run names to run (default: all)")
    args = ap.parse_args()
    w = args.work
    t0 = time.perf_counter()
    if not (w / "prior.pt").exists():
        ht("demo", "--out", w, "--overwrite")
    train = sorted((w / "indoor" / "train").glob("*.h5"))
    test = sorted((w / "indoor" / "test").glob("*.h5"))
    rows = []
    before = json.loads(ht("evaluate", *sorted((w / "pred-before").glob("*.h5"))))
    rows.append(("test directly (prior, binocular)", before))
    for name, flags in RUNS.items():
        if args.only and name not in args.only:
            continue
        tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        ck = w / "ablation" / f"{tag}.pt"
        ht("selfsup-stereo", "--init", w / "prior.pt", *train, "--epochs", args.epochs, "--lr", args.lr,
           "--milestones", "", "--seed", 0, *flags, "--out", ck, "--overwrite")
        ht("predict", "-c", ck, "--out", w / "ablation" / f"pred-{tag}", "--overwrite", *test)
        rows.append((name, json.loads(ht("evaluate", *sorted((w / "ablation" / f"pred-{tag}").glob("*.h5"))))))
    print(machine_info())
    print(f"held-out indoor stereo pairs: {rows[0][1]['num_samples']}; selfsup-stereo {args.epochs} epochs, lr {args.lr:g}")
    print(f"{'run':<36}{'MPJPE abs (mm)':>16}{'PA-MPJPE (mm)':>15}{'PCK AUC':>9}")
    for name, m in rows:
        print(f"{name:<36}{m['mpjpe_mm']:>16.2f}{m['pa_mpjpe_mm']:>15.2f}{m['pck_auc']:>9.3f}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
