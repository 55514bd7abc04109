"""IR <-> source <-> tracr round trips, for every registry function; parser errors."""

import hypothesis
import hypothesis.strategies as st
import pytest

from tracr_decompiler import test_cases
from tracr_decompiler.program import evaluate, ir, registry, source, to_rasp

L = ir.Line
INPUTS = evaluate.all_inputs(range(5), 3)


def _program_using(name: str) -> ir.Program:
  """A small valid program whose last line uses registry entry `name`."""
  if name in registry.COMPARISONS:
    return ir.make_program([L("selector_width", "categorical", name, ("tokens", "indices"), "w")])
  if name in registry.LINEAR:
    return ir.make_program([L("map", "numerical", "ident", ("tokens",), "a"),
                            L("map", "numerical", "ident", ("indices",), "b"),
                            L("linear_sequence_map", "numerical", name, ("a", "b"), "c")])
  fn = registry.FUNCTIONS[name]
  if fn.arity == 2:
    if registry.BOOL in fn.accepts:
      return ir.make_program([L("map", "categorical", "gt2", ("tokens",), "a"),
                              L("map", "categorical", "lt2", ("indices",), "b"),
                              L("sequence_map", "categorical", name, ("a", "b"), "c")])
    return ir.make_program([L("sequence_map", "categorical", name, ("tokens", "indices"), "c")])
  if registry.BOOL in fn.accepts and registry.INT not in fn.accepts:
    return ir.make_program([L("map", "categorical", "gt2", ("tokens",), "a"), L("map", "categorical", name, ("a",), "b")])
  if registry.NUM in fn.accepts and registry.INT not in fn.accepts:
    return ir.make_program([L("map", "numerical", "ident", ("tokens",), "a"), L("map", "numerical", name, ("a",), "b")])
  return ir.make_program([L("map", "categorical", name, ("tokens",), "b")])


def test_registry_breadth():
  assert len(registry.FUNCTIONS) + len(registry.LINEAR) >= 25
  assert len(set(registry.ALL_NAMES)) == len(registry.ALL_NAMES)


@pytest.mark.parametrize("name", registry.ALL_NAMES)
def test_round_trip_every_registry_entry(name):
  program = _program_using(name)
  text = source.to_source(program)
  assert source.parse_source(text) == program
  expr = to_rasp.to_rasp(program)  # tracr's evaluator agrees with ours
  want = [list(expr(list(x))) for x in INPUTS]
  assert evaluate.same_outputs(want, evaluate.evaluate(program, INPUTS))


@pytest.mark.parametrize("name", sorted(test_cases.PROGRAMS))
def test_round_trip_named_programs(name):
  program = test_cases.PROGRAMS[name]
  assert source.parse_source(source.to_source(program)) == program


def test_parser_accepts_selector_variables_and_default_encoding():
  text = ("from tracr.rasp import rasp\nsel = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)\n"
          "hist = rasp.SelectorWidth(sel)\nprogram = hist\n")
  assert source.parse_source(text) == ir.make_program(
      [L("selector_width", "categorical", "EQ", ("tokens", "tokens"), "hist")])


@pytest.mark.parametrize("name", sorted(test_cases.BAD_SOURCES))
def test_parser_rejects_with_a_reason(name):
  text, fragment = test_cases.BAD_SOURCES[name]
  with pytest.raises(ir.ProgramError, match=fragment):
    source.parse_source(text)


@hypothesis.settings(max_examples=250, deadline=None)
@hypothesis.given(st.text(max_size=200))
def test_parser_fuzz_never_crashes(text):
  try:
    source.parse_source(text)
  except ir.ProgramError:
    pass


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(st.data())
def test_parser_fuzz_mutated_sources(data):
  text = source.to_source(test_cases.PROGRAMS["mixed"])
  i = data.draw(st.integers(0, len(text)))
  j = data.draw(st.integers(i, min(len(text), i + 20)))
  mutated = text[:i] + data.draw(st.text(max_size=10)) + text[j:]
  try:
    source.parse_source(mutated)
  except ir.ProgramError:
    pass
