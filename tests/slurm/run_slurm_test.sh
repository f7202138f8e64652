#!/usr/bin/env bash
# Tests examples/slurm/ against a real single-node Slurm started here, then stopped.
#
#   make slurm-test                   # or: VENV=/path/to/venv tests/slurm/run_slurm_test.sh
#
# Needs root, Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge) and an
# installed handtools (VENV, default .venv). Everything lives in a temporary folder:
# a munge key and socket, slurm.conf (proctrack/linuxproc, task/none, one node, one
# partition), the daemons' state and logs, the jobs' data. The daemons run niced and are
# stopped by PID at the end (KEEP=1 keeps the folder). Checks:
#   1. array jobs: each shard of each stage (synth, detect|crop|mask, predict) made exactly once
#   2. the dependency chain (pipeline.sh) ends with evaluate's gate passing (exit 0), and a
#      gate set too high fails (exit 1, one-line reason)
#   3. a training job requeued mid-run (scontrol requeue) resumes and ends with the same
#      weights as an uninterrupted run
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
EX=$REPO/examples/slurm
T=$(mktemp -d "${TMPDIR:-/tmp}/handtools-slurm.XXXXXX")
chmod 755 "$T"  # munged wants every folder above its socket searchable
T0=$SECONDS
say() { printf '[slurm-test %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || fail "$tool not found (apt-get install -y slurm-wlm munge)"
done
[ "$(id -u)" = 0 ] || fail "run as root (the test starts slurmd)"
[ -x "$VENV/bin/handtools" ] || fail "$VENV/bin/handtools not found (make install, or VENV=...)"

# ---- daemons -----------------------------------------------------------------------------
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
stop_daemons() {
    local rc=$?
    if [ -n "${SLURM_CONF:-}" ]; then scancel --quiet --user=root 2>/dev/null || true; fi
    for pidfile in "$T/run/slurmd.pid" "$T/run/slurmctld.pid" "$T/run/munged.pid"; do
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$rc" != 0 ]; then
        say "logs kept in $T"
    elif [ -z "${KEEP:-}" ]; then
        rm -rf "$T"
    fi
}
trap stop_daemons EXIT

mkdir -p "$T/munge" "$T/key" "$T/run" "$T/log" "$T/state" "$T/spool" "$T/work"
chmod 755 "$T/munge"; chmod 700 "$T/key"
dd if=/dev/urandom of="$T/key/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/key/munge.key"
munged --key-file="$T/key/munge.key" --socket="$T/munge/munge.socket" --pid-file="$T/run/munged.pid" \
    --log-file="$T/log/munged.log" --seed-file="$T/run/munged.seed"

host=$(hostname -s)
cat > "$T/slurm.conf" <<CONF
ClusterName=handtools-test
SlurmctldHost=$host
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=60
MinJobAge=3600
# The examples ask for 4-8 CPUs per task, as on a cluster node: the node claims 8 here.
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
# Jobs inherit slurmd's niceness: the test shares the machine politely.
slurmctld -f "$SLURM_CONF" -i
nice -n 10 slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo -h -o %t | grep -qx idle || fail "the node did not come up (logs in $T/log)"
say "slurm up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"

# What the jobs run: this checkout's handtools, one thread per process.
export PATH=$VENV/bin:$PATH PYTHONPATH=$REPO OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# ---- helpers ------------------------------------------------------------------------------
job_field() { scontrol show job "$1" | grep -o "$2=[^ ]*" | cut -d= -f2; }
wait_jobs() {  # wait until none of the given jobs (or array jobs) is pending or running
    local limit=$1; shift
    local start=$SECONDS
    while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; do
        [ $((SECONDS - start)) -lt "$limit" ] || { squeue; fail "jobs $* still queued after ${limit}s"; }
        sleep 2
    done
}
states() { scontrol show job "$1" | grep -o 'JobState=[^ ]*\|ExitCode=[^ ]*' | paste -sd' '; }
all_ok() {  # every task of the (array) job completed with exit code 0
    local bad
    bad=$(scontrol show job "$1" | grep -o 'JobState=[^ ]*' | grep -vc 'JobState=COMPLETED' || true)
    [ "$bad" = 0 ] || { for f in "$W"/*"$1"*.out; do tail -n 20 "$f" >&2; done; fail "job $1 ($2): $(states "$1")"; }
}
once() {  # the tasks of array job $1 made each shard in $2 exactly once (and $3 of them, if given)
    local job=$1 dir=$2 n=${3:-} got made
    got=$(cat "$W"/*-"$job"_*.out | grep -E "^$dir/[^ ]+\.h5$" | sort)
    made=$(cd "$W" && find "$dir" -name '*.h5' | sort)
    [ -n "$got" ] || fail "job $job: no shards in the logs"
    [ -z "$(echo "$got" | uniq -d)" ] || fail "job $job: shards made twice: $(echo "$got" | uniq -d | paste -sd' ')"
    [ "$got" = "$made" ] || fail "job $job: the logs list $(echo "$got" | wc -l) shards, $dir holds $(echo "$made" | wc -l)"
    [ -z "$n" ] || [ "$(echo "$got" | wc -l)" = "$n" ] || fail "job $job: $(echo "$got" | wc -l) shards, want $n"
    say "job $job: $(echo "$got" | wc -l) shards in $dir, each made once by one of $(ls "$W"/*-"$job"_*.out | wc -l) tasks"
}

W=$T/work
# ---- 1 + 2: the whole pipeline as a dependency chain -------------------------------------
# tiny sizes: 2 array tasks per stage, 2-sample shards, 160x120 frames, 64x64 crops
export PARTS=2 STUDIO=12 INDOOR=8 TEST=8 SHARD=2 IMAGE=160x120 CROP=64 GATE=pck_auc=0
export PRETRAIN_ARGS="--encoder resnet18 --epochs 2 --batch-size 4 --lr 1e-3 --device cpu"
export ADAPT_ARGS="--epochs 1 --batch-size 2 --device cpu --renderer torch"
export PREDICT_ARGS="--device cpu"
gate=$("$EX/pipeline.sh" "$W")
jobs=$(squeue -h -o %F | sort -u | paste -sd' ')
say "pipeline submitted: jobs $jobs (gate $gate)"
# a second gate on the same predictions, set higher than any model reaches: must fail
pred=$(squeue -h -n predict -o %F | head -n 1)
high=$(sbatch --parsable --chdir="$W" --kill-on-invalid-dep=yes --dependency=afterok:"$pred" --job-name=evaluate-high --output=%x-%j.out \
    --wrap "handtools evaluate --metric pck --fail-under pck_auc=1.01 preds > eval-high.json")
wait_jobs 1800 $jobs "$high"
for j in $jobs; do all_ok "$j" "$(job_field "$j" JobName | head -n 1)"; done
say "chain: every job COMPLETED, gate $gate $(states "$gate")"
[ "$(job_field "$gate" ExitCode)" = "0:0" ] || fail "gate job exit $(job_field "$gate" ExitCode)"
# detect drops frames without a hand (and a shard with none): later stages are counted, not fixed
for name in synth-studio:studio:6 synth-indoor:indoor:4 synth-test:test:4 prep-studio:studio-prep/masked:6 \
            prep-indoor:indoor-prep/masked prep-test:test-prep/masked predict:preds; do
    IFS=: read -r jname dir n <<< "$name"
    once "$(squeue -h -n "$jname" -o %F -t all | head -n 1)" "$dir" "$n"
done
"$VENV/bin/python" - "$W/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert 1 <= r["num_samples"] <= 8 and "pck_auc" in r, r
print(f"[slurm-test] evaluate: {r['num_samples']} samples, pck_auc {r['pck_auc']:.3f}", file=sys.stderr)
PY
[ "$(job_field "$high" JobState)" = FAILED ] && [ "$(job_field "$high" ExitCode)" = "1:0" ] \
    || fail "the high gate should fail with exit 1: $(states "$high")"
reason=$(grep 'gate failed' "$W"/evaluate-high-"$high".out)
[ "$(echo "$reason" | wc -l)" = 1 ] || fail "want one line 'gate failed' in the log, got: $reason"
say "high gate: FAILED exit 1: $reason"

# ---- 3: requeue a training job mid-run -----------------------------------------------------
# The same tiny pretrain twice: uninterrupted, and requeued (SIGTERM to all of the job's
# processes, as on preemption) once it has written a checkpoint; both must end with equal weights.
targs=(--encoder resnet18 --epochs 4 --batch-size 2 --lr 1e-3 --device cpu --checkpoint-every 3 studio-prep/crops)
full=$(sbatch --parsable --chdir="$W" --job-name=train-full "$EX/train.sbatch" pretrain full.pt "${targs[@]}")
wait_jobs 900 "$full"
all_ok "$full" train-full
rq=$(sbatch --parsable --chdir="$W" --job-name=train-requeued "$EX/train.sbatch" pretrain requeued.pt "${targs[@]}")
for _ in $(seq 600); do [ -e "$W/requeued.pt" ] && break; sleep 0.5; done
[ -e "$W/requeued.pt" ] || fail "no checkpoint from job $rq: $(states "$rq")"
sleep 2
[ "$(job_field "$rq" JobState)" = RUNNING ] || fail "job $rq finished before the requeue: $(states "$rq")"
scontrol requeue "$rq"
say "requeued job $rq after its first checkpoint"
# Slurm holds a requeued job for two minutes (BeginTime); release it now.
for _ in $(seq 120); do [ "$(job_field "$rq" JobState)" = PENDING ] && break; sleep 0.5; done
scontrol update JobId="$rq" StartTime=now
wait_jobs 900 "$rq"
all_ok "$rq" train-requeued
[ "$(job_field "$rq" Restarts)" = 1 ] || fail "job $rq: Restarts=$(job_field "$rq" Restarts), want 1"
grep -q "restart 1, resuming" "$W/train-requeued-$rq.out" || fail "the requeued job did not resume"
grep -h "resuming\|interrupted" "$W/train-requeued-$rq.out" | sed 's/^/    /' >&2
"$VENV/bin/python" - "$W/full.pt" "$W/requeued.pt" <<'PY'
import sys, torch
a, b = (torch.load(p, map_location="cpu", weights_only=False) for p in sys.argv[1:])
assert a["finished"] and b["finished"] and a["global_step"] == b["global_step"], (a["global_step"], b["global_step"])
diff = max((a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in a["model"])
print(f"[slurm-test] uninterrupted vs requeued: {a['global_step']} steps each, max |weight difference| {diff:.3g}",
      file=sys.stderr)
assert diff == 0.0, diff
PY
say "PASS: $(squeue -h -t all -o %i | wc -l) jobs (array tasks counted), ${SECONDS}s"
