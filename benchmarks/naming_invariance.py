"""Does the decompiled program depend on how the SOps were named? (It must not.)

Run:  python benchmarks/naming_invariance.py --data data/v2 [--n 200] [--checkpoint PATH]

Each test program is compiled under its canonical names and under three other
namings (names that sort before `indices`, after `tokens`, and interleaved,
with tracr's label counter moved between compiles), which permutes residual
blocks, heads and hidden units. Counts programs whose decompiled source is
identical under all four.
"""

from __future__ import annotations

import argparse
import json
import sys

from tracr.rasp import rasp

from tracr_decompiler.compiling import compiler
from tracr_decompiler.dataset import reader, rows
from tracr_decompiler.decompiling.decompile import decompile

NAMINGS = {"before_indices": lambda i: f"aa{i}", "after_tokens": lambda i: f"zz_{97 - i}",
           "interleaved": lambda i: f"m{i * 7 % 5}x{i}"}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default="data/d10k")
  parser.add_argument("--split", default="test")
  parser.add_argument("--n", type=int, default=200)
  parser.add_argument("--checkpoint", default=None)
  args = parser.parse_args(argv)
  same = 0
  table = reader.read_split(args.data, args.split, limit=args.n)
  for row in table:
    program, settings = rows.program_from_row(row), rows.model_from_row(row).settings
    outputs = {decompile(compiler.compile_program(program, settings), checkpoint_path=args.checkpoint,
                         verify=False).source}
    for naming in NAMINGS.values():
      [rasp.Map(lambda x: x, rasp.tokens) for _ in range(11)]  # move the label counter
      names = {line.out: naming(i) for i, line in enumerate(program.lines)}
      model = compiler.compile_program(program, settings, names=names)
      outputs.add(decompile(model, checkpoint_path=args.checkpoint, verify=False).source)
    same += len(outputs) == 1
  result = {"programs": len(table), "identical_under_all_namings": same, "namings": ["canonical", *NAMINGS]}
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
