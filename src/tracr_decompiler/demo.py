"""The main job (`make demo`): decompile tracr lib programs and fresh random programs.

Uses the shipped decompiler; nothing is trained or downloaded. Every model is
compiled by plain tracr (`compile_rasp_to_model`), the object users hold. For
each program it prints the original source beside the decompiled one, whether
the result was verified against the model, and the time taken.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.generation import heldout, sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import source

LIB = ("make_length", "make_hist", "make_reverse", "make_sort_unique", "make_frac_prevs", "make_pair_balance")


def side_by_side(left: str, right: str, width: int = 78) -> str:
  a, b = left.rstrip().splitlines(), right.rstrip().splitlines()
  out = [f"{'original':<{width}} | decompiled", "-" * width + "-+-" + "-" * width]
  for x, y in itertools.zip_longest(a, b, fillvalue=""):
    out.append(f"{x[:width]:<{width}} | {y[:width]}")
  return "\n".join(out)


def _show(title: str, original: str, model) -> bool:
  t = time.time()
  result = decompile(model)
  status = "VERIFIED" if result.verified else "unverified"
  print(f"\n=== {title}: {status} ({result.verification}), {time.time() - t:.2f} s")
  print(side_by_side(original, source.to_source(result.program, header=False)))
  return result.verified


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--random", type=int, default=4, help="fresh random programs to add")
  parser.add_argument("--seed", type=int, default=2026)
  args = parser.parse_args(argv)
  verified = total = 0
  programs = lib_report.lib_programs()
  expressible = heldout.expressible_lib_programs()
  for name in LIB:
    model = compiler.tracr_compile(programs[name], lib_report.SETTINGS)
    key = heldout.LIB_EQUIVALENT[name]  # every LIB program has a registry-term version
    original = (f"# tracr.compiler.lib.{name}, written in our registry's terms:\n"
                + source.to_source(expressible[key], header=False))
    verified += _show(f"tracr lib: {name}", original, model)
    total += 1
  rng = np.random.default_rng(args.seed)
  for i in range(args.random):
    sample = sampler.sample_program(GenerationConfig(), rng, heldout.blocklist())
    verified += _show(f"random program {i + 1} ({len(sample.program)} SOps)",
                      source.to_source(sample.program, header=False),
                      compiler.tracr_compile(sample.program, lib_report.SETTINGS))
    total += 1
  print(f"\n{verified}/{total} decompilations verified against their compiled models.")


if __name__ == "__main__":
  main()
