"""Generation throughput side by side with a base revision, and what it generates (distribution tables).

Run:  python benchmarks/generation_bench.py [--base 29c81ae] [--n 1000] [--workers 2] [--seed 11]

Runs `tracr-decompiler generate` of the base revision (checked out in a
temporary git worktree) and of this working tree with the same seed, settings
and workers, one after the other, and prints programs/s of each, their ratio,
and side-by-side tables of what was generated: program lengths, op kinds with
their encodings, model depth. A generator change that speeds things up by
drawing different programs shows up in these tables.

Also prints our compile against tracr's `compile_rasp_to_model` on the same
programs (each compiled once by each, as in generation).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

import trees  # benchmarks/trees.py (this folder is on sys.path when run as a script)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _generate(src: pathlib.Path, out: pathlib.Path, args) -> float:
  """Wall seconds of one `generate` run with the code in `src`."""
  env = {**os.environ, "PYTHONPATH": str(src)}
  cmd = [sys.executable, "-m", "tracr_decompiler.cli", "generate", "--n", str(args.n), "--out", str(out),
         "--seed", str(args.seed), "--workers", str(args.workers), "--shard-size", str(args.shard_size), "--quiet"]
  start = time.perf_counter()
  subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=src.parent)
  return time.perf_counter() - start


def _tables(out: pathlib.Path) -> dict:
  table = pq.read_table(out / "data", columns=["lines", "n_sops", "num_layers"]).to_pydict()
  ops = collections.Counter(f"{line['op']}/{line['encoding']}" for lines in table["lines"] for line in lines)
  n = len(table["n_sops"])
  share = lambda counter, total: {k: round(v / total, 3) for k, v in sorted(counter.items())}
  return {"programs": n,
          "n_sops": share(collections.Counter(table["n_sops"]), n),
          "ops": share(ops, sum(ops.values())),
          "mean_layers": round(sum(table["num_layers"]) / n, 2)}


def _compile_ratio(out: pathlib.Path, limit: int) -> dict:
  from tracr.compiler import compiling

  from tracr_decompiler.compiling import compiler
  from tracr_decompiler.dataset import reader, rows
  from tracr_decompiler.program import to_rasp
  s = compiler.CompileSettings()
  ours = theirs = 0.0
  programs = [rows.program_from_row(r) for r in reader.read_split(out, limit=limit)]
  for program in programs:
    expr = to_rasp.to_rasp(program)
    t = time.perf_counter()
    compiler.compile_expr(expr, s)
    ours += time.perf_counter() - t
    t = time.perf_counter()
    compiling.compile_rasp_to_model(expr, set(s.vocab), s.max_seq_len, compiler_bos=s.compiler_bos,
                                    compiler_pad=s.compiler_pad)
    theirs += time.perf_counter() - t
  return {"programs": len(programs), "compile_ms_ours": round(1000 * ours / len(programs), 2),
          "compile_ms_tracr": round(1000 * theirs / len(programs), 2), "compile_speedup": round(theirs / ours, 1)}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", default="29c81ae", help="git revision to compare against (default: the generator before issue 12)")
  parser.add_argument("--n", type=int, default=1000, help="programs per run")
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--shard-size", type=int, default=125)
  parser.add_argument("--seed", type=int, default=11)
  parser.add_argument("--compile-programs", type=int, default=40, help="programs for the compile ratio (0: skip)")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    with trees.worktree(args.base) as base_src:
      base_s = _generate(base_src, pathlib.Path(tmp) / "base_data", args)
    now_s = _generate(ROOT / "src", pathlib.Path(tmp) / "now_data", args)
    base, now = _tables(pathlib.Path(tmp) / "base_data"), _tables(pathlib.Path(tmp) / "now_data")
    manifest = json.loads((pathlib.Path(tmp) / "now_data" / "manifest.json").read_text())
    compile_ratio = _compile_ratio(pathlib.Path(tmp) / "now_data", args.compile_programs) if args.compile_programs else {}
  result = {
      "command": f"generate --n {args.n} --seed {args.seed} --workers {args.workers} --shard-size {args.shard_size}",
      "cpus": os.cpu_count(),
      "base": {"revision": args.base, "seconds": round(base_s, 1), "programs_per_s": round(args.n / base_s, 2)},
      "now": {"seconds": round(now_s, 1), "programs_per_s": round(args.n / now_s, 2),
              "candidates_per_program": manifest.get("candidates_per_program"),
              "time_budget_hits": manifest.get("time_budget_hits")},
      "speedup": round(base_s / now_s, 2),
      "distribution": {"base": base, "now": now},
      "compile": compile_ratio,
  }
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
