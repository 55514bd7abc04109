"""Canonical form: invariant to naming and to the order of independent lines."""

import hypothesis
import hypothesis.strategies as st
import numpy as np

from tracr_decompiler import test_cases
from tracr_decompiler.program import ir, source


def _reorder_and_rename(program: ir.Program, rng: np.random.Generator) -> ir.Program:
  """A random valid topological order and random names: the same program."""
  lines, placed, order = list(program.lines), set(ir.INPUTS), []
  while lines:
    ready = [l for l in lines if all(a in placed for a in l.args)]
    pick = ready[rng.integers(len(ready))]
    lines.remove(pick)
    order.append(pick)
    placed.add(pick.out)
  names = {l.out: f"s{rng.integers(10**6)}_{i}" for i, l in enumerate(order)}
  names.update({n: n for n in ir.INPUTS})
  return ir.Program(tuple(ir.Line(l.op, l.encoding, l.fn, tuple(names[a] for a in l.args), names[l.out])
                          for l in order))


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(st.sampled_from(sorted(test_cases.PROGRAMS)), st.integers(0, 2**31))
def test_canonical_invariant_under_renaming_and_reordering(name, seed):
  program = test_cases.PROGRAMS[name]
  other = _reorder_and_rename(program, np.random.default_rng(seed))
  assert source.to_source(ir.canonicalize(other)) == source.to_source(ir.canonicalize(program))


def test_canonical_differs_when_programs_differ():
  a = test_cases.PROGRAMS["mixed"]
  lines = list(a.lines)
  lines[0] = ir.Line(lines[0].op, lines[0].encoding, "mod3", lines[0].args, lines[0].out)
  assert ir.canonicalize(ir.Program(tuple(lines))) != ir.canonicalize(a)


def test_canonical_drops_lines_that_do_not_reach_the_output():
  p = ir.make_program([ir.Line("map", "categorical", "inc", ("tokens",), "unused"),
                       ir.Line("map", "categorical", "dec", ("tokens",), "out")])
  assert len(ir.canonicalize(p)) == 1


def test_malformed_programs_are_rejected():
  import pytest
  with pytest.raises(ir.ProgramError):
    ir.make_program([ir.Line("map", "categorical", "inc", ("v9",), "a")])
  with pytest.raises(ir.ProgramError):
    ir.make_program([ir.Line("map", "categorical", "EQ", ("tokens",), "a")])
  with pytest.raises(ir.ProgramError):
    ir.make_program([ir.Line("aggregate", "categorical", "EQ", ("tokens",), "a")])
