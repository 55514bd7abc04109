#!/usr/bin/env bash
# Regenerates the training data and retrains the shipped decompiler in its two
# stages, then evaluates it on fresh test sets and tracr's lib. Stage 1 trains
# from scratch on rounds 0-4 (the shipped model: 4.8 minutes on a lent H200,
# GPU=1); stage 2 warm-starts from it on all parts (rounds 0-10, the 9-16 SOp
# parts in rounds 0-4 only) under torchrun, one rank per CPU core (the shipped
# model: 44 minutes on 2 cores). On 2 CPU cores: about 60 min of generation,
# 16 min of featurising, and an hour or more per training stage without a GPU.
# Every step resumes where it stopped if the script is killed and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/big}
RUN=${RUN:-runs/big}
STEPS=${STEPS:-12000}
STEPS2=${STEPS2:-8000}
CORES=${CORES:-$(nproc)}

# 1. Data: parts of the registry world, mixed settings 1-8 SOps and mixed settings 9-16 SOps (see the script).
BIN=$BIN OUT=$DATA ROUNDS=10 LARGE_ROUNDS=4 bash scripts/generate_training_data.sh
ROUND4=$(for p in reg mixed large; do echo "$DATA/$p"; for r in 1 2 3 4; do echo "$DATA/$p-r$r"; done; done | paste -sd,)
PARTS=$(ls -d "$DATA"/*/manifest.json | xargs -n1 dirname | paste -sd,)
$BIN/python scripts/count_programs.py ${PARTS//,/ }   # distinct programs in the train splits

# 2. Stage 1, from scratch on rounds 0-4 (NAR and AR heads on one encoder); resumes from $RUN/last after a kill.
if [ -n "${GPU:-}" ]; then  # a GPU machine (how the shipped model's stage 1 ran): a fixed wall-clock budget
  PY=$BIN/python PARTS=$ROUND4 RUN=$RUN SHIP=$RUN/ship bash scripts/train_gpu.sh
else
  $BIN/tracr-decompiler train --data "$ROUND4" --out "$RUN" --steps "$STEPS" --batch-size 32 --eval-every 1000 \
    --threads 1
  $BIN/python scripts/ship_model.py "$RUN" "$RUN/ship"
fi

# 3. Stage 2, warm-started from stage 1 on every part, one rank per core (rank 0 featurises, on every core).
# 4. Ship: the weights in float16 (half the size; loading casts back to float32) and the config.
$BIN/torchrun --standalone --nproc-per-node "$CORES" -m tracr_decompiler.cli train --data "$PARTS" --out "$RUN-2" \
  --init-from "$RUN/ship" --steps "$STEPS2" --batch-size 64 --lr 2e-4 --warmup 300 --eval-every 1000 \
  --eval-examples 400
$BIN/python scripts/ship_model.py "$RUN-2"

# 5. Fresh test sets (new seeds; the *_clean ones are deduplicated by construction, the others by
#    `evaluate --exclude`) and the reports.
BIN=$BIN bash scripts/test_sets.sh
for t in reg mixed tables mixed_large sizes; do
  $BIN/tracr-decompiler evaluate --data "data/test/$t" --split all --exclude "$PARTS" --limit 300 \
    --out "reports/test_$t"
done
for t in reg_clean mixed_clean mixed_clean2 large_clean; do
  $BIN/tracr-decompiler evaluate --data "data/test/$t" --split test --out "reports/test_$t"
done
$BIN/tracr-decompiler evaluate --lib --out reports/lib
