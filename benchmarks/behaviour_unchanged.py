"""Did a refactor change what the shipped model decompiles? Two git revisions, side by side.

Run:  python benchmarks/behaviour_unchanged.py --base REV [--programs 200] [--seed 2027] [--out DIR]

Draws `--programs` fresh random programs, compiles them to model files, and
then, in two child processes (the base revision checked out in a temporary git
worktree, and this working tree), decompiles every file and every tracr `lib`
program (compiled by plain tracr) three ways: NAR beam 16 with verification,
NAR greedy and AR greedy, without verification. Prints how many results differ
(source or verification status) and writes both JSON files.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

import trees  # benchmarks/trees.py (this folder is on sys.path when run as a script)

ROOT = pathlib.Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, pathlib
from tracr_decompiler.compiling import compiler
try:
  from tracr_decompiler.loading import model_io
except ImportError:  # revisions before the loading/ stage
  from tracr_decompiler.compiling import model_io
from tracr_decompiler.decompiling.decompile import decompile, DecompileError
from tracr_decompiler.evaluation import lib_report
import torch
torch.set_num_threads(1)
folder = pathlib.Path(sys.argv[1])
models = [("file:" + p.name, model_io.load_model(str(p))) for p in sorted(folder.glob("*.safetensors"))]
models += [("lib:" + name, compiler.tracr_compile(expr, lib_report.SETTINGS))
           for name, expr in lib_report.lib_programs().items()]
out = {}
for name, model in models:
  rec = {}
  for how, kw in (("verified", dict(beam=16)), ("nar", dict(beam=1, verify=False)),
                  ("ar", dict(mode="ar", beam=1, verify=False))):
    try:
      r = decompile(model, **kw)
      rec[how] = [r.source, r.verified]
    except DecompileError as e:
      rec[how] = ["refused", str(e)]
  out[name] = rec
json.dump(out, sys.stdout)
'''


def _run(src: pathlib.Path, folder: pathlib.Path) -> dict:
  return trees.run_child(src, CHILD, folder)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", required=True, help="git revision to compare against")
  parser.add_argument("--programs", type=int, default=200)
  parser.add_argument("--seed", type=int, default=2027)
  parser.add_argument("--out", default="reports/behaviour")
  args = parser.parse_args(argv)
  from tracr_decompiler.loading import model_io
  from tracr_decompiler.generation import heldout, sampler
  from tracr_decompiler.generation.config import GenerationConfig
  out = pathlib.Path(args.out)
  models = out / "models"
  models.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(args.seed)
  for i in range(args.programs):
    path = models / f"p{i:04d}.safetensors"
    if not path.exists():
      model_io.save_model(sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()).model, str(path))
  with trees.worktree(args.base) as base_src:
    before = _run(base_src, models)
  after = _run(ROOT / "src", models)
  (out / "before.json").write_text(json.dumps(before, indent=1))
  (out / "after.json").write_text(json.dumps(after, indent=1))
  differ = sorted(k for k in before if before[k] != after.get(k))
  summary = {"base": args.base, "models": len(before), "differ": len(differ), "examples": differ[:10]}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
