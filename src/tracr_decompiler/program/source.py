"""Program <-> Python RASP source in tracr's own API.

`to_source` prints code that runs as-is with tracr. `parse_source` reads such
code back by walking its syntax tree with `ast`: the text is never executed,
and every lambda must be one of the registry's functions, a table function
(a literal lookup or truth table, tables.py) or a formula of the small
expression grammar (formulas.py), read by walking its tree.
"""

from __future__ import annotations

import ast
from typing import NoReturn

from tracr_decompiler import limits
from tracr_decompiler.program import formulas, ir, ops, registry, tables

HEADER = "from tracr.rasp import rasp\n\n"
_ENCODING_WRAPPERS = {"categorical", "numerical"}


def _arg(name: str) -> str:
  return f"rasp.{name}" if name in ir.INPUTS else name


def line_to_source(line: ir.Line) -> str:
  expr = ops.SPECS[line.op].expression(line, [_arg(x) for x in line.args])
  return f"{line.out} = rasp.{line.encoding}({expr})"


def to_source(program: ir.Program, header: bool = True) -> str:
  body = "\n".join(line_to_source(line) for line in program.lines)
  return (HEADER if header else "") + body + f"\nprogram = {program.output.out}\n"


# ---------------------------------------------------------------------------
# Parsing


class _Parser:
  """Turns assignments `name = rasp....` into Lines, tracking Select variables."""

  def __init__(self) -> None:
    self.lines: list[ir.Line] = []
    self.selects: dict[str, tuple[str, str, str]] = {}
    self.sops: set[str] = set(ir.INPUTS)
    self.output: str | None = None

  def fail(self, node: ast.AST, message: str) -> NoReturn:
    raise ir.ProgramError(f"line {getattr(node, 'lineno', '?')}: {message}")

  def statement(self, node: ast.stmt):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      return
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
      return  # docstring
    if not (isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)):
      self.fail(node, "only assignments `name = rasp....` are supported")
    target, value = node.targets[0].id, node.value
    if isinstance(value, ast.Name):  # `program = v5`
      if value.id not in self.sops:
        self.fail(node, f"unknown SOp {value.id!r}")
      if value.id in ir.INPUTS:
        self.fail(node, f"the output is the input `{value.id}` itself; name an SOp the program computes")
      self.output = value.id
      return
    if self._call_name(value) == "Select":
      self.selects[target] = self.select(value)
      return
    self.lines.append(self.sop(value, target))
    self.sops.add(target)

  def _call_name(self, node: ast.AST) -> str | None:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "rasp"):
      return node.func.attr
    return None

  def ref(self, node: ast.AST) -> str:
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id == "rasp" and node.attr in ir.INPUTS):
      return node.attr
    if isinstance(node, ast.Name) and node.id in self.sops:
      return node.id
    self.fail(node, f"expected an SOp, got `{ast.unparse(node)}`")

  def number(self, node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
        and not isinstance(node.value, bool):
      return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
      return -self.number(node.operand)
    self.fail(node, f"expected a number, got `{ast.unparse(node)}`")

  def function(self, node: ast.AST, arity: int) -> str:
    if not isinstance(node, ast.Lambda):
      self.fail(node, "expected a lambda")
    fn = registry.BY_SOURCE.get(ast.unparse(node))
    if fn is not None and fn.arity == arity:
      return fn.name
    written = self._written(node, f"unknown function `{ast.unparse(node)[:80]}` (not in the registry)")
    if written.form != (tables.MAP if arity == 1 else tables.SEQUENCE_MAP):
      self.fail(node, f"expected a function of {arity} argument(s), got `{ast.unparse(node)[:80]}`")
    return registry.canonical(written.source)

  def _written(self, node: ast.Lambda, message: str) -> tables.Table | formulas.Formula:
    try:
      return registry.written_lambda(node)
    except ValueError as e:
      self.fail(node, f"{message}: {e}")

  def select(self, node: ast.AST) -> tuple[str, str, str]:
    if isinstance(node, ast.Name) and node.id in self.selects:
      return self.selects[node.id]
    if not isinstance(node, ast.Call) or self._call_name(node) != "Select" or len(node.args) != 3 or node.keywords:
      self.fail(node, "expected rasp.Select(keys, queries, rasp.Comparison.X)")
    keys, queries, cmp = node.args
    if isinstance(cmp, ast.Lambda):  # a predicate(key, query) given by its truth table or a formula
      written = self._written(cmp, "unknown predicate")
      if written.form != tables.SELECT:
        self.fail(cmp, f"a predicate is `lambda k, q: (k, q) in {{...}}` or a formula of k and q, "
                       f"got `{ast.unparse(cmp)[:80]}`")
      return self.ref(keys), self.ref(queries), written.source
    if not (isinstance(cmp, ast.Attribute) and cmp.attr in registry.COMPARISONS
            and ast.unparse(cmp.value) == "rasp.Comparison"):
      self.fail(cmp, f"unknown comparison `{ast.unparse(cmp)}`")
    return self.ref(keys), self.ref(queries), cmp.attr

  def sop(self, node: ast.AST, out: str, encoding: str | None = None) -> ir.Line:
    name = self._call_name(node)
    if name in _ENCODING_WRAPPERS and isinstance(node, ast.Call):  # a name implies a Call
      if len(node.args) != 1 or node.keywords or encoding is not None:
        self.fail(node, f"rasp.{name} takes one SOp")
      return self.sop(node.args[0], out, name)
    spec = ops.BY_RASP_NAME.get(name or "")
    if spec is not None and isinstance(node, ast.Call) and all(k.arg for k in node.keywords):
      parsed = spec.parse(self, node, list(node.args), {str(k.arg): k.value for k in node.keywords})
      if parsed is not None:
        fn, args = parsed
        return ir.Line(spec.kind, encoding or "categorical", fn, args, out)  # tracr's default: categorical
    self.fail(node, f"unsupported expression `{ast.unparse(node)[:80]}`")


def _depth(tree: ast.AST) -> int:
  """Nesting depth of the syntax tree, found without recursion (deep trees overflow the stack)."""
  deepest, stack = 0, [(tree, 1)]
  while stack:
    node, depth = stack.pop()
    deepest = max(deepest, depth)
    if deepest > limits.MAX_SOURCE_DEPTH:
      break
    stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
  return deepest


def parse_source(text: str) -> ir.Program:
  """Parses RASP source (as printed by `to_source`) without executing it.

  Sources are bounded (limits.MAX_SOURCE_BYTES, MAX_SOURCE_LINES, MAX_SOURCE_DEPTH)
  so that a hostile file is refused in one line rather than exhausting the
  parser's stack or memory. A leading UTF-8 byte-order mark is ignored.

  Raises:
    ir.ProgramError: on syntax errors, unknown functions, unsupported code or sources over the limits.
  """
  text = text.removeprefix("\ufeff")
  if len(text.encode("utf-8", "surrogatepass")) > limits.MAX_SOURCE_BYTES:
    raise ir.ProgramError(f"source is larger than {limits.MAX_SOURCE_BYTES} bytes")
  if text.count("\n") > limits.MAX_SOURCE_LINES:
    raise ir.ProgramError(f"source has more than {limits.MAX_SOURCE_LINES} lines")
  try:
    tree = ast.parse(text)
  except (SyntaxError, ValueError) as e:  # ValueError: null bytes
    raise ir.ProgramError(f"not valid Python: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  except (RecursionError, MemoryError):  # CPython's parser on very deep expressions
    raise ir.ProgramError(f"source nests deeper than {limits.MAX_SOURCE_DEPTH} levels") from None
  if _depth(tree) > limits.MAX_SOURCE_DEPTH:
    raise ir.ProgramError(f"source nests deeper than {limits.MAX_SOURCE_DEPTH} levels")
  parser = _Parser()
  for node in tree.body:
    parser.statement(node)
  if not parser.lines:
    raise ir.ProgramError("no RASP operations found")
  lines = parser.lines
  if parser.output is not None:
    # Lines after the designated output cannot reach it.
    lines = lines[:[line.out for line in lines].index(parser.output) + 1]
  return ir.Program(tuple(lines))
