"""Verification never accepts a program that differs from the model on any input."""

import dataclasses
import itertools

import pytest

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.verify import Verifier
from tracr_decompiler.evaluation import metrics
from tracr_decompiler.program import ir, ops


def _near_misses(program: ir.Program):
  """Every program one field away from `program` (function, comparison, encoding, argument)."""
  for i, line in enumerate(program.lines):
    for fn in ops.SPECS[line.op].names:
      if fn != line.fn:
        yield i, dataclasses.replace(line, fn=fn)
    earlier = list(ir.INPUTS) + [l.out for l in program.lines[:i]]
    for k in range(len(line.args)):
      for a in earlier:
        if a != line.args[k]:
          yield i, dataclasses.replace(line, args=line.args[:k] + (a,) + line.args[k + 1:])


@pytest.mark.parametrize("name", ["sort_unique", "frac_prevs", "mixed"])
def test_near_miss_candidates_are_rejected_unless_equivalent(name):
  program = test_cases.PROGRAMS[name]
  verifier = Verifier(compiler.compile_program(program))
  assert verifier.check(program).functional
  assert verifier.check(program).weights_identical
  tried = 0
  for i, line in itertools.islice(_near_misses(program), 60):
    try:
      candidate = ir.Program(program.lines[:i] + (line,) + program.lines[i + 1:])
    except ir.ProgramError:
      continue
    tried += 1
    accepted = verifier.check(candidate, weights_check=False).functional
    # Accept exactly the candidates that agree with the true program on every input.
    assert accepted == metrics.functional(candidate, program, compiler.CompileSettings())
  assert tried > 10
