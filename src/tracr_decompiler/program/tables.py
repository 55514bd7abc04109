"""Table functions: a Map, SequenceMap or Select predicate given by its values.

A line's `fn` is a registry name (registry.py) or a table function. A table
function's `fn` is its canonical lambda, the same text the source printer
writes, so a Line stays a plain hashable string record and rows, targets and
reports that carry `fn` need no second form:

  map           lambda x: {0: 3, 1: 1, 2: 3}[x]
  sequence_map  lambda x, y: {(0, 0): 1, (0, 1): 0}[x, y]
  select        lambda k, q: (k, q) in {(0, 1), (1, 2)}     the (key, query) pairs that hold

Canonical: entries sorted by value (bools, then numbers, then strings),
integral floats written as ints (tracr's value sets hold 1 and 1.0 as one
value), parameters named x / x, y / k, q. So two tables are equal exactly when
their `fn` strings are, and canonical forms and exact match (ir.py) compare
them like registry names. A table is read back by walking its syntax tree:
literals only, never `eval`.

Keys and values are ints, floats, bools or strings. A lookup table is partial:
a value outside its keys fails (tracr's compiler applies the function to its
input's whole value set, so the table must cover it); a predicate table is
false outside its pairs.

Fractional keys are looked up rounded (`{-0.666667: 1, 0.5: 0}[round(x, 6)]`):
tracr's value sets and its evaluator can compute one number two ways (1/3 - 1
is -0.6666666666666667, 0 - 2/3 is -0.6666666666666666), and a compiled
numerical MLP, which thresholds between values, does not tell them apart;
an exact float key would. The places are the fewest from ROUND_DIGITS that
keep the keys apart and none of them near a rounding tie, so a value a few
ulps off any key still rounds to that key.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
from typing import Callable

MAP, SEQUENCE_MAP, SELECT = "map", "sequence_map", "select"
_PARAMS = {MAP: ("x",), SEQUENCE_MAP: ("x", "y"), SELECT: ("k", "q")}
_TYPE_RANK = {bool: 0, int: 1, float: 1, str: 2}
ROUND_DIGITS = range(6, 11)  # decimal places fractional keys may be rounded to, fewest first
_TIE_MARGIN = 1e-3  # how far (in units of the last place) a key must stay from a rounding tie


class TableError(ValueError):
  """Text that is not a table function (the message says why)."""


def scalar(v):
  """A table value in canonical form; TableError for anything but a finite int, float, bool or str."""
  if isinstance(v, bool) or isinstance(v, str):
    return v
  if isinstance(v, int):
    return v
  if isinstance(v, float):
    if not math.isfinite(v):
      raise TableError(f"{v!r} is not a finite number")
    return int(v) if v.is_integer() else v
  raise TableError(f"{v!r} is not an int, float, bool or string")


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def round_digits(keys) -> int | None:
  """The decimal places one argument's keys are looked up at; None: exactly (no fractional keys)."""
  keys = set(keys)
  if not any(isinstance(k, float) for k in keys) or not all(_is_number(k) for k in keys):
    return None
  for d in ROUND_DIGITS:
    if (len({round(k, d) for k in keys}) == len(keys)
        and all(abs(abs(k) * 10**d % 1 - 0.5) > _TIE_MARGIN for k in keys)):
      return d
  return None


def _rounded(v, digits: int | None):
  return scalar(round(v, digits)) if digits is not None and _is_number(v) else v


def sort_key(v):
  """Order of values in a table: bools, then numbers, then strings (tracr sorts blocks within one type)."""
  if isinstance(v, tuple):
    return tuple(sort_key(x) for x in v)
  return (_TYPE_RANK[type(v)], v)


@dataclasses.dataclass(frozen=True)
class Table:
  """A table function. Build it with `lookup` or `predicate`, which put it in canonical form."""
  form: str  # MAP, SEQUENCE_MAP or SELECT
  entries: tuple  # MAP / SEQUENCE_MAP: ((key, value), ...) by key; SELECT: the true (key, query) pairs
  digits: tuple = ()  # MAP / SEQUENCE_MAP: per argument, the places it is rounded to before lookup (or None)

  @functools.cached_property
  def _lookup(self) -> dict | frozenset:
    return frozenset(self.entries) if self.form == SELECT else dict(self.entries)

  def __call__(self, *args):
    """The function: f(x), f(x, y) or predicate(key, query), as tracr calls it."""
    if self.form == SELECT:
      return tuple(args) in self._lookup
    if self.digits:
      args = tuple(_rounded(a, d) for a, d in zip(args, self.digits))
    key = args[0] if self.form == MAP else tuple(args)
    try:
      return self._lookup[key]
    except KeyError:
      raise KeyError(f"{key!r} is not in the table") from None

  @property
  def fn(self) -> Callable:  # registry.Function's interface: `.fn` and `.source`
    return self

  @property
  def source(self) -> str:
    """The canonical lambda, which is also the line's `fn`."""
    if self.form == SELECT:
      pairs = ", ".join(repr(p) for p in self.entries)
      return f"lambda k, q: (k, q) in {{{pairs}}}" if pairs else "lambda k, q: (k, q) in set()"
    body = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.entries) + "}"
    names = _PARAMS[self.form]
    index = ", ".join(n if d is None else f"round({n}, {d})" for n, d in zip(names, self.digits or (None,) * 2))
    return f"lambda {', '.join(names)}: {body}[{index}]"

  def __str__(self) -> str:
    return self.source


def lookup(table: dict, digits: tuple | None = None) -> Table:
  """A Map table ({x: f(x)}) or, when every key is a pair, a SequenceMap table ({(x, y): f(x, y)}).

  digits: per argument, the places its fractional keys are rounded to (None: exact); by default
  the fewest that work (round_digits)."""
  if not table:
    raise TableError("a lookup table needs at least one entry")
  pairs = all(isinstance(k, tuple) for k in table)
  if pairs and not all(len(k) == 2 for k in table):
    raise TableError("SequenceMap table keys must be pairs")
  keys = [tuple(scalar(x) for x in k) if pairs else (scalar(k),) for k in table]
  if digits is None:
    digits = tuple(round_digits(k[a] for k in keys) for a in range(2 if pairs else 1))
  keys = [tuple(_rounded(x, d) for x, d in zip(k, digits)) for k in keys]
  entries = [(k if pairs else k[0], scalar(v)) for k, v in zip(keys, table.values())]
  if len(dict(entries)) != len(entries):
    raise TableError("two keys of the table are the same value")
  return Table(SEQUENCE_MAP if pairs else MAP, tuple(sorted(entries, key=lambda e: sort_key(e[0]))),
               digits if any(d is not None for d in digits) else ())


def predicate(pairs) -> Table:
  """A Select predicate's table: the (key, query) pairs for which it holds."""
  entries = {(scalar(k), scalar(q)) for k, q in pairs}
  return Table(SELECT, tuple(sorted(entries, key=sort_key)))


def from_function(form: str, fn: Callable, *domains) -> Table:
  """The table of `fn` on its arguments' values (the product of `domains`)."""
  if form == MAP:
    return lookup({x: fn(x) for x in domains[0]})
  if form == SEQUENCE_MAP:
    return lookup({(x, y): fn(x, y) for x in domains[0] for y in domains[1]})
  return predicate((k, q) for k in domains[0] for q in domains[1] if fn(k, q))


# ---------------------------------------------------------------------------
# Reading a table back from source (an `ast.Lambda`), without executing it


def _literal(node: ast.AST):
  if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
    return scalar(node.value)
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
    v = node.operand.value
    if isinstance(v, (int, float)) and not isinstance(v, bool):
      return scalar(-v)
  if isinstance(node, ast.Tuple) and len(node.elts) == 2:
    return tuple(_literal(e) for e in node.elts)
  raise TableError(f"`{ast.unparse(node)}` is not a literal")


def _is_name(node: ast.AST, name: str) -> bool:
  return isinstance(node, ast.Name) and node.id == name


def _is_args(node: ast.AST, names: list[str]) -> bool:
  """`x` for one parameter; `(x, y)` or `x, y` for two."""
  if len(names) == 1:
    return _is_name(node, names[0])
  return isinstance(node, ast.Tuple) and len(node.elts) == 2 and all(map(_is_name, node.elts, names))


def _index_digits(node: ast.AST, names: list[str]) -> tuple | None:
  """A lookup's subscript: per parameter, None for `x` and d for `round(x, d)`; None if it is neither."""
  elts = node.elts if isinstance(node, ast.Tuple) and len(names) == 2 else [node]
  if len(elts) != len(names):
    return None
  digits: list[int | None] = []
  for e, name in zip(elts, names):
    if _is_name(e, name):
      digits.append(None)
    elif (isinstance(e, ast.Call) and _is_name(e.func, "round") and not e.keywords and len(e.args) == 2
          and _is_name(e.args[0], name) and isinstance(e.args[1], ast.Constant)
          and type(e.args[1].value) is int and e.args[1].value in ROUND_DIGITS):
      digits.append(e.args[1].value)
    else:
      return None
  return tuple(digits)


def from_lambda(node: ast.Lambda) -> Table:
  """The table a lambda in one of the three table shapes describes (any parameter names)."""
  a = node.args
  names = [p.arg for p in a.args]
  if a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults or len(names) not in (1, 2):
    raise TableError("a table lambda takes one or two plain parameters")
  body = node.body
  digits = _index_digits(body.slice, names) if isinstance(body, ast.Subscript) else None
  if isinstance(body, ast.Subscript) and isinstance(body.value, ast.Dict) and digits is not None:
    keys = [k for k in body.value.keys if k is not None]
    if len(keys) != len(body.value.keys):
      raise TableError("`**` in a table")
    # Written digits are kept; plain `[x]` over fractional keys gets the default rounding, as `lookup` gives.
    table = lookup({_literal(k): _literal(v) for k, v in zip(keys, body.value.values)},
                   digits if any(d is not None for d in digits) else None)
    if len(table.entries) != len(body.value.keys):
      raise TableError("two keys of the table are the same value")
    if table.form != (MAP if len(names) == 1 else SEQUENCE_MAP):
      raise TableError("the table's keys do not match the lambda's parameters")
    return table
  if (isinstance(body, ast.Compare) and len(names) == 2 and len(body.ops) == 1 and isinstance(body.ops[0], ast.In)
      and _is_args(body.left, names)):
    pairs = body.comparators[0]
    if isinstance(pairs, ast.Set):
      items = [_literal(e) for e in pairs.elts]
      if not all(isinstance(p, tuple) for p in items):
        raise TableError("a predicate table holds (key, query) pairs")
      return predicate(items)
    if isinstance(pairs, ast.Call) and _is_name(pairs.func, "set") and not pairs.args and not pairs.keywords:
      return predicate(())
  raise TableError(f"`{ast.unparse(node)[:80]}` is not a table function")


def lambda_of(fn: str) -> ast.Lambda | None:
  """The lambda a line's `fn` spells, parsed and never run; None for a registry name or other text.

  Tables and formulas (formulas.py) both start here."""
  if not fn.startswith("lambda"):
    return None
  try:
    node = ast.parse(fn, mode="eval").body
  except (SyntaxError, ValueError, RecursionError, MemoryError):
    return None
  return node if isinstance(node, ast.Lambda) else None


@functools.lru_cache(maxsize=4096)
def parse(fn: str) -> Table | None:
  """The table a line's `fn` holds; None for a registry name or text that is not a table lambda."""
  node = lambda_of(fn)
  try:
    return from_lambda(node) if node is not None else None
  except (ValueError, RecursionError, MemoryError):  # TableError is a ValueError
    return None


def canonical(fn: str) -> str:
  """`fn` with a table written canonically; anything else unchanged."""
  table = parse(fn)
  return table.source if table is not None else fn
