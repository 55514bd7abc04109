"""The function registry: every named function, comparison and linear weight pair.

This module is the single source of every vocabulary in the project: the
generator samples from it, the source printer and parser use its `source`
strings, and the model's output vocabularies are derived from `ALL_NAMES`.

Value kinds: an SOp's values are of one of three kinds.
  "int"  categorical integers (tokens, indices, most maps),
  "bool" categorical booleans (predicates),
  "num"  numerical (real-valued, one residual dimension).
A function lists the kinds it accepts; what it returns depends on its values.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from tracr.rasp import rasp

from tracr_decompiler.program import formulas, tables

INT, BOOL, NUM = "int", "bool", "num"


@dataclasses.dataclass(frozen=True)
class Function:
  """A named Map or SequenceMap function."""
  name: str
  source: str  # A Python lambda, printed verbatim in RASP source.
  fn: Callable
  arity: int  # 1 for Map, 2 for SequenceMap.
  accepts: frozenset  # Value kinds accepted for every argument.
  threshold: bool = False  # x compared with a constant (==, !=, <, >): a 0/1 SOp the generator can average


@dataclasses.dataclass(frozen=True)
class LinearWeights:
  """The two factors of a LinearSequenceMap."""
  name: str
  fst: int
  snd: int


def _f(name, source, arity, accepts, threshold=False):
  # The lambda is compiled from our own constant source text, never from input;
  # that keeps `source` and `fn` in one place so they cannot drift apart.
  fn = eval(source, {"__builtins__": {"min": min, "max": max, "abs": abs}})  # noqa: S307
  return Function(name, source, fn, arity, frozenset(accepts), threshold)


_NUMBERS = (INT, NUM)

MAP_FUNCTIONS = (
    # integer -> integer
    _f("inc", "lambda x: x + 1", 1, _NUMBERS),
    _f("dec", "lambda x: x - 1", 1, _NUMBERS),
    _f("double", "lambda x: 2 * x", 1, _NUMBERS),
    _f("neg", "lambda x: -x", 1, (INT,)),
    _f("mod2", "lambda x: x % 2", 1, (INT,)),
    _f("mod3", "lambda x: x % 3", 1, (INT,)),
    _f("halve", "lambda x: x // 2", 1, (INT,)),
    _f("min2", "lambda x: min(x, 2)", 1, (INT,)),
    _f("dist2", "lambda x: abs(x - 2)", 1, (INT,)),
    _f("ident", "lambda x: x", 1, (INT, BOOL)),  # mostly a categorical->numerical cast
    # integer -> bool
    _f("eq0", "lambda x: x == 0", 1, _NUMBERS, threshold=True),
    _f("eq1", "lambda x: x == 1", 1, (INT,), threshold=True),
    _f("eq2", "lambda x: x == 2", 1, (INT,), threshold=True),
    _f("eq3", "lambda x: x == 3", 1, (INT,), threshold=True),
    _f("ne2", "lambda x: x != 2", 1, (INT,), threshold=True),
    _f("gt1", "lambda x: x > 1", 1, (INT,), threshold=True),
    _f("gt2", "lambda x: x > 2", 1, (INT,), threshold=True),
    _f("gt3", "lambda x: x > 3", 1, (INT,), threshold=True),
    _f("lt2", "lambda x: x < 2", 1, (INT,), threshold=True),
    _f("lt3", "lambda x: x < 3", 1, (INT,), threshold=True),
    _f("even", "lambda x: x % 2 == 0", 1, (INT,)),
    # bool -> bool
    _f("not", "lambda x: not x", 1, (BOOL,)),
    # numerical -> anything (frequencies, means)
    _f("gt0", "lambda x: x > 0", 1, (NUM,), threshold=True),
    _f("gthalf", "lambda x: x > 0.5", 1, (NUM,), threshold=True),
    _f("lthalf", "lambda x: x < 0.5", 1, (NUM,), threshold=True),
)

SEQUENCE_MAP_FUNCTIONS = (
    _f("add", "lambda x, y: x + y", 2, (INT,)),
    _f("sub", "lambda x, y: x - y", 2, (INT,)),
    _f("mul", "lambda x, y: x * y", 2, (INT,)),
    _f("max", "lambda x, y: max(x, y)", 2, (INT,)),
    _f("min", "lambda x, y: min(x, y)", 2, (INT,)),
    _f("eqxy", "lambda x, y: x == y", 2, (INT,)),
    _f("ltxy", "lambda x, y: x < y", 2, (INT,)),
    _f("and", "lambda x, y: x and y", 2, (BOOL,)),
    _f("or", "lambda x, y: x or y", 2, (BOOL,)),
)

LINEAR_WEIGHTS = tuple(
    LinearWeights(f"lin_{a}_{b}".replace("-", "m"), a, b)
    for a, b in ((1, 1), (1, -1), (-1, 1), (2, 1), (1, 2), (2, -1), (-1, 2), (3, 1), (1, 3)))

COMPARISONS = {c.name: c for c in rasp.Comparison}  # EQ, LT, LEQ, GT, GEQ, NEQ, TRUE, FALSE

FUNCTIONS = {f.name: f for f in MAP_FUNCTIONS + SEQUENCE_MAP_FUNCTIONS}
# f(x, y) == f(y, x): the canonical form sorts these functions' arguments.
SYMMETRIC = frozenset({"add", "mul", "max", "min", "eqxy", "and", "or"})
LINEAR = {w.name: w for w in LINEAR_WEIGHTS}
# Float keys: the parser reads factors as numbers, and 2.0 finds the entry stored as 2 (equal, same hash).
LINEAR_BY_FACTORS: dict[tuple[float, float], LinearWeights] = {(w.fst, w.snd): w for w in LINEAR_WEIGHTS}


def swapped_linear(name: str) -> str | None:
  """The weights of LinearSequenceMap(y, x) equal to LinearSequenceMap(x, y, name)."""
  w = LINEAR[name]
  other = LINEAR_BY_FACTORS.get((w.snd, w.fst))
  return other.name if other else None

# Every name a line's `fn` field can hold, in a fixed order (model vocabulary).
ALL_NAMES = tuple(FUNCTIONS) + tuple(LINEAR) + tuple(COMPARISONS)
assert len(set(ALL_NAMES)) == len(ALL_NAMES), "registry names must be unique"


def normalize_lambda(source: str) -> str:
  """Canonical spelling of a lambda's source, used to look functions up."""
  import ast
  return ast.unparse(ast.parse(source.strip(), mode="eval"))


BY_SOURCE = {normalize_lambda(f.source): f for f in FUNCTIONS.values()}


# --- what a line's `fn` stands for: a name from above, a table (tables.py) or a formula (formulas.py) ----


def written(fn: str) -> tables.Table | formulas.Formula | None:
  """The function `fn` writes out (a table or a formula lambda); None for a name or other text.

  The one place that tells the two apart: printing, parsing, validation and
  reports ask this instead of each trying tables and formulas in turn.
  """
  table = tables.parse(fn)
  return table if table is not None else formulas.parse(fn)


def written_lambda(node) -> tables.Table | formulas.Formula:
  """The table or formula a parsed lambda (`ast.Lambda`) writes out; ValueError saying why when neither."""
  try:
    return tables.from_lambda(node)
  except tables.TableError as table_error:
    try:
      return formulas.from_lambda(node)
    except formulas.FormulaError as formula_error:
      raise ValueError(f"not a table ({table_error}) nor a formula ({formula_error})") from None


def how_written(fn: str) -> str:
  """"registry" (a name), "table" or "formula": how a line's `fn` gives its function (reports count these)."""
  w = written(fn)
  return "registry" if w is None else "table" if isinstance(w, tables.Table) else "formula"


def canonical(fn: str) -> str:
  """`fn` in its one spelling: a table or formula written canonically, a formula that is a registry
  function's own source text written as that name (the source parser reads it so); anything else unchanged."""
  w = written(fn)
  if w is None:
    return fn
  if isinstance(w, formulas.Formula):
    f = BY_SOURCE.get(w.source)
    if f is not None and f.arity == len(formulas.PARAMS[w.form]):
      return f.name
  return w.source


def function(fn: str) -> Function | tables.Table | formulas.Formula | None:
  """The Map / SequenceMap function `fn` stands for (all three have `.fn` and `.source`), or None."""
  return FUNCTIONS.get(fn) or written(fn)


def predicate(fn: str) -> Callable | None:
  """The Select predicate `fn` stands for, called as tracr calls it: predicate(key, query); or None."""
  return COMPARISONS.get(fn) or written(fn)


def canonical_alias(name: str, values, kind: str) -> str:
  """The first registry Map function that agrees with `name` on every value it receives.

  Lambdas that agree on an SOp's whole value set compile to identical weights
  (e.g. `not x` and `x == 0` on booleans), so the generator always writes the
  first of them, and training targets are relabelled the same way. `name` may
  be a Map table: one that a registry function matches is written as its name.
  """
  return named(name, [values], [kind])


def _values_on(f: Callable, domains: list[list], arity: int):
  """f's outputs on the product of the domains (a tuple), or None where f does not apply."""
  try:
    if arity == 1:
      return tuple(f(v) for v in domains[0])
    return tuple(f(a, b) for a in domains[0] for b in domains[1])
  except Exception:  # a function that does not apply to these values
    return None


def _typed_values(values: tuple | None) -> tuple | None:
  return None if values is None else tuple((isinstance(v, bool), v) for v in values)


def named(fn: str, domains: list[list], kinds: list[str], search_formulas: bool = False,
          encoding: str | None = None) -> str:
  """The first registry entry that agrees with `fn` on its arguments' values, else a formula or `fn`.

  domains: the values each argument takes (keys' then queries' for a predicate);
  kinds: their value kinds. A Map or SequenceMap table, function or formula becomes the
  first registry function of its arity accepting those kinds; a predicate the first
  Comparison. Agreement is on the product of the domains, which is where tracr
  evaluates the function when it compiles (so the weights are the same).
  With `search_formulas`, a table no registry entry matches becomes the shortest
  formula that does (formulas.search, within its budget), else it stays a table.
  Off by default: the generator and training targets name tables by the registry
  alone (formulas are how the decompiler writes what it read, read_functions.py).
  encoding: the line's, where naming should follow how tracr compiles it (as the
  decompiler names what it reads; None: names agree on values alone, 1 == True).
  A categorical SOp's outputs must also agree in type (True is not 1 in its value
  set, e.g. the output encoder's labels). A numerical SOp's function of 0s and 1s,
  written as a table or formula, is first tried as a predicate (tracr compiles
  True as 1), so `x < 0` of a numerical SOp reads as that, not as a table of its
  fractions.
  """
  domains = [sorted(d, key=float) if all(not isinstance(v, str) for v in d) else list(d) for d in domains]
  w = written(fn)
  select = fn in COMPARISONS or (w is not None and w.form == tables.SELECT)
  if select:
    target = _values_on(predicate(fn), domains, 2)  # type: ignore[arg-type]
    match = next((c for c in COMPARISONS if _values_on(COMPARISONS[c], domains, 2) == target), None)
    if target is None or match is not None:
      return match if target is not None and match is not None else fn
  else:
    f = function(fn)
    if f is None:
      return fn
    candidates = MAP_FUNCTIONS if len(domains) == 1 else SEQUENCE_MAP_FUNCTIONS
    target = _values_on(f.fn, domains, len(domains))
    if target is None:
      return fn
    if (encoding == "numerical" and w is not None and set(target) <= {0, 1}
        and not all(isinstance(v, bool) for v in target)):
      form = tables.MAP if len(domains) == 1 else tables.SEQUENCE_MAP
      as_predicate = tables.from_function(form, lambda *a: bool(f.fn(*a)), *domains)
      name = named(as_predicate.source, domains, kinds, search_formulas, encoding="categorical")
      if how_written(name) != "table":
        return name
    key = _typed_values if encoding == "categorical" else (lambda values: values)
    for c in candidates:
      if all(k in c.accepts for k in kinds) and key(_values_on(c.fn, domains, len(domains))) == key(target):
        return c.name
  if search_formulas and isinstance(w, tables.Table):
    found = formulas.search(w.form, domains, target)
    if found is not None:
      return canonical(found.source)
  return fn
