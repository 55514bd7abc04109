#!/usr/bin/env bash
# The shipped decompiler's training data: parts generated one after the other,
# each a complete dataset folder (a killed part resumes where it stopped when
# the script is rerun; `train --data` takes the finished parts comma-separated,
# see scripts/reproduce.sh). Round 0 is what 2 CPU cores make in about an
# hour; each further round (ROUNDS=k) adds smaller parts with new seeds, so a
# run stopped at any time leaves whole parts to train on. LARGE_ROUNDS=j keeps
# the 9-16 SOp parts to rounds 1..j: they cost a third of a round's time for
# 300 of its 10,000 programs.
#   reg    vocab {0..4}, max_seq_len 5, 2-8 SOps, 20 % table functions   (the registry world)
#   mixed  settings drawn per program (generation/settings.py), 1-8 SOps, 30 % tables
#   large  mixed settings, 9-16 SOps, 30 % tables
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-data/big}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-0}
LARGE_ROUNDS=${LARGE_ROUNDS:-$ROUNDS}
N_REG=${N_REG:-12000}
N_MIXED=${N_MIXED:-10000}
N_LARGE=${N_LARGE:-500}

part() {  # part NAME N SEED FLAGS...
  local name=$1 n=$2 seed=$3
  shift 3
  $BIN/tracr-decompiler generate --n "$n" --out "$OUT/$name" --workers "$WORKERS" --seed "$seed" "$@"
}
REG=(--table-fraction 0.2)
MIXED=(--mixed-settings --table-fraction 0.3 --min-sops 1 --max-sops 8)
LARGE=(--mixed-settings --table-fraction 0.3 --min-sops 9 --max-sops 16)

part reg "$N_REG" 11 --shard-size 250 "${REG[@]}"
part mixed "$N_MIXED" 12 --shard-size 250 "${MIXED[@]}"
part large "$N_LARGE" 13 --shard-size 25 "${LARGE[@]}"
for r in $(seq 1 "$ROUNDS"); do
  part "mixed-r$r" 5000 $((1000 + r)) --shard-size 250 "${MIXED[@]}"
  part "reg-r$r" 6000 $((2000 + r)) --shard-size 250 "${REG[@]}"
  if [ "$r" -le "$LARGE_ROUNDS" ]; then
    part "large-r$r" 300 $((3000 + r)) --shard-size 25 "${LARGE[@]}"
  fi
done
