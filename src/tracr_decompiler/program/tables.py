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

  @functools.cached_property
  def _lookup(self) -> dict | frozenset:
    return frozenset(self.entries) if self.form == SELECT else dict(self.entries)

  def __call__(self, *args):
    """The function: f(x), f(x, y) or predicate(key, query), as tracr calls it."""
    if self.form == SELECT:
      return tuple(args) in self._lookup
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
    return f"lambda x: {body}[x]" if self.form == MAP else f"lambda x, y: {body}[x, y]"

  def __str__(self) -> str:
    return self.source


def lookup(table: dict) -> Table:
  """A Map table ({x: f(x)}) or, when every key is a pair, a SequenceMap table ({(x, y): f(x, y)})."""
  if not table:
    raise TableError("a lookup table needs at least one entry")
  pairs = all(isinstance(k, tuple) for k in table)
  if pairs and not all(len(k) == 2 for k in table):
    raise TableError("SequenceMap table keys must be pairs")
  canon = lambda k: tuple(scalar(x) for x in k) if pairs else scalar(k)
  entries = [(canon(k), scalar(v)) for k, v in table.items()]
  if len(dict(entries)) != len(entries):
    raise TableError("two keys of the table are the same value")
  return Table(SEQUENCE_MAP if pairs else MAP, tuple(sorted(entries, key=lambda e: sort_key(e[0]))))


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


def from_lambda(node: ast.Lambda) -> Table:
  """The table a lambda in one of the three table shapes describes (any parameter names)."""
  a = node.args
  names = [p.arg for p in a.args]
  if a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults or len(names) not in (1, 2):
    raise TableError("a table lambda takes one or two plain parameters")
  body = node.body
  if isinstance(body, ast.Subscript) and isinstance(body.value, ast.Dict) and _is_args(body.slice, names):
    keys = [k for k in body.value.keys if k is not None]
    if len(keys) != len(body.value.keys):
      raise TableError("`**` in a table")
    table = lookup({_literal(k): _literal(v) for k, v in zip(keys, body.value.values)})
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
