"""Functions read from the weights: out-of-registry predicates and tables come back exact (as formulas when
a short one matches), and verified."""

import dataclasses

import pytest
from tracr.rasp import rasp

import tracr_decompiler
from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import reading
from tracr_decompiler.decompiling import read_functions
from tracr_decompiler.decompiling.verify import Verifier
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import ir, tables

L = ir.Line
OUTPUT_TABLE = {0: 2, 1: 0, 2: 4, 3: 1, 4: 3, 5: 0}  # no registry function: a permutation-like lookup
COUNT_ONES = "lambda k, q: k == 1"  # make_count's own predicate, found as a formula (formulas.py)


@pytest.fixture(scope="module")
def count_model():
  """make_count(tokens, 1) then an out-of-registry Map at the output, compiled by plain tracr."""
  count = rasp.categorical(rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == 1)))
  out = rasp.categorical(rasp.Map(lambda x: OUTPUT_TABLE[x], count))
  return compiler.tracr_compile(out, compiler.CompileSettings(compiler_bos="BOS"))


def _read(program: ir.Program, model) -> read_functions.ReadVariant:
  compiled = reading.as_compiled(model)
  return read_functions.read_variant(ir.canonicalize(program), compiled, weights.encode_model(compiled))


def test_decompile_returns_the_tables_verified(count_model):
  result = tracr_decompiler.decompile(count_model)
  assert result.status == "proved", result.verification
  select, output = result.program.lines
  assert select.fn == COUNT_ONES
  assert output.fn == tables.lookup(OUTPUT_TABLE).source
  assert (result.functions_read, result.functions_replaced) == (2, 2)
  assert "2 function(s) read from the weights" in result.verification


def test_wrong_guesses_are_replaced_by_the_weights_tables(count_model):
  guess = ir.make_program([L("selector_width", "categorical", "EQ", ("tokens", "tokens"), "a"),
                           L("map", "categorical", "inc", ("a",), "b")])
  variant = _read(guess, count_model)
  assert (variant.read, variant.disagreed) == (2, 2)
  want = ir.make_program([L("selector_width", "categorical", COUNT_ONES, ("tokens", "tokens"), "a"),
                          L("map", "categorical", tables.lookup(OUTPUT_TABLE).source, ("a",), "b")])
  assert variant.program == ir.canonicalize(want)
  assert Verifier(count_model).check(variant.program).status == "proved"


def test_a_guess_that_agrees_keeps_its_name():
  program = ir.make_program([L("selector_width", "categorical", "EQ", ("tokens", "tokens"), "a"),
                             L("map", "categorical", "inc", ("a",), "b")])
  variant = _read(program, compiler.compile_program(program))
  assert (variant.read, variant.disagreed) == (2, 0)
  assert variant.program == ir.canonicalize(program)


def test_a_table_some_registry_entry_matches_is_written_as_that_name():
  truth = ir.make_program([L("map", "categorical", "eq0", ("tokens",), "a"),
                           L("aggregate", "categorical", "LT", ("indices", "indices", "a"), "b")])
  guess = ir.make_program([L("map", "categorical", "eq2", ("tokens",), "a"),
                           L("aggregate", "categorical", "GT", ("indices", "indices", "a"), "b")])
  variant = _read(guess, compiler.compile_program(truth))
  assert variant.program == ir.canonicalize(truth)  # names, not tables


def test_interchangeable_maps_are_told_apart_by_their_users():
  """detect_pattern's shape: two Maps of tokens fit either node until the lines that use them decide."""
  shift = "lambda k, q: q == k + 1"  # shift_by's predicate: a formula (formulas.py), read back as written
  truth = ir.make_program([L("map", "categorical", "eq0", ("tokens",), "a"),
                           L("map", "categorical", "eq1", ("tokens",), "b"),
                           L("aggregate", "categorical", shift, ("indices", "indices", "a"), "c"),
                           L("sequence_map", "categorical", "and", ("c", "b"), "d")])
  guess = ir.make_program([L("map", "categorical", "eq0", ("tokens",), "a"),
                           L("map", "categorical", "eq1", ("tokens",), "b"),
                           L("aggregate", "categorical", "EQ", ("indices", "indices", "a"), "c"),
                           L("sequence_map", "categorical", "and", ("c", "b"), "d")])
  model = compiler.compile_program(truth)
  variant = _read(guess, model)
  assert (variant.read, variant.disagreed) == (4, 1)
  assert variant.program == ir.canonicalize(truth)
  assert Verifier(model).check(variant.program).status == "proved"


def test_intermediate_labels_the_weights_do_not_hold_are_invented_in_their_order():
  """A Map onto 3 values guessed as one onto 5: its labels are not in the weights, so 0, 1, 2 stand for them
  (tracr sorts a block by value, so any labels in that order compile alike) and its user is read over them."""
  truth = ir.make_program([L("map", "categorical", tables.lookup({0: 3, 1: 1, 2: 3, 3: 0, 4: 1}).source,
                             ("tokens",), "a"),
                           L("map", "categorical", tables.lookup({0: 1, 1: 2, 3: 0}).source, ("a",), "b")])
  guess = ir.make_program([L("map", "categorical", "inc", ("tokens",), "a"),
                           L("map", "categorical", "dec", ("a",), "b")])
  model = compiler.tracr_compile(truth)
  variant = _read(guess, model)
  assert (variant.read, variant.disagreed) == (2, 2)
  a, b = variant.program.lines
  assert a.fn == tables.lookup({0: 2, 1: 1, 2: 2, 3: 0, 4: 1}).source  # {0, 1, 3} -> 0, 1, 2 in order
  assert Verifier(model).check(variant.program).status == "proved"


def test_values_that_aggregates_copy_into_the_output_take_the_outputs_labels():
  """A Map onto {0, 2} guessed as a boolean one, then categorical Aggregates to the output: the output's values
  are in the model, and the Aggregates copy them unchanged from the Map, so the Map's labels are those."""
  truth = ir.make_program([L("map", "categorical", tables.lookup({0: 2, 1: 0, 2: 2, 3: 0, 4: 2}).source,
                             ("tokens",), "a"),
                           L("aggregate", "categorical", "EQ", ("indices", "tokens", "a"), "b"),
                           L("aggregate", "categorical", "EQ", ("indices", "indices", "b"), "c")])
  guess = ir.make_program([L("map", "categorical", "even", ("tokens",), "a"),
                           L("aggregate", "categorical", "EQ", ("indices", "tokens", "a"), "b"),
                           L("aggregate", "categorical", "EQ", ("indices", "indices", "b"), "c")])
  model = compiler.tracr_compile(truth)
  variant = _read(guess, model)
  assert list(variant.replaced.values()) == ["even"]  # its formula or table gives 0 and 2, not False and True
  assert Verifier(model).check(variant.program).status == "proved"


def test_numerical_map_reads_the_numbers():
  truth = ir.make_program([L("map", "numerical", tables.lookup({0: 0.5, 1: 2, 2: 0, 3: 0.25, 4: 3}).source,
                             ("tokens",), "a")])
  guess = ir.make_program([L("map", "numerical", "ident", ("tokens",), "a")])
  model = compiler.compile_program(truth)
  variant = _read(guess, model)
  assert variant.program == ir.canonicalize(truth)
  assert Verifier(model).check(variant.program).status == "proved"


def test_a_guess_that_fails_on_its_inputs_costs_only_its_own_line():
  """`x < y` of letters and indices cannot even be given values; the table from the weights replaces it, and
  the line after it is read as usual."""
  settings = compiler.CompileSettings(vocab=("a", "b", "c"), max_seq_len=4, compiler_bos="BOS")
  pairs = {(t, i): (i + "abc".index(t)) % 3 for t in "abc" for i in range(4)}
  truth = ir.make_program([L("sequence_map", "categorical", tables.lookup(pairs).source, ("tokens", "indices"), "a"),
                           L("map", "categorical", tables.lookup({0: 1, 1: 5, 2: 1}).source, ("a",), "b")])
  guess = ir.make_program([L("sequence_map", "categorical", "ltxy", ("tokens", "indices"), "a"),
                           L("map", "categorical", "inc", ("a",), "b")])
  model = compiler.tracr_compile(truth, settings)
  variant = _read(guess, model)
  assert (variant.read, variant.disagreed) == (2, 2)
  assert Verifier(model).check(variant.program).status == "proved"


def test_a_numerical_zero_one_map_of_fractions_reads_as_a_predicate_and_proves():
  """shuffle_dyck's `balance < 0` (make_pair_balance): a numerical Map of a LinearSequenceMap of fractions.
  It reads as `x < 0` (tracr compiles True as 1), not as a table over the balance's fractions: such a
  table fails where evaluation meets a fraction tracr's value set lacks (-0.6 here; the compiled MLP
  thresholds it between neighbours)."""
  is0 = rasp.numerical(rasp.Map(lambda x: x == 0, rasp.tokens))
  is1 = rasp.numerical(rasp.Map(lambda x: x == 1, rasp.tokens))
  prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
  opens = rasp.numerical(rasp.Aggregate(prevs, is0, default=0))
  closes = rasp.numerical(rasp.Aggregate(prevs, is1, default=0))
  balance = rasp.numerical(rasp.LinearSequenceMap(opens, closes, 1, -1))
  negative = rasp.numerical(rasp.Map(lambda x: x < 0, balance))
  model = compiler.tracr_compile(negative, compiler.CompileSettings(compiler_bos="BOS"))
  lines = [L("map", "numerical", "eq0", ("tokens",), "a"), L("map", "numerical", "eq1", ("tokens",), "b"),
           L("aggregate", "numerical", "LEQ", ("indices", "indices", "a"), "c"),
           L("aggregate", "numerical", "LEQ", ("indices", "indices", "b"), "d"),
           L("linear_sequence_map", "numerical", "lin_1_m1", ("c", "d"), "e")]
  variant = _read(ir.make_program(lines + [L("map", "numerical", "lthalf", ("e",), "f")]), model)
  assert variant.program.lines[-1].fn == "lambda x: x < 0"
  assert Verifier(model).check(variant.program).status == "proved"


def test_interchangeable_early_lines_are_matched_by_what_reads_them_many_lines_later():
  """shuffle_dyck2's shape: four Maps of tokens, a prefix mean of each, then differences of two pairs.
  Which Map is which node is settled only by the LinearSequenceMaps; every line must still be matched
  (and so read), however the nodes are laid out."""
  prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
  means = [rasp.numerical(rasp.Aggregate(prevs, rasp.numerical(rasp.Map(lambda x, t=t: x == t, rasp.tokens)),
                                         default=0)) for t in range(4)]
  balances = [rasp.numerical(rasp.LinearSequenceMap(means[a], means[b], 1, -1)) for a, b in ((0, 1), (2, 3))]
  out = rasp.numerical(rasp.LinearSequenceMap(balances[0], balances[1], 1, 1))
  model = compiler.tracr_compile(out, compiler.CompileSettings(compiler_bos="BOS"))
  compiled = reading.as_compiled(model)
  lines = [L("map", "numerical", f"eq{t}", ("tokens",), f"m{t}") for t in range(4)]
  lines += [L("aggregate", "numerical", "LEQ", ("indices", "indices", f"m{t}"), f"a{t}") for t in range(4)]
  lines += [L("linear_sequence_map", "numerical", "lin_1_m1", ("a0", "a1"), "b0"),
            L("linear_sequence_map", "numerical", "lin_1_m1", ("a2", "a3"), "b1"),
            L("linear_sequence_map", "numerical", "lin_1_1", ("b0", "b1"), "out")]
  program = ir.canonicalize(ir.make_program(lines))
  matchings = read_functions.match_nodes(program, weights.encode_model(compiled))
  assert matchings and all(len(m) == len(program.lines) for m in matchings)
  assert Verifier(model).check(_read(program, model).program).status == "proved"
  wrong = ir.canonicalize(ir.make_program(lines[:8] + [dataclasses.replace(lines[8], fn="lin_m1_1")] + lines[9:]))
  variant = _read(wrong, model)
  assert list(variant.replaced.values()) == ["lin_m1_1"]  # the factors are read from the MLP, as numbers
  assert variant.program == program
