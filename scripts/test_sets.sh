#!/usr/bin/env bash
# Fresh test sets for the shipped model: seeds the training data never used, and
# `evaluate --exclude` drops any program that is also in a training part. One worker each:
# they run beside training.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
T=${T:-data/test}
W=${WORKERS:-1}
# the registry world (vocab {0..4}, max_seq_len 5, 2-8 SOps, registry functions only): today's table
$BIN/tracr-decompiler generate --n 400 --out "$T/reg" --workers "$W" --seed 99 --shard-size 100
# mixed settings, 1-8 SOps, 30 % table functions
$BIN/tracr-decompiler generate --n 250 --out "$T/mixed" --workers "$W" --seed 98 --shard-size 50 \
  --mixed-settings --table-fraction 0.3 --min-sops 1 --max-sops 8
# out-of-registry functions: the registry world with 60 % table functions (most programs hold one)
$BIN/tracr-decompiler generate --n 200 --out "$T/tables" --workers "$W" --seed 101 --shard-size 50 \
  --table-fraction 0.6
# mixed settings, 9-16 SOps
$BIN/tracr-decompiler generate --n 60 --out "$T/mixed_large" --workers "$W" --seed 97 --shard-size 10 \
  --mixed-settings --table-fraction 0.3 --min-sops 9 --max-sops 16
# the registry world at 1-24 SOps
$BIN/tracr-decompiler generate --n 96 --out "$T/sizes" --workers "$W" --seed 96 --shard-size 8 \
  --min-sops 1 --max-sops 24
# Sets deduplicated by construction (no --exclude needed): every part puts a program in its split by a hash of
# its source (dataset/rows.split_of), so with --val-percent 0 --test-percent 10 the test split holds exactly the
# programs no training part (5 % val / 5 % test) can have in its train split. Evaluate them with --split test.
$BIN/tracr-decompiler generate --n 2400 --out "$T/reg_clean" --workers "$W" --seed 4714 --shard-size 100 \
  --val-percent 0 --test-percent 10
$BIN/tracr-decompiler generate --n 2400 --out "$T/mixed_clean" --workers "$W" --seed 4711 --shard-size 100 \
  --val-percent 0 --test-percent 10 --mixed-settings --max-sops 8
$BIN/tracr-decompiler generate --n 2400 --out "$T/mixed_clean2" --workers "$W" --seed 4712 --shard-size 100 \
  --val-percent 0 --test-percent 10 --mixed-settings --max-sops 8
$BIN/tracr-decompiler generate --n 500 --out "$T/large_clean" --workers "$W" --seed 4713 --shard-size 25 \
  --val-percent 0 --test-percent 10 --mixed-settings --table-fraction 0.3 --min-sops 9 --max-sops 16
