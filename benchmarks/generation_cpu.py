"""Generator CPU time per program in each kind of training part, side by side with a base revision.

Run:  python benchmarks/generation_cpu.py [--base REV] [--n-reg 150] [--n-mixed 60] [--n-large 10] [--reps 3]

For each part kind of scripts/generate_training_data.sh (the registry world;
mixed settings with 1-8 SOps; mixed settings with 9-16 SOps, both with 30 %
tables), one process draws the same seeded programs with `sample_program`
(one BLAS thread, as a generation worker) and reports CPU milliseconds per
program: the best of `--reps` runs. The base revision runs from a git worktree
in its own process, alternating with this tree run by run, so a busy machine
slows both alike. It also prints a digest of the programs' source text from
each tree: equal digests mean the two generators drew the very same programs
(a speed-up that changes what is drawn shows up here and in
benchmarks/generation_bench.py's distribution tables).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import trees  # benchmarks/trees.py (this folder is on sys.path when run as a script)

ROOT = pathlib.Path(__file__).resolve().parent.parent

KINDS = {  # scripts/generate_training_data.sh's parts (REG, MIXED, LARGE)
    "reg": {},
    "mixed": {"mixed_settings": True, "table_fraction": 0.3, "min_sops": 1, "max_sops": 8},
    "large": {"mixed_settings": True, "table_fraction": 0.3, "min_sops": 9, "max_sops": 16},
}

# Runs in a child process with PYTHONPATH set to one tree's src/.
CHILD = """
import hashlib, json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import source
kwargs, n, seed = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = GenerationConfig(**kwargs)
with threadpool_limits(limits=1):
  sampler.sample_program(cfg, np.random.default_rng(seed + 1))  # imports and caches, not timed
  rng, digest, attempts = np.random.default_rng(seed), hashlib.sha256(), 0
  start = time.process_time()
  for _ in range(n):
    sample = sampler.sample_program(cfg, rng)
    digest.update(source.to_source(sample.program).encode())
    attempts += sample.attempts
  cpu = time.process_time() - start
print(json.dumps({"cpu_ms": 1000 * cpu / n, "candidates": attempts / n, "digest": digest.hexdigest()[:16]}))
"""


def _run(src: pathlib.Path, kind: str, n: int, seed: int) -> dict:
  out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(KINDS[kind]), str(n), str(seed)],
                       env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, check=True,
                       capture_output=True, text=True, cwd=src.parent)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", default="2279716", help="git revision to compare against (default: before this round)")
  parser.add_argument("--n-reg", type=int, default=150)
  parser.add_argument("--n-mixed", type=int, default=60)
  parser.add_argument("--n-large", type=int, default=10)
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--seed", type=int, default=7)
  args = parser.parse_args(argv)
  sizes = {"reg": args.n_reg, "mixed": args.n_mixed, "large": args.n_large}
  result: dict = {"base": args.base, "kinds": {}}
  with trees.worktree(args.base) as base_src:
    for kind, n in sizes.items():
      runs: dict[str, list[dict]] = {"base": [], "now": []}
      for _ in range(args.reps):
        runs["base"].append(_run(base_src, kind, n, args.seed))
        runs["now"].append(_run(ROOT / "src", kind, n, args.seed))
      best = {tree: min(r, key=lambda x: x["cpu_ms"]) for tree, r in runs.items()}
      result["kinds"][kind] = {
          "programs": n,
          "base_cpu_ms": round(best["base"]["cpu_ms"], 1), "now_cpu_ms": round(best["now"]["cpu_ms"], 1),
          "ratio": round(best["now"]["cpu_ms"] / best["base"]["cpu_ms"], 2),
          "candidates_per_program": round(best["now"]["candidates"], 2),
          "same_programs": best["base"]["digest"] == best["now"]["digest"],
      }
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
