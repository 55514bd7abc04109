#!/usr/bin/env bash
# Regenerates the training data and retrains the shipped decompiler from scratch,
# then evaluates it and refreshes the README's numbers. On 2 CPU cores: about
# 40 min of generation and 60 min of training; with a GPU training is minutes.
# Every step resumes where it stopped if the script is killed and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/d10k}
RUN=${RUN:-runs/main}
STEPS=${STEPS:-5000}

# 1. Data: 10,000 random programs (2-8 SOps, vocab {0..4}, max_seq_len 5), split by hash.
$BIN/tracr-decompiler generate --n 10000 --out "$DATA" --workers 2 --seed 1

# 2. Train (NAR and AR heads on one encoder); resumes from $RUN/last after a kill.
$BIN/tracr-decompiler train --data "$DATA" --out "$RUN" --steps "$STEPS" --batch-size 32 --eval-every 1000

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

# 4. Fresh test set (new seed, deduplicated against the training data inside `evaluate`).
$BIN/tracr-decompiler generate --n 500 --out data/fresh --workers 1 --seed 99 --shard-size 125
$BIN/tracr-decompiler evaluate --data data/fresh --split all --exclude "$DATA" --limit 300 --out reports/fresh
$BIN/tracr-decompiler evaluate --lib --out reports/lib
