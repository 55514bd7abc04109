"""The first run (`make demo`): tracr's fifteen `lib` programs, hardest first, a fresh random program and a
TransformerLens file, each decompiled by the shipped model and checked against its weights.

Nothing is trained or downloaded. The `lib` programs are compiled by tracr's own passes with the parameter
arrays assembled in NumPy (`compiling/compiler.py`, bit-identical to `compile_rasp_to_model` by
`compiler_test.py`), so the demo does not wait for JAX; the tutorial notebook decompiles plain tracr objects.
Every decompiled program is printed whole, with its status (`proved`, `verified`, `sampled`, `different`,
`untrusted`: decompiling/verify.py) and the time it took; the hardest program also gets an HTML report page.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import pathlib
import shutil
import tempfile
import time

from tracr_decompiler import cli

# The lib programs (in the demo's order) that our registry cannot write and the decoder cannot name: their
# functions are read from the weights. Then the six with a registry form, whose original can be shown beside.
HARDEST_FIRST = ("make_shuffle_dyck2", "make_shuffle_dyck", "make_sort_freq", "make_sort", "make_nary_sequencemap",
                 "detect_pattern", "make_count_less_freq", "shift_by", "make_count",
                 "make_pair_balance", "make_reverse", "make_sort_unique", "make_frac_prevs", "make_hist", "make_length")
# tracr's make_shuffle_dyck2 has no docstring of its own.
ABOUT = {"make_shuffle_dyck2": "Returns 1 if two kinds of parentheses are each balanced, 0 else (make_shuffle_dyck)."}
TL_EXPORTED = "make_frac_prevs"  # numerical output: TransformerLens' own tracr converter refuses it, ours writes it


def side_by_side(left: str, right: str, width: int) -> str | None:
  """Two sources in columns, or None where either has a line the columns would cut."""
  a, b = left.rstrip().splitlines(), right.rstrip().splitlines()
  column = max(map(len, a + ["original"]))
  if column + 3 + max(map(len, b + ["decompiled"])) > width:
    return None
  rows = [f"{'original':<{column}} | decompiled", "-" * column + "-+-" + "-" * 10]
  rows += [f"{x:<{column}} | {y}" for x, y in itertools.zip_longest(a, b, fillvalue="")]
  return "\n".join(rows)


def _body(source_text: str) -> str:
  """A decompiled source without its import line: the lines that say what the model computes."""
  return "\n".join(l for l in source_text.splitlines() if l and not l.startswith("from tracr"))


class Run:
  """Decompiles, prints one block per model and keeps the statuses for the summary line."""

  def __init__(self) -> None:
    from tracr_decompiler.decompiling.decompile import decompile
    self.decompile = decompile
    self.statuses: list[str] = []

  def show(self, title: str, about: str, model, original: str | None = None):
    result = self.decompile(model)
    self.statuses.append(result.status)
    lines = len(result.program)
    print(f"\n=== {title}: {result.status.upper()} ({lines} line{'s' * (lines != 1)}, {result.seconds:.1f} s)")
    print(f"    {about}")
    if result.status not in ("proved", "verified"):
      print(f"    {result.verification}")
    decompiled = _body(result.source)
    if original is None:
      print(decompiled)
    elif original == decompiled:
      print(f"    exact: the original's source (canonical names), line for line\n{decompiled}")
    else:
      pair = side_by_side(original, decompiled, shutil.get_terminal_size().columns)
      print(pair or f"original:\n{original}\ndecompiled:\n{decompiled}")
    return result


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=None, help="the random program's seed (default: a new one)")
  parser.add_argument("--report", default="reports/demo.html", help="the hardest program's HTML report")
  args = parser.parse_args(argv)
  start = time.time()
  cli.own_process()  # as the CLI's: tracr's passes without JAX, and none of absl's warnings

  import numpy as np
  from tracr.compiler import lib

  from tracr_decompiler.compiling import compiler
  from tracr_decompiler.evaluation import lib_report
  from tracr_decompiler.generation import heldout, sampler
  from tracr_decompiler.generation.config import GenerationConfig
  from tracr_decompiler.loading import tl_files
  from tracr_decompiler.program import ir, source
  from tracr_decompiler.visual import decompilation

  run = Run()
  programs = lib_report.lib_programs()
  assert set(programs) == set(HARDEST_FIRST), "every lib program is shown once"
  expressible = heldout.expressible_lib_programs()
  print(f"tracr's {len(programs)} lib programs at vocab {{0..4}}, max_seq_len 5, hardest first. PROVED: the "
        "same outputs as the model on every input, and the program recompiles to the model's weights up to renaming.")
  models, results = {}, {}
  for name in HARDEST_FIRST:
    models[name] = compiler.compile_expr(programs[name], lib_report.SETTINGS)
    doc = ABOUT.get(name) or (inspect.getdoc(getattr(lib, name)) or "").splitlines()[0]
    key = heldout.LIB_EQUIVALENT.get(name)
    original = _body(source.to_source(ir.canonicalize(expressible[key]), header=False)) if key else None
    results[name] = run.show(f"lib.{name}", doc, models[name], original)

  seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(10**6))
  sample = sampler.sample_program(GenerationConfig(), np.random.default_rng(seed), heldout.blocklist())
  print(f"\nA fresh random program (`python -m tracr_decompiler.demo --seed {seed}` draws it again)")
  run.show("random program", f"{len(sample.program)} SOps, vocab {{0..4}}, max_seq_len 5",
           sample.model, _body(source.to_source(sample.program, header=False)))

  with tempfile.TemporaryDirectory() as folder:
    path, settings = tl_files.save(models[TL_EXPORTED], pathlib.Path(folder) / f"{TL_EXPORTED}.safetensors")
    run.show(f"TransformerLens file of lib.{TL_EXPORTED}",
             "a HookedTransformer state dict (embed.W_E, blocks.0.attn.W_Q, ...) plus its settings JSON", path)

  hardest = HARDEST_FIRST[0]
  pathlib.Path(args.report).parent.mkdir(parents=True, exist_ok=True)
  page = decompilation.write(results[hardest], models[hardest], args.report, f"Decompilation of lib.{hardest}")
  print(f"\nreport of lib.{hardest}: {page}")
  lib_statuses = run.statuses[:len(programs)]
  print(f"lib: {sum(s in ('proved', 'verified') for s in lib_statuses)}/{len(programs)} verified "
        f"({lib_statuses.count('proved')} proved); random program: {run.statuses[-2]}; "
        f"TransformerLens file: {run.statuses[-1]}; {time.time() - start:.0f} s")


if __name__ == "__main__":
  main()
