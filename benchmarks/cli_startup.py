"""CLI start-up: wall time of short `tracr-decompiler` commands, optionally side by side with a git revision.

Run:  python benchmarks/cli_startup.py [--runs 5] [--base REV]

Compiles one small fixed program to a model file, then times (wall clock, and
the child's user+system CPU) `--help`, `generate --help`, `decompile FILE` and
`decompile FILE --no-verify`, each a fresh `python -m tracr_decompiler.cli`.
These commands do almost no work, so their time is start-up: imports, and the
interpreter's exit. With `--base REV`, the same commands also run from a git
worktree of REV (as benchmarks/behaviour_unchanged.py checks one out); the two
trees alternate run by run, so a busy machine slows both alike. Prints JSON:
medians per command and tree, the ratio current/base, whether both trees
printed the same output (decompile's own seconds masked), and `import torch`
alone, for reference: it was the floor for `decompile` until NAR decoding moved
to NumPy (model/numpy_nar.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import trees  # benchmarks/trees.py (this folder is on sys.path when run as a script)

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A small program with both attention and MLPs; what it computes does not matter here.
PROGRAM = """\
v1 = rasp.numerical(rasp.Map(lambda x: x > 1, rasp.indices, simplify=False))
v2 = rasp.categorical(rasp.SequenceMap(lambda x, y: x < y, rasp.indices, rasp.tokens))
v3 = rasp.categorical(rasp.Map(lambda x: not x, v2, simplify=False))
v4 = rasp.numerical(rasp.Aggregate(rasp.Select(v3, v3, rasp.Comparison.LT), v1, default=0))
v5 = rasp.numerical(rasp.Map(lambda x: x > 0, v4, simplify=False))
v6 = rasp.numerical(rasp.LinearSequenceMap(v4, v5, 2, 1))
program = v6
"""


def commands(model: str) -> dict[str, list[str]]:
  return {
      "--help": ["--help"],
      "generate --help": ["generate", "--help"],
      "decompile FILE": ["decompile", model],
      "decompile FILE --no-verify": ["decompile", model, "--no-verify"],
  }


# `import torch` alone (with the CLI's frozen-heap exit, so the two compare): the floor for `decompile` while
# the neural model ran in torch; NAR decompiling no longer imports it.
TORCH_ONLY = ["-c", "import gc, torch; gc.freeze()"]


def _cli(src: pathlib.Path, args: list[str], python_args: list[str] | None = None) -> tuple[float, float, str]:
  """(wall seconds, child CPU seconds, stdout) of one fresh CLI process run from `src`."""
  env = {**os.environ, "PYTHONPATH": str(src)}
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  done = subprocess.run([sys.executable, *(python_args or ["-m", "tracr_decompiler.cli", *args])], env=env,
                        capture_output=True, text=True)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(args)} from {src} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return wall, cpu, re.sub(r"\d+\.\d+ s\)", "S s)", done.stdout)  # decompile prints its own seconds


def measure(srcs: dict[str, pathlib.Path], model: str, runs: int) -> dict:
  result: dict = {}
  for name, args in commands(model).items():
    walls: dict[str, list[float]] = {t: [] for t in srcs}
    cpus: dict[str, list[float]] = {t: [] for t in srcs}
    outputs: dict[str, str] = {}
    for _ in range(runs):
      for tree, src in srcs.items():  # alternating, so load on the machine falls on both
        wall, cpu, out = _cli(src, args)
        walls[tree].append(wall)
        cpus[tree].append(cpu)
        outputs[tree] = out
    row: dict[str, Any] = {tree: {"wall_s": round(statistics.median(walls[tree]), 3), "cpu_s": round(statistics.median(cpus[tree]), 3)}
           for tree in srcs}
    if "base" in srcs:
      row["ratio_wall"] = round(row["current"]["wall_s"] / row["base"]["wall_s"], 3)
      row["ratio_cpu"] = round(row["current"]["cpu_s"] / row["base"]["cpu_s"], 3)
      row["same_output"] = outputs["base"] == outputs["current"]
    result[name] = row
  floor = [_cli(srcs["current"], [], TORCH_ONLY) for _ in range(runs)]
  result["import torch"] = {"wall_s": round(statistics.median(w for w, _, _ in floor), 3),
                                    "cpu_s": round(statistics.median(c for _, c, _ in floor), 3)}
  return result


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=5, help="runs per command and tree (the median is reported)")
  parser.add_argument("--base", default=None, help="git revision to compare against")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
    program, model = pathlib.Path(tmp) / "program.py", str(pathlib.Path(tmp) / "model.safetensors")
    program.write_text(PROGRAM)
    current = ROOT / "src"
    _cli(current, ["compile", str(program), "--out", model])
    srcs = {"current": current}
    if args.base:
      srcs = {"base": stack.enter_context(trees.worktree(args.base)), **srcs}
    summary = {"runs": args.runs, "base": args.base, "python": sys.executable, "load_avg": os.getloadavg(),
               "commands": measure(srcs, model, args.runs)}
  print(json.dumps(summary, indent=1))
  return summary


if __name__ == "__main__":
  main()
