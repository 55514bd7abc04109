#!/usr/bin/env bash
# Regenerates the training data and retrains the shipped decompiler from scratch,
# then evaluates it and refreshes the README's numbers. On 2 CPU cores: about
# 40 min of generation and 60 min of training; with a GPU training is minutes.
# Every step resumes where it stopped if the script is killed and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/d16k}
RUN=${RUN:-runs/main}
STEPS=${STEPS:-9000}

# 1. Data: 16,000 random programs (2-8 SOps, vocab {0..4}, max_seq_len 5), split by hash.
$BIN/tracr-decompiler generate --n 16000 --out "$DATA" --workers 2 --seed 1

# 2. Train (NAR and AR heads on one encoder); resumes from $RUN/last after a kill.
$BIN/tracr-decompiler train --data "$DATA" --out "$RUN" --steps "$STEPS" --batch-size 48 --eval-every 500

# 3. Ship: copy the weights and config into the package.
$BIN/python - "$RUN" <<'PY'
import sys, shutil, pathlib
src, dst = pathlib.Path(sys.argv[1]) / "last", pathlib.Path("src/tracr_decompiler/pretrained")
dst.mkdir(exist_ok=True)
for name in ("model.safetensors", "config.json"):
    shutil.copy(src / name, dst / name)
print("shipped", src, "->", dst)
PY

# 4. Fresh test set (new seed, deduplicated against the training data inside `evaluate`).
$BIN/tracr-decompiler generate --n 1500 --out data/fresh_test --workers 2 --seed 99 --shard-size 250
$BIN/tracr-decompiler evaluate --data data/fresh_test --split all --exclude "$DATA" --limit 600 --out reports/fresh
$BIN/tracr-decompiler evaluate --data "$DATA" --split test --limit 600 --out reports/test
$BIN/tracr-decompiler evaluate --lib --out reports/lib
