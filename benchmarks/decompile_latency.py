"""How long a verified decompile takes, per model, at this revision and a base revision side by side.

Run:  python benchmarks/decompile_latency.py --base REV [--programs 50] [--mixed 20] [--seed 2029] [--rounds 2]

Models: tracr's 15 lib programs, `--programs` fresh random programs and `--mixed` fresh programs each with its own
compile settings (vocabulary, length, causal, BOS name as `generate --mixed-settings` draws them), all compiled by plain tracr
(`compile_rasp_to_model`), decompiled as tracr objects, and the fresh ones also as model files. Each revision
runs in its own child process (the base in a temporary git worktree), one BLAS and one torch thread, after
one warm-up decompile; the two alternate for `--rounds` rounds and each model keeps its fastest time. Prints,
per set and revision, the median and 90th percentile wall time and the statuses, and whether any source or
status differs between the revisions.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

import numpy as np

import trees  # benchmarks/trees.py (this folder is on sys.path when run as a script)

ROOT = pathlib.Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, time, pathlib
import numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(1)
import torch
torch.set_num_threads(1)
try:
  from tracr_decompiler.loading import model_io
except ImportError:  # revisions before the loading/ stage
  from tracr_decompiler.compiling import model_io
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.generation import heldout, sampler
from tracr_decompiler.generation.config import GenerationConfig
folder, n, seed, n_mixed = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
models = [("lib", name, compiler.tracr_compile(expr, lib_report.SETTINGS)) for name, expr in lib_report.lib_programs().items()]
rng = np.random.default_rng(seed)
for i in range(n):
  program = sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()).program
  models.append(("fresh", f"p{i}", compiler.tracr_compile(program, lib_report.SETTINGS)))
rng = np.random.default_rng(seed + 2)
for i in range(n_mixed):  # each with its own settings drawn from the documented ranges (generate --mixed-settings)
  sample = sampler.sample_program(GenerationConfig(mixed_settings=True), rng, heldout.blocklist())
  models.append(("mixed", f"m{i}", compiler.tracr_compile(sample.program, sample.model.settings)))
models += [("files", p.stem, str(p)) for p in sorted(folder.glob("*.safetensors"))]
decompile(models[0][2])  # warm-up: imports, the decoder's weights
out = []
for group, name, model in models:
  if isinstance(model, str):
    model = model_io.load_model(model)
  start = time.perf_counter()
  r = decompile(model)
  out.append([group, name, time.perf_counter() - start, r.status, r.source])
json.dump(out, sys.stdout)
'''


def _run(src: pathlib.Path, folder: pathlib.Path, n: int, seed: int, n_mixed: int) -> list:
  return trees.run_child(src, CHILD, folder, n, seed, n_mixed,
                         env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", required=True, help="git revision to compare against")
  parser.add_argument("--programs", type=int, default=50)
  parser.add_argument("--mixed", type=int, default=20, help="fresh programs with mixed compile settings")
  parser.add_argument("--seed", type=int, default=2029)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--out", default="reports/latency")
  args = parser.parse_args(argv)
  from tracr_decompiler.compiling import compiler
  from tracr_decompiler.generation import heldout, sampler
  from tracr_decompiler.generation.config import GenerationConfig
  from tracr_decompiler.loading import model_io
  out = pathlib.Path(args.out)
  files = out / "models"
  files.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(args.seed + 1)
  for i in range(args.programs):  # the same programs as files, compiled by our compiler (what `compile` writes)
    path = files / f"f{i:04d}.safetensors"
    if not path.exists():
      program = sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()).program
      model_io.save_model(compiler.compile_program(program, compiler.CompileSettings(compiler_bos="BOS")), str(path))
  runs: dict[str, list] = {"base": [], "this": []}
  with trees.worktree(args.base) as base_src:
    for _ in range(args.rounds):
      runs["base"].append(_run(base_src, files, args.programs, args.seed, args.mixed))
      runs["this"].append(_run(ROOT / "src", files, args.programs, args.seed, args.mixed))
  summary: dict = {"base": args.base, "programs": args.programs}
  fastest = {}
  for rev, rounds in runs.items():
    fastest[rev] = {(g, n): (min(r[i][2] for r in rounds), rounds[0][i][3], rounds[0][i][4])
                    for i, (g, n, *_) in enumerate(rounds[0])}
    for group in ("lib", "fresh", "mixed", "files"):
      times = sorted(t for (g, _), (t, _, _) in fastest[rev].items() if g == group)
      if times:
        statuses: dict[str, int] = {}
        for (g, _), (_, st, _) in fastest[rev].items():
          if g == group:
            statuses[st] = statuses.get(st, 0) + 1
        summary[f"{rev}/{group}"] = {"models": len(times), "median_s": round(statistics.median(times), 3),
                                     "p90_s": round(float(np.percentile(times, 90)), 3), "statuses": statuses}
  summary["differ"] = sorted(f"{g}:{n}" for (g, n), (_, st, src) in fastest["this"].items()
                             if fastest["base"].get((g, n), (0, None, None))[1:] != (st, src))
  (out / "latency.json").write_text(json.dumps(summary, indent=1))
  print(json.dumps(summary, indent=1))
  return summary


if __name__ == "__main__":
  main()
