"""Formula functions: a Map, SequenceMap or Select predicate written as a short expression.

Between a registry name (registry.py) and a table (tables.py), a function read
from the weights is named by the shortest expression of the small grammar below
that agrees with its table on every value of its input domain(s) (issue 10,
item 3). A formula's `fn` is its canonical lambda (`ast.unparse` spelling), the
same text the source printer writes:

  map           lambda x: (x + 3) % 5
  sequence_map  lambda x, y: max(x, y) - 1
  select        lambda k, q: q == k + 1

Grammar, as `parse` accepts it (parameters named x / x, y / k, q):
  terms   the parameters; int and bool constants
  int     a + b, a - b, a * b, -a, abs(a), min(a, b, ...), max(a, b, ...),
          a // c, a % c (c a positive int constant)
  bool    a == b, a != b, a < b, a <= b, a > b, a >= b (chains too),
          a and b, a or b, not a
  either  a if cond else b
Anything else (attributes, subscripts, other calls or names, floats, strings)
is not a formula. Text is at most MAX_TEXT characters and MAX_DEPTH levels
deep. A formula is read by walking its syntax tree into a tree of closures:
never `eval` or `compile`.

What `search` enumerates, smallest first (size = syntax-tree nodes):
  map / sequence_map  parameters, constants CONSTANTS (0..10, then -1..-5) and
                      True/False; +, -, *, min, max, unary -, abs; // and %
                      by 2..10;
                      the six comparisons; and, or, not; `a if c else b` as the
                      whole formula only, up to IF_MAX_SIZE nodes; at most
                      MAX_SIZE nodes in all
  select              `k OP t` or `q OP t`, t one of: the other parameter, it
                      plus or minus 1..5, a constant; and / or of such atoms
Ints and bools are kept apart (no arithmetic on bools; `==`, `!=`, `and`,
`or`, `not` on bools): tracr's value sets tell 1 from True, so a table of bools
takes a bool-valued formula and a table of ints an int-valued one. Only
domains and outputs of ints and bools are searched (integral floats count as
ints, as in tables.py; a domain may also hold fractions, the values of a
numerical SOp, which the int operations and comparisons take as they are); a
subexpression must be defined on every domain point.
Of expressions with the same outputs on the domain only the first is kept
(observational equivalence), so the first match is a shortest formula.
The budget is MAX_WORK units of work (a candidate costs its domain points plus
a fixed overhead), not a clock, so a table gets the same formula (or none) on
every machine.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import itertools
import operator
from typing import Any, Callable, Iterator

from tracr_decompiler.program import tables

MAX_TEXT = 300  # characters of a formula's text
MAX_DEPTH = 24  # syntax-tree levels (parsing; a search result is far smaller)
CONSTANTS = (*range(0, 11), *range(-1, -6, -1))  # int constants the search writes, tried in this order
DIVISORS = range(2, 11)  # // and % by these (1 is trivial, 0 undefined)
SHIFTS = range(1, 6)  # select: `q + c`, `q - c`
MAX_SIZE = 9  # map / sequence_map: syntax-tree nodes
IF_MAX_SIZE = 7  # `a if c else b` only this small: it matches almost anything
PREDICATE_MAX_SIZE = 11  # two atoms of five nodes joined by and / or
MAX_WORK = 400_000  # candidates x (domain points + _CANDIDATE_COST) per search: at most ~60 ms on one core
_CANDIDATE_COST = 8  # building and keeping one candidate costs about as much as 8 point evaluations

_PARAMS = {("x",): tables.MAP, ("x", "y"): tables.SEQUENCE_MAP, ("k", "q"): tables.SELECT}
PARAMS = {form: params for params, form in _PARAMS.items()}
INT, BOOL = "int", "bool"  # the search's two sorts


class FormulaError(ValueError):
  """Text that is not a formula of the grammar (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Formula:
  """A formula function. Build it with `parse` or `from_lambda`, which check the grammar."""
  form: str  # tables.MAP, SEQUENCE_MAP or SELECT
  source: str  # the canonical lambda, which is also the line's `fn`
  evaluate: Callable[[tuple], Any] = dataclasses.field(compare=False, repr=False)

  def __call__(self, *args):
    """f(x), f(x, y) or predicate(key, query), as tracr calls it."""
    if len(args) != len(PARAMS[self.form]):
      raise TypeError(f"{self.source} takes {len(PARAMS[self.form])} arguments, got {len(args)}")
    return self.evaluate(args)

  @property
  def fn(self) -> Callable:  # registry.Function's interface: `.fn` and `.source`
    return self

  def __str__(self) -> str:
    return self.source


# ---------------------------------------------------------------------------
# Reading a formula: check each node against the grammar and build a closure for it

_Eval = Callable[[tuple], Any]  # the argument values, in parameter order -> the node's value
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_CALLS: dict[str, tuple[Callable, int, int]] = {"abs": (abs, 1, 1), "min": (min, 2, 8), "max": (max, 2, 8)}


def _name(node: ast.Name, params: tuple[str, ...], depth: int) -> _Eval:
  if node.id not in params or not isinstance(node.ctx, ast.Load):
    raise FormulaError(f"`{node.id}` is not a parameter")
  i = params.index(node.id)
  return lambda env: env[i]


def _constant(node: ast.Constant, params: tuple[str, ...], depth: int) -> _Eval:
  if type(node.value) not in (int, bool):
    raise FormulaError(f"{node.value!r} is not an int or bool constant")
  v = node.value
  return lambda env: v


def _unary(node: ast.UnaryOp, params: tuple[str, ...], depth: int) -> _Eval:
  a = _build(node.operand, params, depth)
  if isinstance(node.op, ast.USub):
    return lambda env: -a(env)
  if isinstance(node.op, ast.Not):
    return lambda env: not a(env)
  raise FormulaError(f"unary {type(node.op).__name__} is not in the grammar")


def _binary(node: ast.BinOp, params: tuple[str, ...], depth: int) -> _Eval:
  f = _BINARY.get(type(node.op))
  if f is None:
    raise FormulaError(f"{type(node.op).__name__} is not in the grammar")
  if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and not (
      isinstance(node.right, ast.Constant) and type(node.right.value) is int and node.right.value > 0):
    raise FormulaError("// and % take a positive int constant on the right")
  a, b = _build(node.left, params, depth), _build(node.right, params, depth)
  return lambda env: f(a(env), b(env))


def _compare(node: ast.Compare, params: tuple[str, ...], depth: int) -> _Eval:
  fs = [_COMPARE.get(type(op)) for op in node.ops]
  if None in fs:
    raise FormulaError("only ==, !=, <, <=, >, >= compare")
  terms = [_build(t, params, depth) for t in [node.left, *node.comparators]]
  steps = list(zip(fs, terms[1:]))
  first = terms[0]

  def compare(env: tuple) -> bool:  # a chain, short-circuited as Python does
    left = first(env)
    for f, term in steps:
      right = term(env)
      if not f(left, right):  # type: ignore[misc]
        return False
      left = right
    return True
  return compare


def _boolean(node: ast.BoolOp, params: tuple[str, ...], depth: int) -> _Eval:
  parts = [_build(v, params, depth) for v in node.values]
  stop_when = not isinstance(node.op, ast.And)  # `and` stops at a falsy operand, `or` at a truthy one

  def boolean(env: tuple):  # Python's value: the operand it stopped at
    v = None
    for part in parts:
      v = part(env)
      if bool(v) == stop_when:
        return v
    return v
  return boolean


def _if(node: ast.IfExp, params: tuple[str, ...], depth: int) -> _Eval:
  c, a, b = (_build(n, params, depth) for n in (node.test, node.body, node.orelse))
  return lambda env: a(env) if c(env) else b(env)


def _call(node: ast.Call, params: tuple[str, ...], depth: int) -> _Eval:
  name = node.func.id if isinstance(node.func, ast.Name) else None
  if name not in _CALLS or node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
    raise FormulaError("only abs(a), min(a, b, ...) and max(a, b, ...) are called")
  f, least, most = _CALLS[name]
  if not least <= len(node.args) <= most:
    raise FormulaError(f"{name} takes {least} to {most} arguments")
  args = [_build(a, params, depth) for a in node.args]
  if len(args) == 1:
    (a,) = args
    return lambda env: f(a(env))
  return lambda env: f(*(g(env) for g in args))


_BUILDERS: dict[type, Callable[..., _Eval]] = {
    ast.Name: _name, ast.Constant: _constant, ast.UnaryOp: _unary, ast.BinOp: _binary,
    ast.Compare: _compare, ast.BoolOp: _boolean, ast.IfExp: _if, ast.Call: _call}


def _build(node: ast.AST, params: tuple[str, ...], depth: int) -> _Eval:
  if depth >= MAX_DEPTH:
    raise FormulaError(f"a formula nests at most {MAX_DEPTH} levels")
  builder = _BUILDERS.get(type(node))
  if builder is None:
    raise FormulaError(f"`{ast.unparse(node)[:40]}` is not in the formula grammar")
  return builder(node, params, depth + 1)


def from_lambda(node: ast.Lambda) -> Formula:
  """The formula a lambda of the grammar describes; FormulaError for anything else."""
  a = node.args
  params = tuple(p.arg for p in a.args)
  if a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults or params not in _PARAMS:
    raise FormulaError("a formula's parameters are x, (x, y) or (k, q)")
  evaluate = _build(node.body, params, 1)
  text = ast.unparse(node)
  if len(text) > MAX_TEXT:
    raise FormulaError(f"a formula is at most {MAX_TEXT} characters")
  return Formula(_PARAMS[params], text, evaluate)


@functools.lru_cache(maxsize=4096)
def parse(fn: str) -> Formula | None:
  """The formula a line's `fn` holds; None for a registry name, a table or other text."""
  node = tables.lambda_of(fn) if len(fn) <= MAX_TEXT else None
  try:
    return from_lambda(node) if node is not None else None
  except (ValueError, RecursionError, MemoryError):  # FormulaError is a ValueError
    return None


def swapped(formula: Formula) -> Formula:
  """The SequenceMap formula g with g(y, x) == formula(x, y): x and y renamed into each other."""
  tree = ast.parse(formula.source, mode="eval").body
  for node in ast.walk(tree):
    if isinstance(node, ast.Name) and node.id in ("x", "y"):
      node.id = "y" if node.id == "x" else "x"
  assert isinstance(tree, ast.Lambda)
  tree.args.args = [ast.arg("x"), ast.arg("y")]
  return from_lambda(tree)


# ---------------------------------------------------------------------------
# Searching: expressions bottom-up by size, one per distinct vector of outputs


@dataclasses.dataclass(frozen=True)
class _Expr:
  node: ast.expr
  values: tuple  # on every domain point, in the points' order
  var: bool  # mentions a parameter (expressions of constants alone are not built)


class _Found(Exception):
  def __init__(self, expr: _Expr):
    self.expr = expr


class _OutOfBudget(Exception):
  pass


def _op(op: ast.AST | str, left: ast.expr, right: ast.expr) -> ast.expr:
  if isinstance(op, ast.cmpop):
    return ast.Compare(left, [op], [right])
  if isinstance(op, ast.boolop):
    return ast.BoolOp(op, [left, right])
  if isinstance(op, ast.operator):
    return ast.BinOp(left, op, right)
  assert isinstance(op, str)  # min / max: `op` is the name
  return ast.Call(ast.Name(op, ast.Load()), [left, right], [])


# (op node or call name, function on two values, commutative): the binary rules, in the order tried
_INT_TO_INT = ((ast.Add(), operator.add, True), (ast.Sub(), operator.sub, False), (ast.Mult(), operator.mul, True),
               ("min", min, True), ("max", max, True))
_INT_TO_BOOL = ((ast.Eq(), operator.eq, True), (ast.NotEq(), operator.ne, True), (ast.Lt(), operator.lt, False),
                (ast.LtE(), operator.le, False), (ast.Gt(), operator.gt, False), (ast.GtE(), operator.ge, False))
_BOOL_TO_BOOL = ((ast.And(), operator.and_, True), (ast.Or(), operator.or_, True),  # & and | on bools: and, or
                 (ast.Eq(), operator.eq, True), (ast.NotEq(), operator.ne, True))


def _constant_of(node: ast.AST) -> int | None:
  return node.value if isinstance(node, ast.Constant) and type(node.value) is int else None


def _redundant(op, a: _Expr, b: _Expr) -> bool:
  """Spellings the search skips for a shorter or plainer one of the same size.

  `x + -2` is `x - 2`, `(x + 1) - 3` is `x - 2`, `x + 1 + y` is `x + y + 1`, `x * 1` is `x`,
  `x + x` is `x * 2`.
  """
  if isinstance(op, ast.Add) and a is b:
    return True  # `x + x` is `x * 2`
  c = _constant_of(b.node)
  left = a.node if isinstance(a.node, ast.BinOp) else None
  shifted = left is not None and isinstance(left.op, (ast.Add, ast.Sub)) and _constant_of(left.right) is not None
  if isinstance(op, (ast.Add, ast.Sub)):
    return shifted or (c is not None and c <= 0)  # a constant term goes last, once: `x * 2 + 1`
  if isinstance(op, ast.Mult) and c is not None:
    return c in (-1, 0, 1) or (left is not None and isinstance(left.op, ast.Mult)
                               and _constant_of(left.right) is not None)
  return False


class _Search:
  """The pools of expressions found so far, by sort and size, and the target they are checked against."""

  def __init__(self, points: list[tuple], target: tuple, sort: str):
    self.n, self.target, self.sort = len(points), target, sort
    self.pools: dict[str, dict[int, list[_Expr]]] = {INT: {}, BOOL: {}}
    self.seen: set[tuple[str, tuple]] = set()
    self.work = 0

  def spend(self) -> None:
    self.work += self.n + _CANDIDATE_COST
    if self.work > MAX_WORK:
      raise _OutOfBudget()

  def offer(self, sort: str, size: int, node: ast.expr, values: tuple, var: bool) -> None:
    """Keeps the expression when no earlier one has its values; stops the search at the target."""
    if (sort, values) in self.seen:
      return
    self.seen.add((sort, values))
    expr = _Expr(node, values, var)
    self.pools[sort].setdefault(size, []).append(expr)
    if sort == self.sort and values == self.target:
      raise _Found(expr)

  def check(self, sort: str, node: ast.expr, values: tuple) -> None:
    """Stops the search when the expression is the target; it is not kept as a part of larger ones."""
    if sort == self.sort and values == self.target:
      raise _Found(_Expr(node, values, True))

  def needs(self, sort: str, size: int) -> bool:
    """Whether expressions of this sort and size can still be the target or a part of it:
    an int one inside a comparison (2 more nodes), a bool one as an int `if`'s condition."""
    if sort == self.sort:
      return True
    return size <= MAX_SIZE - 2 if sort == INT else size <= IF_MAX_SIZE - 3

  def pool(self, sort: str, size: int) -> list[_Expr]:
    return self.pools[sort].get(size, [])

  def pairs(self, sort: str, size: int, commutative: bool) -> Iterator[tuple[_Expr, _Expr]]:
    """Operand pairs of total size `size` - 1, one of them with a parameter; a commutative op
    takes its larger operand first (`x * 2 + 1`) and each unordered pair once."""
    for s1 in range(size - 2, 0, -1):  # the larger operand on the left first: `x * 3 - 2`, not `-2 - x * -3`
      s2 = size - 1 - s1
      if commutative and s1 < s2:
        continue
      left, right = self.pool(sort, s1), self.pool(sort, s2)
      for i, a in enumerate(left):
        for b in right[i if commutative and s1 == s2 else 0:]:
          if a.var or b.var:
            yield a, b

  def binary(self, size: int, sort: str, out: str, rules, left_var: bool = False) -> None:
    for op, f, commutative in rules:
      for a, b in self.pairs(sort, size, commutative):
        if (left_var and not a.var) or _redundant(op, a, b):
          continue
        self.spend()
        self.offer(out, size, _op(op, a.node, b.node), tuple(map(f, a.values, b.values)), True)


def _terms(s: _Search, points: list[tuple], params: tuple[str, ...], sorts: list[str], bools: bool) -> None:
  for i, (p, sort) in enumerate(zip(params, sorts)):
    s.spend()
    s.offer(sort, 1, ast.Name(p, ast.Load()), tuple(pt[i] for pt in points), True)
  for c in CONSTANTS:
    s.offer(INT, 1, ast.Constant(c), (c,) * s.n, False)
  for b in (False, True) if bools else ():
    s.offer(BOOL, 1, ast.Constant(b), (b,) * s.n, False)


def _grow_function(s: _Search, size: int) -> None:
  """Every Map / SequenceMap expression of `size` nodes (the grammar's rules, in a fixed order)."""
  if s.needs(INT, size):
    for a in s.pool(INT, size - 1):
      if a.var and not isinstance(a.node, ast.UnaryOp):  # --x is x
        s.spend()
        s.offer(INT, size, ast.UnaryOp(ast.USub(), a.node), tuple(-v for v in a.values), True)
      if a.var:
        s.spend()
        s.offer(INT, size, ast.Call(ast.Name("abs", ast.Load()), [a.node], []), tuple(map(abs, a.values)), True)
    for a in s.pool(INT, size - 2):
      if a.var:
        for c in DIVISORS:
          for op, f in ((ast.FloorDiv(), operator.floordiv), (ast.Mod(), operator.mod)):
            s.spend()
            s.offer(INT, size, ast.BinOp(a.node, op, ast.Constant(c)), tuple(f(v, c) for v in a.values), True)
    s.binary(size, INT, INT, _INT_TO_INT)
  if s.needs(BOOL, size):
    for a in s.pool(BOOL, size - 1):
      if a.var:
        s.spend()
        s.offer(BOOL, size, ast.UnaryOp(ast.Not(), a.node), tuple(not v for v in a.values), True)
    s.binary(size, INT, BOOL, _INT_TO_BOOL, left_var=True)  # `3 < x` is `x > 3`
    s.binary(size, BOOL, BOOL, _BOOL_TO_BOOL)
  if size <= IF_MAX_SIZE:  # only the whole formula: conditionals of constants would swamp the pools
    for sc, sa in itertools.product(range(1, size - 2), repeat=2):
      sb = size - 1 - sc - sa
      if sb < 1:
        continue
      for cond, a, b in itertools.product(s.pool(BOOL, sc), s.pool(s.sort, sa), s.pool(s.sort, sb)):
        if cond.var:
          s.spend()
          s.check(s.sort, ast.IfExp(cond.node, a.node, b.node),
                  tuple(x if t else y for t, x, y in zip(cond.values, a.values, b.values)))


def _grow_predicate(s: _Search, size: int) -> None:
  """Every Select predicate expression of `size` nodes: atoms of 3 or 5 nodes, then and / or of them."""
  variables = [v for v in s.pool(INT, 1) if v.var]
  if size == 3:
    for c in SHIFTS:  # `q + c`, `q - c` as int terms of size 3 (the operands atoms compare with)
      for v in variables:
        for shift, g in ((ast.Add(), operator.add), (ast.Sub(), operator.sub)):
          s.spend()
          s.offer(INT, 3, ast.BinOp(v.node, shift, ast.Constant(c)), tuple(g(x, c) for x in v.values), True)
  if size in (3, 5):
    for op, f, _ in _INT_TO_BOOL:
      # `k == q` (a parameter, then what it is compared with), but `q == k + 1` (the shifted one first)
      pairs = ([(a, b) for a in variables for b in s.pool(INT, 1)] if size == 3
               else [(a, b) for b in s.pool(INT, 3) for a in variables])
      for a, b in pairs:
        if b.node is not a.node:
          s.spend()
          s.offer(BOOL, size, _op(op, a.node, b.node), tuple(map(f, a.values, b.values)), True)
  s.binary(size, BOOL, BOOL, _BOOL_TO_BOOL[:2])


def _typed(v) -> tuple[bool, Any]:
  """A value keyed with its sort: True == 1 in Python, but not in tracr's value sets."""
  return (isinstance(v, bool), v)


def _sort_of(values, fractions: bool = False) -> str | None:
  """INT or BOOL when every value is one of that sort (integral floats count as ints); None otherwise.

  fractions: fractional numbers count as INT too (a domain: `x < 0` over a numerical SOp's values)."""
  try:
    values = [tables.scalar(v) for v in values]
  except tables.TableError:
    return None
  if values and all(isinstance(v, bool) for v in values):
    return BOOL
  if all(isinstance(v, (int, float) if fractions else int) and not isinstance(v, bool) for v in values):
    return INT
  return None


def search(form: str, domains: list[list], outputs: tuple) -> Formula | None:
  """The shortest formula of the grammar equal to `outputs` on the product of `domains`, or None.

  form: tables.MAP, SEQUENCE_MAP or SELECT; domains: each argument's values (keys'
  then queries' for a predicate); outputs: the function on every point of their
  product, first argument slowest (a predicate's are bools). None when a value is
  not an int or bool, or no formula is found within MAX_WORK.
  """
  if (len(domains) != len(PARAMS[form]) or any(_sort_of(d, fractions=True) is None for d in domains)
      or _sort_of(outputs) is None):
    return None
  typed_domains = tuple(tuple(_typed(tables.scalar(v)) for v in d) for d in domains)
  return _search(form, typed_domains, tuple(_typed(tables.scalar(v)) for v in outputs))


@functools.lru_cache(maxsize=1024)  # the same table is named once per candidate and node matching
def _search(form: str, domains: tuple[tuple, ...], outputs: tuple) -> Formula | None:
  plain = [[v for _, v in d] for d in domains]
  points = list(itertools.product(*plain))
  target = tuple(v for _, v in outputs)
  if len(points) != len(target) or not points:
    return None
  sorts = [BOOL if d[0][0] else INT for d in domains]
  if form == tables.SELECT and BOOL in sorts:
    return None  # the predicate grammar compares numbers
  s = _Search(points, target, BOOL if outputs[0][0] else INT)
  params = PARAMS[form]
  try:
    _terms(s, points, params, sorts, bools=form != tables.SELECT)
    for size in range(2, (PREDICATE_MAX_SIZE if form == tables.SELECT else MAX_SIZE) + 1):
      if form == tables.SELECT:
        _grow_predicate(s, size)
      else:
        _grow_function(s, size)
  except _OutOfBudget:
    return None
  except _Found as found:
    lam = ast.Lambda(ast.arguments([], [ast.arg(p) for p in params], None, [], [], None, []), found.expr.node)
    formula = parse(ast.unparse(ast.fix_missing_locations(lam)))
    # The text is read back as any line's `fn` will be: it must give the same values, sorts included.
    if formula is not None and all(_typed(formula(*p)) == t for p, t in zip(points, outputs)):
      return formula
  return None
