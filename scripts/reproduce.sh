#!/usr/bin/env bash
# Regenerates the training data and retrains the shipped decompiler from scratch,
# then evaluates it on fresh test sets and tracr's lib. On 2 CPU cores: about
# 35 min of generation, 60 min of training, 40 min of evaluation; with a GPU
# training is minutes. Every step resumes where it stopped if the script is
# killed and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/big}
RUN=${RUN:-runs/big}
STEPS=${STEPS:-12000}
PARTS="$DATA/reg,$DATA/mixed,$DATA/large"

# 1. Data: three parts (registry world, mixed settings 1-8 SOps, mixed settings 9-16 SOps).
BIN=$BIN OUT=$DATA bash scripts/generate_training_data.sh

# 2. Train (NAR and AR heads on one encoder) on all parts; resumes from $RUN/last after a kill.
$BIN/tracr-decompiler train --data "$PARTS" --out "$RUN" --steps "$STEPS" --batch-size 32 --eval-every 1000 \
  --threads 1

# 3. Ship: the weights in float16 (half the size; loading casts back to float32) and the config.
$BIN/python - "$RUN" <<'PY'
import sys, shutil, pathlib
from safetensors.torch import load_file, save_file
src, dst = pathlib.Path(sys.argv[1]) / "last", pathlib.Path("src/tracr_decompiler/pretrained")
dst.mkdir(exist_ok=True)
weights = load_file(src / "model.safetensors")
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          dst / "model.safetensors")
shutil.copy(src / "config.json", dst / "config.json")
print("shipped", src, "->", dst)
PY

# 4. Fresh test sets (new seeds; `evaluate --exclude` drops programs seen in training) and the reports.
BIN=$BIN bash scripts/test_sets.sh
for t in reg mixed tables mixed_large sizes; do
  $BIN/tracr-decompiler evaluate --data "data/test/$t" --split all --exclude "$PARTS" --limit 300 \
    --out "reports/test_$t"
done
$BIN/tracr-decompiler evaluate --lib --out reports/lib
