"""Training throughput, peak memory and accuracy: graph encoding vs the paper's flat baseline.

Run:  python benchmarks/training_bench.py --data data/main [--steps 300] [--limit 4000]

Both representations train the same model size, batch size and number of
steps on the same programs, one after the other in subprocesses (so each one's
peak memory is its own), and are scored on the same validation programs.
Also prints validation exact match against wall-clock time from a finished
run's metrics.csv when --run is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


def _one(data: str, out: str, input_mode: str, steps: int, limit: int) -> dict:
  code = f"""
import json, resource, time
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.training import loop, data
cfg = loop.TrainConfig(data={data!r}, out={out!r}, steps={steps}, eval_every={steps}, limit={limit},
                       eval_examples=200, batch_size=32)
data.prepare(cfg.data, "train", __import__("pathlib").Path(cfg.out) / "cache", limit={limit}, progress=False)
data.prepare(cfg.data, "val", __import__("pathlib").Path(cfg.out) / "cache", progress=False)
t = time.time()
metrics = loop.train(cfg, ModelConfig(input_mode={input_mode!r}), progress=False)
seconds = time.time() - t
print(json.dumps({{"metrics": metrics, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default="data/main")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--limit", type=int, default=4000)
  parser.add_argument("--run", default=None, help="a finished run folder: print exact match vs time")
  args = parser.parse_args(argv)
  result = {}
  with tempfile.TemporaryDirectory() as tmp:
    for mode in ("graph", "flat"):
      r = _one(args.data, f"{tmp}/{mode}", mode, args.steps, args.limit)
      result[mode] = {"programs_per_s": round(args.steps * 32 / r["seconds"], 1),
                      "peak_rss_mb": round(r["peak_rss_mb"]), **{k: round(v, 3) for k, v in r["metrics"].items()}}
  result["throughput_ratio_graph_over_flat"] = round(
      result["graph"]["programs_per_s"] / result["flat"]["programs_per_s"], 2)
  if args.run:
    rows = list(csv.DictReader((pathlib.Path(args.run) / "metrics.csv").open()))
    result["exact_vs_minutes"] = [(round(float(r["minutes"]), 1), round(float(r.get("nar_exact") or 0), 3))
                                  for r in rows]
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
