"""AR beam-16 decoding, cached (incremental keys/values) vs uncached (full prefix each step).

Same ~10 compiled models (tracr_decompiler.test_cases.PROGRAMS and sampled programs),
the two paths run alternately per model, one thread; checks that both give the same
candidates. Prints JSON: seconds per model for each path, and the ratio.

  .venv/bin/python benchmarks/ar_decode_bench.py [--beam 16] [--samples 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from tracr_decompiler import test_cases
from tracr_decompiler.compiling.compiler import compile_program
from tracr_decompiler.decompiling.decompile import load_decompiler
from tracr_decompiler.encoding import weights
from tracr_decompiler.generation import heldout
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.generation.sampler import sample_program
from tracr_decompiler.model import decode
from tracr_decompiler.model.batch import inference_batch


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--beam", type=int, default=16)
  ap.add_argument("--samples", type=int, default=6)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  torch.set_num_threads(1)
  model = load_decompiler()
  compiled = {name: compile_program(p) for name, p in test_cases.PROGRAMS.items()}
  for seed in range(args.samples):
    compiled[f"sampled:{seed}"] = sample_program(GenerationConfig(), np.random.default_rng(seed), heldout.blocklist()).model
  rows, totals, identical = [], {"cached": 0.0, "uncached": 0.0}, True
  for name, c in compiled.items():
    graph = weights.encode_model(c)
    s = len(graph.nodes)
    with torch.no_grad():
      memory, mask = model.encode(inference_batch(c.params, graph, model.cfg))
    decode.ar_beam(model, memory, mask, s, beam=args.beam, cache=True)  # warm-up
    best = {"cached": float("inf"), "uncached": float("inf")}
    outs = {}
    for _ in range(args.repeats):
      for key in ("uncached", "cached"):  # alternating
        t = time.perf_counter()
        outs[key] = decode.ar_beam(model, memory, mask, s, beam=args.beam, cache=key == "cached")
        best[key] = min(best[key], time.perf_counter() - t)
    same = ([p for _, p in outs["cached"]] == [p for _, p in outs["uncached"]]
            and np.allclose([x for x, _ in outs["cached"]], [x for x, _ in outs["uncached"]], rtol=1e-5, atol=1e-5))
    identical &= same
    for key in totals:
      totals[key] += best[key]
    rows.append({"model": name, "ops": s - 2, "uncached_s": round(best["uncached"], 4),
                 "cached_s": round(best["cached"], 4), "ratio": round(best["uncached"] / best["cached"], 2),
                 "identical": same})
  print(json.dumps({"beam": args.beam, "threads": 1, "repeats_min_of": args.repeats, "per_model": rows,
                    "total_uncached_s": round(totals["uncached"], 3), "total_cached_s": round(totals["cached"], 3),
                    "ratio": round(totals["uncached"] / totals["cached"], 2), "all_identical": identical}, indent=1))


if __name__ == "__main__":
  main()
