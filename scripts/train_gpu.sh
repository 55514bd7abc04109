#!/usr/bin/env bash
# The shipped model's training on a machine with a GPU and many cores, in a fixed wall-clock budget:
# featurise every part on all cores, check the whole path on a 3-step run (fails in seconds, not at the
# first validation), train on the GPU with a larger batch for the time left, and ship fp16 weights.
#   PARTS=a,b,c RUN=runs/gpu BUDGET_S=540 SHIP=src/tracr_decompiler/pretrained bash scripts/train_gpu.sh
# INIT_FROM=src/tracr_decompiler/pretrained warm-starts from the shipped model (its architecture; `train --init-from`).
# Dropout 0.1 (the CPU default is 0: attention dropout is its largest cost; a GPU does not notice).
# Steps are sized from the time left at STEPS_PER_S (one H200 measured 30 steps/s at batch 128 and 12 at 512), so the
# learning rate's cosine ends near the deadline; --max-minutes stops the run there in any case.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-540} ))
RUN=${RUN:-runs/gpu}
SHIP=${SHIP:-$RUN/ship}
BATCH=${BATCH:-256}
LR=${LR:-1e-3}
STEPS_PER_S=${STEPS_PER_S:-18}
RESERVE_S=${RESERVE_S:-75}  # the last validation, checkpoint, plot and export

$PY -c "import pathlib, sys; from tracr_decompiler.training import data
data.prepare_many([(d, s, None) for d in sys.argv[1].split(',') for s in ('train', 'val')],
                  pathlib.Path(sys.argv[2]) / 'cache')" "$PARTS" "$RUN"
mkdir -p "$RUN-check"
ln -sfn "$(realpath "$RUN/cache")" "$RUN-check/cache"
$PY -m tracr_decompiler.cli train --data "$PARTS" --out "$RUN-check" --steps 3 --batch-size "$BATCH" \
  --eval-every 3 --eval-examples 40 --quiet
LEFT=$(( DEADLINE - $(date +%s) - RESERVE_S ))
STEPS=$(( LEFT * STEPS_PER_S ))
echo "training for at most ${LEFT}s, $STEPS steps"
INIT=()
[ -n "${INIT_FROM:-}" ] && INIT=(--init-from "$INIT_FROM")
$PY -m tracr_decompiler.cli train --data "$PARTS" --out "$RUN" --steps "$STEPS" --batch-size "$BATCH" "${INIT[@]}" \
  --lr "$LR" --warmup 300 --dropout "${DROPOUT:-0.1}" --eval-every 1000 --max-minutes "$(( LEFT / 60 )).$(( (LEFT % 60) * 10 / 60 ))"
$PY scripts/ship_model.py "$RUN" "$SHIP"
