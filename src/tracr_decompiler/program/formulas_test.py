"""Formula functions: found by the search, read back without eval, printed, parsed and compiled as written."""

import itertools
import random

import pytest

from tracr_decompiler.program import evaluate, formulas, ir, registry, source, tables, to_rasp

L = ir.Line
INPUTS = evaluate.all_inputs(range(5), 3)


def _typed(values) -> list:
  return [(isinstance(v, bool), v) for v in values]


def _outputs(f, domains) -> tuple:
  return tuple(f(*p) for p in itertools.product(*domains))


def _found(form, domains, f) -> formulas.Formula | None:
  """The search's formula for f's table, checked to agree with it (sorts included) on the domain."""
  found = formulas.search(form, domains, _outputs(f, domains))
  if found is not None:
    assert _typed(_outputs(found, domains)) == _typed(_outputs(f, domains)), found.source
  return found


@pytest.mark.parametrize("f", [f for f in registry.MAP_FUNCTIONS if registry.INT in f.accepts], ids=lambda f: f.name)
def test_every_int_map_function_is_a_formula_and_keeps_its_registry_name(f):
  domain = list(range(6))
  assert _found(tables.MAP, [domain], f.fn) is not None
  table = tables.from_function(tables.MAP, f.fn, domain).source
  assert registry.named(table, [domain], [registry.INT], search_formulas=True) == registry.canonical_alias(
      table, domain, registry.INT)  # the registry comes first


@pytest.mark.parametrize("f", [f for f in registry.SEQUENCE_MAP_FUNCTIONS if registry.INT in f.accepts],
                         ids=lambda f: f.name)
def test_every_int_sequence_map_function_is_a_formula(f):
  domains = [list(range(4)), list(range(1, 5))]
  assert _found(tables.SEQUENCE_MAP, domains, f.fn) is not None


@pytest.mark.parametrize("form, domains, f, text", [
    (tables.MAP, [range(7)], lambda x: x + 1, "lambda x: x + 1"),
    (tables.MAP, [range(7)], lambda x: x % 3, "lambda x: x % 3"),
    (tables.MAP, [range(7)], lambda x: (x + 3) % 5, "lambda x: (x + 3) % 5"),
    (tables.MAP, [range(7)], lambda x: 3 * x - 2, "lambda x: x * 3 - 2"),
    (tables.MAP, [[False, True]], lambda x: 3 if x else 0, "lambda x: 3 if x else 0"),
    (tables.SEQUENCE_MAP, [range(5), range(5)], lambda x, y: min(x, y), "lambda x, y: min(x, y)"),
    (tables.SEQUENCE_MAP, [range(5), range(5)], lambda x, y: x == y, "lambda x, y: x == y"),
    (tables.SEQUENCE_MAP, [range(5), range(5)], lambda x, y: max(x, y) - 1, "lambda x, y: max(x, y) - 1"),
    (tables.SELECT, [range(6), range(6)], lambda k, q: q == k + 1, "lambda k, q: q == k + 1"),
    (tables.SELECT, [range(6), range(6)], lambda k, q: k == 2, "lambda k, q: k == 2"),
    (tables.SELECT, [range(6), range(6)], lambda k, q: k < q - 1, "lambda k, q: k < q - 1"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_shortest_formulas(form, domains, f, text):
  found = _found(form, [list(d) for d in domains], f)
  assert found is not None and found.source == text


def test_a_table_that_happens_to_be_a_formula():
  domain = list(range(5))
  table = tables.from_function(tables.MAP, lambda x: (x * 2 + 1) % 5, domain)
  found = formulas.search(tables.MAP, [domain], tuple(table(x) for x in domain))
  assert found is not None and all(found(x) == table(x) for x in domain)
  named = registry.named(table.source, [domain], [registry.INT], search_formulas=True)
  assert named == found.source and registry.how_written(named) == "formula"
  assert registry.named(table.source, [domain], [registry.INT]) == table.source  # off by default


def test_bools_and_ints_are_told_apart():
  domain = list(range(4))
  as_bools = _found(tables.MAP, [domain], lambda x: x == 0)
  as_ints = _found(tables.MAP, [domain], lambda x: 1 if x == 0 else 0)
  assert as_bools is not None and as_ints is not None and as_bools.source != as_ints.source
  assert formulas.search(tables.MAP, [["a", "b"]], (1, 2)) is None  # strings: no search
  assert formulas.search(tables.MAP, [[0, 1]], (0.5, 2)) is None
  assert _found(tables.MAP, [[0.0, 1.0, 2.0]], lambda x: int(x) + 1) is not None  # integral floats are ints


def test_typed_naming_keeps_a_categorical_outputs_bools():
  """detect_pattern's last `&` over labels 0/1: `x * y` agrees with its table only if 1 == True, which a
  categorical SOp's value set (the output encoder's labels) does not grant."""
  both = tables.lookup({(x, y): x == 1 and y == 1 for x in (0, 1) for y in (0, 1)}).source
  domains, kinds = [[0, 1], [0, 1]], [registry.INT, registry.INT]
  assert registry.named(both, domains, kinds) == "mul"  # untyped, as a numerical SOp compiles it
  typed = registry.named(both, domains, kinds, search_formulas=True, encoding="categorical")
  assert typed != "mul" and all(registry.function(typed).fn(x, y) is (x == 1 and y == 1)
                                for x in (0, 1) for y in (0, 1))


def test_a_numerical_sops_fractions_are_a_domain_too():
  """A balance of fractions (make_pair_balance) tested against 0, as shuffle_dyck does: `x < 0`, not a table."""
  domain = [-1, -0.6666666666666667, -0.25, 0, 0.2, 0.5, 1]
  found = _found(tables.MAP, [domain], lambda x: x < 0)
  assert found is not None and found.source == "lambda x: x < 0"
  assert formulas.search(tables.MAP, [domain], tuple(0.5 * x for x in domain)) is None  # fractional outputs: no


def test_unstructured_tables_give_none_within_the_budget(monkeypatch):
  """The search stops on counted work, not a clock: every candidate evaluated is paid for, and no search pays
  more than MAX_WORK, so a table gets the same answer on every machine however loaded."""
  paid, offered = [], []
  spend, offer = formulas._Search.spend, formulas._Search.offer

  def counted_spend(self):
    paid.append(self.n + formulas._CANDIDATE_COST)
    spend(self)

  def counted_offer(self, sort, size, node, values, var):
    offered.append(var)  # constants (var=False) are free: the grammar has a handful
    offer(self, sort, size, node, values, var)

  monkeypatch.setattr(formulas._Search, "spend", counted_spend)
  monkeypatch.setattr(formulas._Search, "offer", counted_offer)
  rng = random.Random(0)
  cases = [(tables.MAP, [list(range(7))]), (tables.SEQUENCE_MAP, [list(range(5))] * 2),
           (tables.SELECT, [list(range(6))] * 2)]
  big = [list(range(200)), list(range(200))]  # 40,000 points: the budget stops after a few candidates
  cases.append((tables.SEQUENCE_MAP, big))
  for form, domains in cases:
    n = len(list(itertools.product(*domains)))
    outputs = tuple(rng.random() < 0.5 for _ in range(n)) if form == tables.SELECT else tuple(
        rng.randrange(9) for _ in range(n))
    paid.clear(), offered.clear()
    formulas._search.cache_clear()
    assert formulas.search(form, domains, outputs) is None
    assert sum(paid) > formulas.MAX_WORK  # it ran out of budget, not out of grammar
    assert sum(paid[:-1]) <= formulas.MAX_WORK  # and stopped at the first candidate past it
    assert sum(offered) <= len(paid)  # no candidate was evaluated unpaid


@pytest.mark.parametrize("text", [
    "lambda x: __import__('os')", "lambda x: x.real", "lambda x: print(x)", "lambda x: x ** 2",
    "lambda x: x % y", "lambda x: x // x", "lambda x: x % 0", "lambda x: x % -2", "lambda a: a + 1",
    "lambda x: 1.5", "lambda x: 'a'", "lambda x: [x][0]", "lambda x: (lambda: 1)()", "lambda x=1: x",
    "lambda *x: 1", "lambda x: min(x)", "lambda x: abs(x, key=1)", "lambda x: abs(*x)", "lambda x: ~x",
    "lambda x: x @ x", "lambda x: x in (1, 2)", "lambda x: (y := x)", "lambda x: x + 1; import os",
    "x + 1", "lambda x: " + " + ".join(["x"] * 200), "lambda x: " + "-" * 100 + "x",
    "lambda x: " + "(" * 60 + "x" + ")" * 60 + " + " + "abs(" * 30 + "x" + ")" * 30,
])
def test_parser_rejects_what_is_not_in_the_grammar(text):
  assert formulas.parse(text) is None
  assert registry.written(text) is None


@pytest.mark.parametrize("text, f, domains", [
    ("lambda x: (x+3)%5", lambda x: (x + 3) % 5, [range(-3, 6)]),
    ("lambda x: -x // 2 if x > 1 else abs(x - 4)", lambda x: -x // 2 if x > 1 else abs(x - 4), [range(-3, 6)]),
    ("lambda x, y: max(x, y, 2) - min(x, y)", lambda x, y: max(x, y, 2) - min(x, y), [range(4), range(4)]),
    ("lambda x, y: x and y or not x", lambda x, y: x and y or not x, [[False, True], [False, True]]),
    ("lambda x, y: y and x", lambda x, y: y and x, [range(3), range(3)]),  # the operand, as Python gives it
    ("lambda k, q: 0 <= k - q < 2", lambda k, q: 0 <= k - q < 2, [range(5), range(5)]),
    ("lambda k, q: k != q and (k == 1 or q >= 3)", lambda k, q: k != q and (k == 1 or q >= 3), [range(5), range(5)]),
])
def test_formulas_round_trip_text_to_callable(text, f, domains):
  formula = formulas.parse(text)
  assert formula is not None and formulas.parse(formula.source) == formula
  assert registry.canonical(text) == formula.source
  domains = [list(d) for d in domains]
  assert _typed(_outputs(formula, domains)) == _typed(_outputs(f, domains))


def test_registry_source_text_is_the_registry_name():
  assert registry.canonical("lambda x: x+1") == "inc"
  assert L("map", "categorical", "lambda x: x + 1", ("tokens",), "a").fn == "inc"
  assert registry.how_written("inc") == "registry"
  assert registry.how_written(tables.lookup({0: 1, 1: 0}).source) == "table"


def _agrees_with_tracr(program: ir.Program) -> bool:
  expr = to_rasp.to_rasp(program)
  want = [list(expr(list(x))) for x in INPUTS]
  return evaluate.same_outputs(want, evaluate.evaluate(program, INPUTS))


def test_program_lines_with_formulas_print_parse_and_compile_as_written():
  program = ir.make_program([
      L("map", "categorical", "lambda x: (x + 3) % 5", ("tokens",), "a"),
      L("sequence_map", "categorical", "lambda x, y: max(x, y) - 1", ("a", "indices"), "b"),
      L("selector_width", "categorical", "lambda k, q: k < q - 1", ("tokens", "b"), "c"),
      L("aggregate", "categorical", "lambda k, q: q == k + 1", ("indices", "indices", "c"), "d"),
  ])
  text = source.to_source(program)
  assert "rasp.Map(lambda x: (x + 3) % 5, rasp.tokens, simplify=False)" in text
  assert "rasp.Select(rasp.indices, rasp.indices, lambda k, q: q == k + 1)" in text
  assert "rasp.SequenceMap(lambda x, y: max(x, y) - 1, a, rasp.indices)" in text
  assert source.parse_source(text) == program
  assert ir.canonicalize(source.parse_source(text)) == ir.canonicalize(program)
  assert _agrees_with_tracr(program)


def test_symmetric_ordering_swaps_a_formulas_arguments():
  line = L("sequence_map", "categorical", "lambda x, y: x - y * 2", ("tokens", "indices"), "a")
  program = ir.order_symmetric(ir.make_program([line]), lambda name: name)  # indices sorts before tokens
  assert program.output.args == ("indices", "tokens") and program.output.fn == "lambda x, y: y - x * 2"
  assert _agrees_with_tracr(program) and _agrees_with_tracr(ir.make_program([line]))
  with pytest.raises(ir.ProgramError):  # a predicate formula is not a Map function
    source.parse_source("a = rasp.Map(lambda k, q: k == q, rasp.tokens)\nprogram = a\n")
