#!/usr/bin/env bash
# One-GPU readiness check for handtools, under 8 minutes on one GPU; prints one table.
#
#   bash bench/gpu_check.sh              # on a CUDA machine: the full check
#   bash bench/gpu_check.sh --tiny       # tiny sizes (what the test suite runs, CPU fallback)
#   bash bench/gpu_check.sh --dry-run    # print the steps, run nothing
#
# Steps (each timed, each row of the table):
#   1. environment: python, torch, CUDA device (or "no CUDA": then every GPU step is skipped
#      with that reason, the rest still runs on the CPU, and the script exits 0);
#   2. nvdiffrast: import, then build its CUDA plugin (nvdiffrast compiles on first use) by
#      rasterising one triangle; if it is not installed and a wheel folder is given
#      (--wheels DIR or $HANDTOOLS_WHEELS, no network needed), pip-installs it from there;
#   3. GPU tests: pytest -m gpu (renderer agreement nvdiffrast vs the CPU torch path,
#      losses and warp on CUDA vs CPU, the self-supervised loss landscape with nvdiffrast);
#   4. selfsup-stereo, paper preset (256 px crops, ResNet-50, batch 4, lr 1e-5, paper loss
#      weights) for --steps steps (default 300) on synthetic indoor stereo crops, after a
#      1-step ResNet-50 prior (timing only, not accuracy): wall time, steps/s, s/step.
#
# Options: --steps N, --pairs N, --python PY, --work DIR (kept; default a temp folder),
#          --wheels DIR, --tiny, --dry-run. Exit status: 0 unless a step that could run failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

steps=300
pairs=160
tiny=0
dry=0
work=""
wheels="${HANDTOOLS_WHEELS:-}"
py="${PYTHON:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --python) py="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$py" ]; then
  if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py="$(command -v python3 || command -v python)"; fi
fi
if [ "$tiny" = 1 ]; then
  size=64; encoder=resnet18; frame=160x120; steps=2; pairs=8; studio=8; preset="tiny preset"
else
  size=256; encoder=resnet50; frame=640x480; studio=16; preset="paper preset"
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
h="$py -m handtools"

rows=()
failed=0
row() { rows+=("| $1 | $2 | $3 |"); }   # check, result, seconds
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

if [ "$dry" = 1 ]; then
  cat <<EOF
gpu_check (dry run): python $py; sizes: crops ${size}px, $encoder, $pairs pairs, $steps steps
1. $py -c 'import torch; torch.cuda.is_available()'
2. $py -c 'import nvdiffrast.torch; RasterizeCudaContext(); rasterize one triangle'${wheels:+ (after pip install --no-index --find-links $wheels diffrp-nvdiffrast if missing)}
3. $py -m pytest -q -m gpu tests/core
4. $h synth -n $studio --image-size $frame | $h crop --size $size --center gt | $h pretrain --encoder $encoder --max-steps 1
   $h synth --views 2 --domain indoor -n $pairs --image-size $frame | $h crop --size $size --center gt | $h mask
   $h selfsup-stereo --init prior.pt --max-steps $steps   (paper preset: batch 4, lr 1e-5, paper weights)
EOF
  exit 0
fi

if [ -z "$work" ]; then work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; else mkdir -p "$work"; fi
log="$work/gpu_check.log"
: > "$log"

# 1. environment
t=$(now)
env_line="$("$py" - <<'EOF' 2>>"$log"
import platform, torch
cuda = torch.cuda.is_available()
dev = torch.cuda.get_device_name(0) if cuda else "no CUDA"
print(f"{int(cuda)}|python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, {dev}")
EOF
)"
if [ -z "$env_line" ]; then
  echo "gpu_check: $py cannot import torch (see $log)" >&2
  cat "$log" >&2
  exit 1
fi
cuda="${env_line%%|*}"
row "environment" "${env_line#*|}" "$(since "$t")"
renderer=torch
if [ "$cuda" = 1 ]; then device=cuda; else device=cpu; echo "gpu_check: no CUDA: GPU steps skipped, the rest runs on the CPU" >&2; fi

# 2. nvdiffrast: import and build
t=$(now)
if [ "$cuda" != 1 ]; then
  row "nvdiffrast build" "skipped: no CUDA" "-"
else
  if ! "$py" -c "import nvdiffrast.torch" >>"$log" 2>&1 && [ -n "$wheels" ]; then
    "$py" -m pip install --no-index --find-links "$wheels" diffrp-nvdiffrast >>"$log" 2>&1 || true
  fi
  if "$py" - >>"$log" 2>&1 <<'EOF'
import torch
import nvdiffrast.torch as dr
ctx = dr.RasterizeCudaContext()
pos = torch.tensor([[[-0.5, -0.5, 0.5, 1.0], [0.5, -0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0]]], device="cuda")
tri = torch.tensor([[0, 1, 2]], dtype=torch.int32, device="cuda")
rast, _ = dr.rasterize(ctx, pos, tri, resolution=[64, 64])
assert int((rast[..., 3] > 0).sum()) > 100
EOF
  then
    row "nvdiffrast build" "ok (plugin built, one triangle rasterised)" "$(since "$t")"
    renderer=nvdiffrast
  else
    row "nvdiffrast build" "FAILED or not installed: pip install 'handtools[gpu]' (see log)" "$(since "$t")"
    failed=1
  fi
fi

# 3. GPU tests (collected and skipped without CUDA)
t=$(now)
out="$(timeout "${GPU_CHECK_TEST_TIMEOUT:-150}" "$py" -m pytest -q -m gpu -p no:cacheprovider tests/core 2>&1)"
rc=$?
echo "$out" >>"$log"
summary="$(echo "$out" | grep -E '[0-9]+ (passed|failed|skipped|deselected|error)' | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then failed=1; summary="FAILED: $summary"; fi
row "pytest -m gpu tests/core" "${summary:-no output (rc $rc)}" "$(since "$t")"

# 4. selfsup-stereo, paper preset, timed
t=$(now)
if ! {
  $h synth -n "$studio" --image-size "$frame" --seed 0 --out "$work/fs" --overwrite \
    | $h crop --size "$size" --center gt --out "$work/cs" --overwrite \
    | $h pretrain --encoder "$encoder" --max-steps 1 --batch-size 4 --device "$device" --out "$work/prior.pt" --overwrite \
    && $h synth --views 2 --domain indoor -n "$pairs" --image-size "$frame" --seed 1 --out "$work/fi" --overwrite \
    | $h crop --size "$size" --center gt --out "$work/ci" --overwrite \
    | $h mask --out "$work/mi" --overwrite >"$work/masked.txt"
} >>"$log" 2>&1; then
  row "selfsup-stereo data + 1-step prior" "FAILED (see log)" "$(since "$t")"
  failed=1
else
  row "selfsup-stereo data + 1-step prior" "$pairs pairs, ${size}px crops, $encoder" "$(since "$t")"
  t=$(now)
  # bounded so the whole check stays under 8 minutes
  if timeout "${GPU_CHECK_TRAIN_TIMEOUT:-330}" $h selfsup-stereo --init "$work/prior.pt" --max-steps "$steps" \
      --device "$device" --renderer "$renderer" \
      --out "$work/adapted.pt" --overwrite $(cat "$work/masked.txt") >>"$log" 2>&1; then
    secs="$(since "$t")"
    # training-only figures from the trainer's log (one line per epoch: steps, seconds)
    rate="$("$py" - "$work/adapted.log.jsonl" 2>>"$log" <<'EOF2'
import json, sys
lines = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
steps = sum(int(x.get("steps", 0)) for x in lines)
secs = sum(float(x.get("seconds", 0.0)) for x in lines)
print(f"{steps} steps in {secs:.1f} s of training: {steps / max(secs, 1e-9):.2f} steps/s, "
      f"{1000 * secs / max(steps, 1):.0f} ms/step; loss {lines[-1].get('loss', float('nan')):.3g}")
EOF2
)"
    row "selfsup-stereo $preset ($device, $renderer)" "${rate:-no trainer log} (wall incl. start-up and pseudo labels)" "$secs"
  else
    row "selfsup-stereo $preset ($device, $renderer)" "FAILED (see log)" "$(since "$t")"
    failed=1
  fi
fi

echo
echo "| check | result | seconds |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "$failed" = 1 ]; then
  echo
  echo "gpu_check: some step failed; last lines of $log:" >&2
  tail -n 40 "$log" >&2
fi
[ "$cuda" = 1 ] || echo "gpu_check: no CUDA (CPU fallback), GPU steps skipped" >&2
exit "$failed"
