#!/bin/bash
# The whole pipeline as a chain of Slurm jobs: each starts when the jobs it needs have
# succeeded (--dependency=afterok), a failure cancels what depends on it
# (--kill-on-invalid-dep), and the last job is the gate: `evaluate --fail-under`.
# Run it on the login node; it submits and prints the gate's job id.
#
#   examples/slurm/pipeline.sh work/          # then: scontrol show job <id> | grep ExitCode
#
#   synth studio ─ crop ──── pretrain ───────┐
#   synth indoor ─ prepare ───────────────── selfsup-stereo ─┐
#   synth test ─── prepare ───────────────────────────────── predict ─ evaluate --fail-under
#
# Sizes and options come from the environment (defaults: the paper's set-up, scaled to a GPU node):
: "${PARTS:=8}"            # array tasks per stage
: "${STUDIO:=20000}"       # labelled studio frames for pretrain
: "${INDOOR:=2000}"        # unlabelled indoor stereo pairs for selfsup-stereo
: "${TEST:=500}"           # held-out indoor pairs
: "${SHARD:=250}"          # samples per shard
: "${IMAGE:=640x480}"      # frame size
: "${CROP:=256}"           # crop side (the models' input)
: "${PRETRAIN_ARGS:=--encoder resnet50}"
: "${ADAPT_ARGS:=}"
: "${PREDICT_ARGS:=}"
: "${GATE:=pck_auc=0.2}"   # --fail-under of the final evaluate
: "${SBATCH_ARGS:=}"       # extra sbatch options for every job (e.g. --account=..., --partition=...)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mkdir -p "$1" && cd "$1" && pwd)
array=(--array=0-$((PARTS - 1)))
# shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
submit() { sbatch --parsable --kill-on-invalid-dep=yes --chdir="$work" $SBATCH_ARGS "$@" | cut -d';' -f1; }
after() { local IFS=:; echo "--dependency=afterok:$*"; }
synth() { submit "${array[@]}" --job-name="synth-$1" "$here/synth-array.sbatch" "$@" --image-size "$IMAGE" --shard-size "$SHARD"; }

s_studio=$(synth studio --domain studio -n "$STUDIO" --seed 1)
s_indoor=$(synth indoor --domain indoor --views 2 -n "$INDOOR" --seed 2)
s_test=$(synth test --domain indoor --views 2 -n "$TEST" --seed 3)
p_studio=$(submit "${array[@]}" "$(after "$s_studio")" --job-name=prep-studio --export=ALL,DETECT=no \
    "$here/prepare-array.sbatch" studio studio-prep --size "$CROP")
p_indoor=$(submit "${array[@]}" "$(after "$s_indoor")" --job-name=prep-indoor "$here/prepare-array.sbatch" \
    indoor indoor-prep --size "$CROP")
p_test=$(submit "${array[@]}" "$(after "$s_test")" --job-name=prep-test "$here/prepare-array.sbatch" \
    test test-prep --size "$CROP")
# shellcheck disable=SC2086  # *_ARGS are lists of options
t_prior=$(submit "$(after "$p_studio")" --job-name=pretrain "$here/train.sbatch" \
    pretrain prior.pt $PRETRAIN_ARGS studio-prep/crops)
# shellcheck disable=SC2086
t_adapt=$(submit "$(after "$p_indoor" "$t_prior")" --job-name=selfsup-stereo "$here/train.sbatch" \
    selfsup-stereo adapted.pt --init prior.pt $ADAPT_ARGS indoor-prep/masked)
# shellcheck disable=SC2086
pred=$(submit "${array[@]}" "$(after "$p_test" "$t_adapt")" --job-name=predict "$here/predict-array.sbatch" \
    adapted.pt test-prep/masked preds $PREDICT_ARGS)
gate=$(submit "$(after "$pred")" --job-name=evaluate --output=%x-%j.out \
    --wrap "handtools evaluate --metric pck --fail-under $GATE --label adapted preds > eval.json")
echo "$gate"
