"""Table functions: printed and parsed back without eval, canonical, named, and compiled by tracr as RASP says."""

import json
import pathlib

import hypothesis
import hypothesis.strategies as st
import pytest

from tracr_decompiler.program import evaluate, ir, registry, source, tables, to_rasp

L = ir.Line
INPUTS = evaluate.all_inputs(range(5), 3)
SCALARS = st.one_of(st.integers(-9, 9), st.booleans(), st.sampled_from(["a", "b", "c"]),
                    st.sampled_from([0.5, -1.25, 2.75]))


def _map_table(values) -> str:
  return tables.lookup(dict(zip(range(5), values))).source


def _agrees_with_tracr(program: ir.Program) -> bool:
  expr = to_rasp.to_rasp(program)
  want = [list(expr(list(x))) for x in INPUTS]
  return evaluate.same_outputs(want, evaluate.evaluate(program, INPUTS))


def test_printed_forms():
  assert _map_table([3, 1, 3, 0, 1]) == "lambda x: {0: 3, 1: 1, 2: 3, 3: 0, 4: 1}[x]"
  assert tables.lookup({(1, 0): True, (0, 1): 2.0}).source == "lambda x, y: {(0, 1): 2, (1, 0): True}[x, y]"
  assert tables.predicate([(1, 2), (0, 1)]).source == "lambda k, q: (k, q) in {(0, 1), (1, 2)}"
  assert tables.predicate([]).source == "lambda k, q: (k, q) in set()"


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(st.lists(SCALARS, min_size=5, max_size=5), st.lists(st.booleans(), min_size=25, max_size=25),
                  st.lists(st.integers(0, 3), min_size=25, max_size=25))
def test_random_tables_round_trip_and_evaluate_as_tracr_does(map_values, truth, pair_values):
  pairs = [(k, q) for (k, q), t in zip(((k, q) for k in range(5) for q in range(5)), truth) if t]
  seq = tables.lookup({(x, y): v for (x, y), v in zip(((x, y) for x in range(5) for y in range(5)), pair_values)})
  program = ir.make_program([
      L("map", "categorical", _map_table(map_values), ("tokens",), "a"),
      L("sequence_map", "categorical", seq.source, ("tokens", "indices"), "b"),
      L("aggregate", "categorical", tables.predicate(pairs).source, ("tokens", "indices", "b"), "c"),
      L("selector_width", "categorical", tables.predicate(pairs).source, ("b", "indices"), "d")])
  assert source.parse_source(source.to_source(program)) == program
  for out in "abcd":  # each line as the output, so tracr evaluates every function
    sub = ir.Program(program.lines[:"abcd".index(out) + 1])
    try:
      evaluate.evaluate(sub, INPUTS)
    except evaluate.EvaluationError:  # e.g. an Aggregate averaging different categorical values
      continue
    assert _agrees_with_tracr(sub)


def test_fractional_keys_are_looked_up_rounded():
  """tracr's value set can hold -0.6666666666666667 (1/3 - 1) where evaluation computes -0.6666666666666666
  (0 - 2/3): a compiled model does not tell them apart, and neither may the table."""
  t = tables.lookup({-0.6666666666666667: 1, 0: 0, 1 / 3 - 1 / 5: 2, 0.5: 0})
  assert t.source == "lambda x: {-0.666667: 1, 0: 0, 0.133333: 2, 0.5: 0}[round(x, 6)]"
  assert (t(-0.6666666666666666), t(0.13333333333333333), t(0.0), t(1e-17)) == (1, 2, 0, 0)
  assert tables.parse(t.source) == t
  assert tables.parse("lambda x: {0.30000000000000004: 1, 1: 2}[x]") == tables.lookup({0.3: 1, 1: 2})
  assert tables.lookup({0.0078125: 1, 0.5: 2}).source.endswith("[round(x, 7)]")  # 6 places would be a tie
  pairs = tables.lookup({(0.1 + 0.2, "a"): 1, (1, "b"): 2})
  assert pairs.source == "lambda x, y: {(0.3, 'a'): 1, (1, 'b'): 2}[round(x, 6), y]" and pairs(0.3, "a") == 1
  assert tables.parse(pairs.source) == pairs
  assert tables.lookup({0: 1, 2: 3}).source == "lambda x: {0: 1, 2: 3}[x]"  # ints: looked up as they are


def test_a_table_line_is_canonical_whatever_order_it_was_written_in():
  a = L("map", "categorical", "lambda v: {2: 'b', 0: 'a', 1: 1.0}[v]", ("tokens",), "a")
  assert a.fn == "lambda x: {0: 'a', 1: 1, 2: 'b'}[x]"
  parsed = source.parse_source("a = rasp.Map(lambda t: {2: 'b', 0: 'a', 1: 1}[t], rasp.tokens)\nprogram = a\n")
  assert parsed.lines[0].fn == a.fn


def test_transposed_sequence_map_tables_are_the_same_program():
  table = {(x, y): (2 * x + y) % 3 for x in range(5) for y in range(5)}
  one = ir.make_program([L("sequence_map", "categorical", tables.lookup(table).source, ("tokens", "indices"), "s")])
  swapped = tables.lookup({(y, x): v for (x, y), v in table.items()}).source
  other = ir.make_program([L("sequence_map", "categorical", swapped, ("indices", "tokens"), "s")])
  assert ir.canonicalize(one) == ir.canonicalize(other)
  assert evaluate.evaluate(one, INPUTS) == evaluate.evaluate(other, INPUTS)


@pytest.mark.parametrize("text, fragment", [
    ("a = rasp.Map(lambda x: {0: y}[x], rasp.tokens)", "not a literal"),
    ("a = rasp.Map(lambda x: {0: print(1)}[x], rasp.tokens)", "not a literal"),
    ("a = rasp.Map(lambda x: {0: 1, 0: 2}[x], rasp.tokens)", "same value"),
    ("a = rasp.Map(lambda x: {0: 1}[x + 1], rasp.tokens)", "not a table"),
    ("a = rasp.Map(lambda x, y: {(0, 0): 1}[x, y], rasp.tokens)", "argument"),
    ("a = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: {(0, 0): 1}[k, q]))", "predicate"),
    ("a = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: (q, k) in {(0, 0)}))", "predicate"),
    ("a = rasp.Map(lambda x: {0: float('nan')}[x], rasp.tokens)", "not a literal"),
    ("a = rasp.Map(lambda x: {0: 1e999}[x], rasp.tokens)", "finite"),
])
def test_the_parser_reads_only_literal_tables(text, fragment):
  with pytest.raises(ir.ProgramError, match=fragment):
    source.parse_source(text)


def test_a_table_of_the_wrong_form_is_not_a_valid_line():
  with pytest.raises(ir.ProgramError):
    ir.make_program([L("map", "categorical", tables.predicate([(0, 0)]).source, ("tokens",), "a")])
  with pytest.raises(ir.ProgramError):
    ir.make_program([L("selector_width", "categorical", _map_table([0] * 5), ("tokens", "tokens"), "a")])


def test_tables_that_a_registry_entry_matches_are_written_as_its_name():
  # Where a table becomes a name: registry.named, applied to programs by evaluate.with_canonical_aliases.
  inc = _map_table([1, 2, 3, 4, 5])
  lt = tables.from_function(tables.SELECT, lambda k, q: k < q, range(5), range(5)).source
  add = tables.from_function(tables.SEQUENCE_MAP, lambda x, y: x + y, range(5), range(5)).source
  odd = _map_table([7, 1, 7, 1, 7])
  program = ir.make_program([L("map", "categorical", inc, ("tokens",), "a"),
                             L("sequence_map", "categorical", add, ("tokens", "indices"), "b"),
                             L("aggregate", "categorical", lt, ("indices", "indices", "a"), "c"),
                             L("map", "categorical", odd, ("tokens",), "d"),
                             L("sequence_map", "categorical", "max", ("c", "d"), "e")])
  named = evaluate.with_canonical_aliases(program, evaluate.all_inputs(range(5), 5))
  assert [line.fn for line in named.lines] == ["inc", "add", "LT", odd, "max"]
  # A table equal to `inc` only on values the input takes is still `inc` there, and a table elsewhere.
  assert registry.named(inc, [[0, 1, 2]], [registry.INT]) == "inc"
  assert registry.named(_map_table([1, 2, 3, 4, 0]), [[0, 1, 2, 3]], [registry.INT]) == "inc"
  assert registry.named(_map_table([1, 2, 3, 4, 0]), [[0, 1, 2, 3, 4]], [registry.INT]) != "inc"


def test_the_decoder_vocabulary_is_the_shipped_models():
  from tracr_decompiler.encoding import programs
  shipped = json.loads((pathlib.Path(programs.__file__).parent.parent / "pretrained" / "config.json").read_text())
  assert list(programs.FNS) == shipped["vocab"]["fns"] == list(registry.ALL_NAMES)
  assert len(programs.AR_VOCAB) == shipped["model_config"]["ar_vocab"]
  assert not any(tables.parse(name) for name in programs.FNS)


COMPILED = {  # every op kind with a table function, categorical and numerical
    "categorical": ir.make_program([
        L("map", "categorical", _map_table([2, 0, 2, 1, 0]), ("tokens",), "a"),
        L("sequence_map", "categorical", tables.from_function(
            tables.SEQUENCE_MAP, lambda x, y: (x + 2 * y) % 4, range(3), range(5)).source, ("a", "indices"), "b"),
        L("aggregate", "categorical", tables.predicate([(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]).source,
          ("indices", "indices", "b"), "c"),
        L("selector_width", "categorical", tables.predicate([(0, 1), (1, 2), (2, 0), (3, 3)]).source,
          ("c", "a"), "d")]),
    "numerical": ir.make_program([
        L("map", "numerical", _map_table([0.5, 1, 0, 1, 0.25]), ("tokens",), "a"),
        L("map", "numerical", tables.lookup({0: 1, 0.25: 0, 0.5: 0.5, 1: 0}).source, ("a",), "z"),  # discretising MLP
        L("aggregate", "numerical", tables.predicate([(k, q) for k in range(5) for q in range(5) if k <= q + 1]).source,
          ("indices", "indices", "z"), "b"),
        L("map", "categorical", _map_table([False, True, True, False, True]), ("tokens",), "t"),
        L("map", "numerical", tables.lookup({False: 0.5, True: 1}).source, ("t",), "u"),
        L("linear_sequence_map", "numerical", "lin_1_1", ("b", "u"), "c")]),
}


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_table_programs_compile_and_compute_what_rasp_says(name):
  # Our fast compiler and plain tracr (its own forward pass), on every input.
  from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs
  from tracr_decompiler.loading import tracr_model
  program = COMPILED[name]
  settings = compiler.CompileSettings(vocab=(0, 1, 2, 3, 4), max_seq_len=4)
  inputs = inputs_lib.input_set(settings.vocab, settings.max_seq_len)
  fast = compiler.compile_program(program, settings)
  result = outputs.compare(outputs.model_outputs(fast, inputs), program, inputs)
  assert result.equal, result.describe()
  model = compiler.tracr_compile(program, settings)
  result = outputs.compare(outputs.tracr_outputs(model, inputs, tracr_model.from_tracr(model).output_dims),
                           program, inputs)
  assert result.equal, result.describe()
