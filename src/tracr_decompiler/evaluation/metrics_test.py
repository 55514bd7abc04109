"""Metrics on hand-made cases."""

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.evaluation import metrics
from tracr_decompiler.program import ir

L = ir.Line
S = compiler.CompileSettings()


def test_equivalent_but_different_programs_are_functional_not_exact():
  # x < 3 and not (x > 2) agree on every token 0..4.
  a = ir.make_program([L("map", "categorical", "lt3", ("tokens",), "y")])
  b = ir.make_program([L("map", "categorical", "gt2", ("tokens",), "t"), L("map", "categorical", "not", ("t",), "y")])
  assert metrics.functional(a, b, S)
  assert not metrics.exact(a, b)


def test_one_differing_input_breaks_equivalence():
  a = ir.make_program([L("map", "categorical", "lt3", ("tokens",), "y")])
  b = ir.make_program([L("map", "categorical", "lt2", ("tokens",), "y")])  # differs only for token 2
  assert not metrics.functional(a, b, S)


def test_none_only_equals_none():
  # A categorical aggregate with no match gives None; the same positions must be None on both sides.
  shift = ir.make_program([L("map", "categorical", "inc", ("indices",), "q"),
                           L("aggregate", "categorical", "EQ", ("indices", "q", "tokens"), "y")])
  ident_like = ir.make_program([L("map", "categorical", "inc", ("indices",), "q"),
                                L("aggregate", "categorical", "EQ", ("q", "indices", "tokens"), "y")])
  assert metrics.functional(shift, shift, S)
  assert not metrics.functional(shift, ident_like, S)


def test_exact_ignores_names_and_order():
  p = test_cases.PROGRAMS["mixed"]
  renamed = ir.Program(tuple(ir.Line(l.op, l.encoding, l.fn, tuple(a if a in ir.INPUTS else a + "_" for a in l.args),
                                     l.out + "_") for l in p.lines))
  assert metrics.exact(p, renamed)
  assert metrics.line_accuracy(p, renamed) == 1.0


def test_compilable_and_weight_identical():
  p = test_cases.PROGRAMS["sort_unique"]
  model = compiler.compile_program(p)
  assert metrics.compilable(p, S)
  assert metrics.weight_identical(p, model)
  other = ir.make_program([L("selector_width", "categorical", "GT", ("tokens", "tokens"), "s"),
                           L("aggregate", "categorical", "EQ", ("s", "indices", "tokens"), "y")])
  assert not metrics.weight_identical(other, model)


def test_a_formula_read_from_the_weights_is_exact_against_the_truths_table_of_the_same_function():
  from tracr_decompiler.compiling import inputs as inputs_lib
  from tracr_decompiler.program import ir
  table = "lambda x: {0: 3, 1: 4, 2: 0, 3: 1, 4: 2}[x]"  # (x + 3) % 5 on tokens {0..4}
  line = lambda fn: ir.Line(op="map", encoding="categorical", fn=fn, args=("tokens",), out="x0")
  truth, formula = ir.Program((line(table),)), ir.Program((line("lambda x: (x + 3) % 5"),))
  other = ir.Program((line("lambda x: (x + 2) % 5"),))
  inputs = inputs_lib.input_set((0, 1, 2, 3, 4), 5).inputs
  assert not metrics.exact(formula, truth)  # as written, the texts differ
  assert metrics.exact(formula, truth, inputs)
  assert not metrics.exact(other, truth, inputs)


def test_a_numerical_zero_one_table_is_exact_against_the_predicate_read_for_it():
  """The reader writes a numerical SOp of 0s and 1s as a predicate (`x % 4 != 0`, tracr compiles True as 1);
  the truth's int table and an int formula of the same values are named alike, so both are exact."""
  from tracr_decompiler.compiling import inputs as inputs_lib
  from tracr_decompiler.program import ir
  line = lambda fn: ir.Line(op="map", encoding="numerical", fn=fn, args=("tokens",), out="x0")
  truth = ir.Program((line("lambda x: {0: 0, 1: 1, 2: 1, 3: 1, 4: 0}[x]"),))
  inputs = inputs_lib.input_set((0, 1, 2, 3, 4), 5).inputs
  for written in ("lambda x: x % 4 != 0", "lambda x: min(x % 4, 1)"):
    assert metrics.exact(ir.Program((line(written),)), truth, inputs), written
  assert not metrics.exact(ir.Program((line("lambda x: x % 4 == 0"),)), truth, inputs)
