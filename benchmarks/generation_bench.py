"""Generation and compile throughput, and bytes on disk per program.

Run:  python benchmarks/generation_bench.py [--programs 40]

Compile speed is a ratio measured side by side in this process: our fast
compile against tracr's `compile_rasp_to_model` on the same programs, each
program compiled once by each (every program is a new shape for tracr, as in
dataset generation). Generation speed is single-process programs/s including
rejection sampling and all checks.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
from tracr.compiler import compiling

from tracr_decompiler.compiling import compiler
from tracr_decompiler.dataset import writer
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import to_rasp


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--programs", type=int, default=40)
  args = parser.parse_args(argv)
  cfg = GenerationConfig()
  rng = np.random.default_rng(2024)

  start = time.perf_counter()
  samples = [sampler.sample_program(cfg, rng) for _ in range(args.programs)]
  gen_rate = args.programs / (time.perf_counter() - start)

  s = cfg.settings
  ours = tracr = 0.0
  for sample in samples:
    expr = to_rasp.to_rasp(sample.program)
    t = time.perf_counter()
    compiler.compile_expr(expr, s)
    ours += time.perf_counter() - t
    t = time.perf_counter()
    compiling.compile_rasp_to_model(expr, set(s.vocab), s.max_seq_len, compiler_bos=s.compiler_bos,
                                    compiler_pad=s.compiler_pad)
    tracr += time.perf_counter() - t

  with tempfile.TemporaryDirectory() as tmp:
    manifest = writer.build_dataset(writer.DatasetConfig(n=args.programs, out=tmp, workers=1, seed=1,
                                                         shard_size=args.programs), progress=False)
    size = sum(p.stat().st_size for p in pathlib.Path(tmp, "data").glob("*.parquet"))
  result = {
      "programs": args.programs,
      "generated_programs_per_s_one_process": round(gen_rate, 2),
      "compile_ms_ours": round(1000 * ours / args.programs, 2),
      "compile_ms_tracr": round(1000 * tracr / args.programs, 2),
      "compile_speedup": round(tracr / ours, 1),
      "bytes_per_program_on_disk": int(size / max(1, manifest["num_programs"])),
  }
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
