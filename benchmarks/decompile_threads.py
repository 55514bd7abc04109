"""How many torch threads should `tracr-decompiler decompile` use? Measured, side by side.

Run:  python benchmarks/decompile_threads.py [--programs 12] [--repeats 3]

The library never sets a thread count (that is process-wide state a caller
owns); the CLI, a script, picks one. This times the neural part of decompile
(encode + NAR beam 16 + AR beam 4, no verification) on the same models with 1
and 2 threads, alternating runs so that load from other processes hits both.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile, load_decompiler
from tracr_decompiler.generation import heldout, sampler
from tracr_decompiler.generation.config import GenerationConfig


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--programs", type=int, default=12)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)
  rng = np.random.default_rng(7)
  models = [sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()).model for _ in range(args.programs)]
  load_decompiler(None)
  for m in models[:2]:  # warm-up
    decompile(m, verify=False)
  times: dict[int, list[float]] = {1: [], 2: []}
  before = torch.get_num_threads()
  for _ in range(args.repeats):
    for threads in (1, 2):
      torch.set_num_threads(threads)
      t = time.perf_counter()
      for m in models:
        decompile(m, mode="nar", beam=16, verify=False)
        decompile(m, mode="ar", beam=4, verify=False)
      times[threads].append((time.perf_counter() - t) / len(models))
  torch.set_num_threads(before)
  summary = {"programs": args.programs, "repeats": args.repeats,
             "seconds_per_model_1_thread": round(float(np.median(times[1])), 4),
             "seconds_per_model_2_threads": round(float(np.median(times[2])), 4),
             "ratio_2_over_1": round(float(np.median(times[2]) / np.median(times[1])), 2)}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
