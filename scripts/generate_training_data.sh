#!/usr/bin/env bash
# The shipped decompiler's training data: three parts, generated one after the
# other (each resumes where it stopped if killed and rerun; `train --data`
# takes them comma-separated). Sizes are what 2 CPU cores make in about an
# hour; scale N_* up on a bigger machine (or use --ray-address).
#   reg    vocab {0..4}, max_seq_len 5, 2-8 SOps, 20 % table functions   (the registry world)
#   mixed  settings drawn per program (generation/settings.py), 1-8 SOps, 30 % tables
#   large  mixed settings, 9-16 SOps, 30 % tables
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-data/big}
N_REG=${N_REG:-12000}
N_MIXED=${N_MIXED:-10000}
N_LARGE=${N_LARGE:-500}
$BIN/tracr-decompiler generate --n "$N_REG" --out "$OUT/reg" --workers 2 --seed 11 --shard-size 250 \
  --table-fraction 0.2
$BIN/tracr-decompiler generate --n "$N_MIXED" --out "$OUT/mixed" --workers 2 --seed 12 --shard-size 250 \
  --mixed-settings --table-fraction 0.3 --min-sops 1 --max-sops 8
$BIN/tracr-decompiler generate --n "$N_LARGE" --out "$OUT/large" --workers 2 --seed 13 --shard-size 25 \
  --mixed-settings --table-fraction 0.3 --min-sops 9 --max-sops 16
