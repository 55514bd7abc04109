"""Training programs/s, side by side: the code before issue 12 against today's, 1 against 2 threads, bf16 against fp32.

Run:  python benchmarks/training_throughput.py [--data data/train_seed1] [--limit 512] [--steps 8]

Every variant is the same `tracr-decompiler train` command on the same
programs, batch size and model (the default ModelConfig), each in its own
subprocess, one after the other:
  before         the package as of --before-rev (git), with its defaults: 2 threads fixed, bf16 on
  before_1_thread  the same, --threads 1 (with 1_thread: what today's code gains at equal threads)
  after          today's package and defaults: threads timed at start, bf16 where the device has it
  1_thread       today's, --threads 1      } the 1 vs 2 threads pair
  2_threads      today's, --threads 2      }
  1_thread_fp32  today's, --threads 1 --no-bf16 (with 1_thread: what bf16 buys on this CPU)
Programs/s is steps x batch over the training loop's own clock (metrics.csv
"minutes" at the one validation, at the last step), which both versions keep
alike: start-up, featurisation (done once here and shared), and today's
thread timing before the loop are not in it. On a CPU a step runs to its end
before Python goes on, so there is nothing for a loader to overlap with;
collate_ms_per_batch is what a background loader could hide there at most.
A dataset whose generation was stopped (no manifest.json) is read through a
temporary manifest over its whole shards.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

VARIANTS = {  # name -> (old code?, flags)
    "before": (True, []),
    "before_1_thread": (True, ["--threads", "1"]),
    "after": (False, []),
    "1_thread": (False, ["--threads", "1"]),
    "2_threads": (False, ["--threads", "2"]),
    "1_thread_fp32": (False, ["--threads", "1", "--no-bf16"]),
}
BEFORE_REV = "29c81ae"  # the last commit before issue 12's training changes


def _readable(data: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
  """`data`, or a folder of links to its shards with a manifest (no dedup: throughput does not need it)."""
  if (data / "manifest.json").exists():
    return data
  import pyarrow.parquet as pq
  from tracr_decompiler.dataset import schema
  view = tmp / "data"
  (view / "data").mkdir(parents=True)
  counts, digest, shards = {s: 0 for s in schema.SPLITS}, hashlib.sha256(), []
  for shard in sorted((data / "data").glob("shard-*.parquet")):
    (view / "data" / shard.name).symlink_to(shard.resolve())
    for split in pq.read_table(shard, columns=["split"]).column("split").to_pylist():
      counts[split] += 1
    digest.update(shard.read_bytes())
    shards.append(f"data/{shard.name}")
  (view / "manifest.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION, "splits": counts,
                                                  "shards": shards, "content_hash": digest.hexdigest()}))
  return view


def _collate_ms(examples, batch_size: int) -> float:
  import numpy as np
  from tracr_decompiler.training import data
  rng = np.random.default_rng(0)
  batches = [[examples[i] for i in rng.permutation(len(examples))[:batch_size]] for _ in range(20)]
  t = time.perf_counter()
  for b in batches:
    data.collate(b)
  return 1000 * (time.perf_counter() - t) / len(batches)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default="data/train_seed1")
  parser.add_argument("--limit", type=int, default=512, help="training programs (featurised once, shared)")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--steps", type=int, default=8, help="steps per variant (a 2-thread step on a busy 2-core "
                      "machine can take 9 s)")
  parser.add_argument("--before-rev", default=BEFORE_REV, help="git revision whose package is `before`")
  parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
  args = parser.parse_args(argv)
  from tracr_decompiler.training import data
  result: dict = {"command": "python benchmarks/training_throughput.py " + " ".join(argv or []),
                  "data": args.data, "limit": args.limit, "batch_size": args.batch_size,
                  "steps_timed": args.steps, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}
  with tempfile.TemporaryDirectory() as tmp_name:
    tmp = pathlib.Path(tmp_name)
    view = _readable(pathlib.Path(args.data), tmp)
    cache = tmp / "cache"
    train_ex = data.prepare(str(view), "train", cache, limit=args.limit, progress=False)
    data.prepare(str(view), "val", cache, progress=False)
    result["collate_ms_per_batch"] = round(_collate_ms(train_ex, args.batch_size), 2)
    old = tmp / "before-src"
    old.mkdir()
    archive = subprocess.run(["git", "archive", args.before_rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    rows = {}
    for name in args.variants.split(","):
      use_old, flags = VARIANTS[name]
      out = tmp / name
      out.mkdir()
      (out / "cache").symlink_to(cache)
      env = {**os.environ, "PYTHONPATH": str(old / "src")} if use_old else None
      cmd = [sys.executable, "-m", "tracr_decompiler.cli", "train", "--data", str(view), "--out", str(out),
             "--steps", str(args.steps), "--eval-every", str(args.steps), "--eval-examples", "0",
             "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--quiet", *flags]
      subprocess.run(cmd, check=True, capture_output=True, env=env)
      rows[name] = list(csv.DictReader((out / "metrics.csv").open()))[-1]
  pps = {name: args.steps * args.batch_size / (60 * float(r["minutes"])) for name, r in rows.items()}
  result["programs_per_s"] = {name: round(v, 1) for name, v in pps.items()}
  # The old code logged neither: its threads are its flag or 2, and bf16 was on.
  flag = lambda name: dict(zip(VARIANTS[name][1][::2], VARIANTS[name][1][1::2])).get("--threads", "2")
  result["threads_bf16"] = {name: [int(r.get("threads") or flag(name)), bool(int(r.get("bf16") or 1))]
                            for name, r in rows.items()}
  for label, a, b in (("after_over_before", "after", "before"), ("1_over_2_threads", "1_thread", "2_threads"),
                      ("after_over_before_at_1_thread", "1_thread", "before_1_thread"),
                      ("bf16_over_fp32", "1_thread", "1_thread_fp32")):
    if a in pps and b in pps:
      result[label] = round(pps[a] / pps[b], 2)
  result["loadavg_end"] = os.getloadavg()[0]
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
