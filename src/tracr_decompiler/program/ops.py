"""The op table: one entry per RASP op kind, and the only place op kinds differ.

Each `OpSpec` holds what is particular to one kind of line: its arguments'
roles, the `fn` names it accepts and the form of table or formula function it
takes instead of a name (tables.py, formulas.py), how tracr builds it, how it is evaluated,
printed and parsed, and which generator kinds draw it. Validation (ir.py),
printing and parsing (source.py), tracr conversion (to_rasp.py), evaluation
(evaluate.py), the sampler's dispatch and the model's vocabularies all look
the entry up instead of branching on the kind.

How to add an op kind or a function class (one or two files):
  1. registry.py: the new function names, if any (the single source of every
     vocabulary).
  2. this file: an OpSpec in SPECS, with its roles, names, builder, evaluator,
     printer, parser pattern and generator kinds.
Nothing else changes: the decoder's vocabularies (encoding/programs.py) derive
from KINDS and the registry, and the generator draws a kind that has no
proposer of its own with any arguments, function and encoding the entry allows
(generation/sampler.py `_propose_any`; rejection sampling keeps what is valid).
A tailored proposer there is an optimisation, not a requirement.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import TYPE_CHECKING, Callable, Literal, NoReturn, Protocol

from tracr.rasp import rasp

from tracr_decompiler import short_axis
from tracr_decompiler.program import formulas, registry, tables, values
from tracr_decompiler.program.values import EvaluationError, Values

if TYPE_CHECKING:  # ir imports this module; the annotation only needs the name
  from tracr_decompiler.program.ir import Line

OpKind = Literal["map", "sequence_map", "linear_sequence_map", "aggregate", "selector_width"]
Encoding = Literal["categorical", "numerical"]
ENCODINGS: tuple[Encoding, ...] = ("categorical", "numerical")


class ParseContext(Protocol):
  """What an op's parser pattern may ask of the source parser (source.py)."""

  def ref(self, node: ast.AST) -> str: ...
  def function(self, node: ast.AST, arity: int) -> str: ...
  def select(self, node: ast.AST) -> tuple[str, str, str]: ...
  def number(self, node: ast.AST) -> float: ...
  def fail(self, node: ast.AST, message: str) -> NoReturn: ...


MakeSelect = Callable[[rasp.SOp, rasp.SOp, str], rasp.Select]  # keys, queries, comparison -> labelled Select
ParseResult = tuple[str, tuple[str, ...]]  # (fn name, argument names)


@dataclasses.dataclass(frozen=True)
class OpSpec:
  kind: OpKind
  roles: tuple[str, ...]  # argument roles, in `Line.args` order
  rasp_name: str  # tracr's constructor, e.g. "Map"; the parser's pattern
  names: tuple[str, ...]  # valid `fn` values
  build: Callable[["Line", list[rasp.SOp], MakeSelect], rasp.SOp]
  evaluate: Callable[["Line", list[Values], bool], Values]  # (line, argument values, causal)
  expression: Callable[["Line", list[str]], str]  # source text, arguments already printed
  parse: Callable[[ParseContext, ast.Call, list[ast.expr], dict[str, ast.expr]], ParseResult | None]
  generator_kinds: tuple[str, ...]  # GenerationConfig.op_weights keys that draw this op
  # The form of table or formula (tables.MAP / SEQUENCE_MAP / SELECT) `fn` may hold
  # instead of a registry name; None: names only. Tables and formulas are never in
  # `names`, so the model's fn vocabulary (the registry's names) does not depend on them.
  table: str | None = None
  # The `fn` that computes the same with the two arguments swapped, or None: the
  # canonical form sorts such arguments (ir.order_symmetric).
  swapped: Callable[["Line"], str | None] = lambda line: None

  @property
  def arity(self) -> int:
    return len(self.roles)

  def accepts(self, fn: str) -> bool:
    if fn in self.names:
      return True
    w = registry.written(fn)
    return w is not None and w.form == self.table and registry.canonical(fn) == fn


# --- map / sequence_map: a registry function, a lookup table or a formula, applied elementwise ----------------------


def _function(line: "Line"):
  f = registry.function(line.fn)
  assert f is not None, "Line.validate admits only functions the registry resolves"
  return f


def _eval_function(line: "Line", args: list[Values], causal: bool) -> Values:
  return values.apply(_function(line).fn, args, line.encoding)


def _parse_map(p: ParseContext, node: ast.Call, args: list[ast.expr], kw: dict[str, ast.expr]) -> ParseResult | None:
  if len(args) == 2 and set(kw) <= {"simplify"}:
    return p.function(args[0], 1), (p.ref(args[1]),)
  return None


def _parse_sequence_map(p: ParseContext, node: ast.Call, args: list[ast.expr],
                        kw: dict[str, ast.expr]) -> ParseResult | None:
  if len(args) == 3 and not kw:
    return p.function(args[0], 2), (p.ref(args[1]), p.ref(args[2]))
  return None


# --- linear_sequence_map: fixed weights from the registry --------------------------------------------


def _eval_linear(line: "Line", args: list[Values], causal: bool) -> Values:
  if any(x.labels is not None for x in args):
    raise EvaluationError("LinearSequenceMap of values that are not numbers")
  w = registry.LINEAR[line.fn]
  return Values(w.fst * args[0].data + w.snd * args[1].data, registry.NUM)


def _parse_linear(p: ParseContext, node: ast.Call, args: list[ast.expr],
                  kw: dict[str, ast.expr]) -> ParseResult | None:
  if len(args) != 4 or kw:
    return None
  factors = (p.number(args[2]), p.number(args[3]))
  weights = registry.LINEAR_BY_FACTORS.get(factors)
  if weights is None:
    p.fail(node, f"LinearSequenceMap factors {factors} are not in the registry")
  return weights.name, (p.ref(args[0]), p.ref(args[1]))


def _transposed(line: "Line") -> str | None:
  """SequenceMap(f, y, x) for SequenceMap(f, x, y): symmetric names stay, a table is transposed,
  a formula's x and y trade places."""
  if line.fn in registry.SYMMETRIC:
    return line.fn
  w = registry.written(line.fn)
  if isinstance(w, formulas.Formula):
    return registry.canonical(formulas.swapped(w).source)
  if w is None:
    return None
  return tables.lookup({(y, x): v for (x, y), v in w.entries}, w.digits[::-1] or (None, None)).source


# --- aggregate / selector_width: a Select with a registry comparison, a truth table or a formula ------------------


def _select_source(line: "Line", a: list[str]) -> str:
  predicate = f"rasp.Comparison.{line.fn}" if line.fn in registry.COMPARISONS else line.fn
  return f"rasp.Select({a[0]}, {a[1]}, {predicate})"


def _eval_aggregate(line: "Line", args: list[Values], causal: bool) -> Values:
  return values.aggregate(values.selector(args[0], args[1], line.fn, causal), args[2], line.encoding)


def _eval_selector_width(line: "Line", args: list[Values], causal: bool) -> Values:
  return Values(short_axis.total(values.selector(args[0], args[1], line.fn, causal)).astype(float), registry.INT)


def _parse_aggregate(p: ParseContext, node: ast.Call, args: list[ast.expr],
                     kw: dict[str, ast.expr]) -> ParseResult | None:
  if len(args) == 2 and set(kw) <= {"default"}:
    keys, queries, cmp = p.select(args[0])
    return cmp, (keys, queries, p.ref(args[1]))
  return None


def _parse_selector_width(p: ParseContext, node: ast.Call, args: list[ast.expr],
                          kw: dict[str, ast.expr]) -> ParseResult | None:
  if len(args) == 1 and not kw:
    keys, queries, cmp = p.select(args[0])
    return cmp, (keys, queries)
  return None


def _default(line: "Line"):
  return 0 if line.encoding == "numerical" else None


SPECS: dict[str, OpSpec] = {spec.kind: spec for spec in (
    OpSpec("map", ("x",), "Map", tuple(f.name for f in registry.MAP_FUNCTIONS),
           build=lambda line, a, select: rasp.Map(_function(line).fn, a[0], simplify=False),
           evaluate=_eval_function,
           expression=lambda line, a: f"rasp.Map({_function(line).source}, {a[0]}, simplify=False)",
           parse=_parse_map, generator_kinds=("map",), table=tables.MAP),
    OpSpec("sequence_map", ("fst", "snd"), "SequenceMap", tuple(f.name for f in registry.SEQUENCE_MAP_FUNCTIONS),
           build=lambda line, a, select: rasp.SequenceMap(_function(line).fn, a[0], a[1]),
           evaluate=_eval_function,
           expression=lambda line, a: f"rasp.SequenceMap({_function(line).source}, {a[0]}, {a[1]})",
           parse=_parse_sequence_map, generator_kinds=("sequence_map",), table=tables.SEQUENCE_MAP,
           swapped=_transposed),
    OpSpec("linear_sequence_map", ("fst", "snd"), "LinearSequenceMap", tuple(registry.LINEAR),
           build=lambda line, a, select: rasp.LinearSequenceMap(
               a[0], a[1], registry.LINEAR[line.fn].fst, registry.LINEAR[line.fn].snd),
           evaluate=_eval_linear,
           expression=lambda line, a: (f"rasp.LinearSequenceMap({a[0]}, {a[1]}, {registry.LINEAR[line.fn].fst}, "
                                       f"{registry.LINEAR[line.fn].snd})"),
           parse=_parse_linear, generator_kinds=("linear_sequence_map",),
           swapped=lambda line: registry.swapped_linear(line.fn)),
    OpSpec("aggregate", ("keys", "queries", "values"), "Aggregate", tuple(registry.COMPARISONS),
           build=lambda line, a, select: rasp.Aggregate(select(a[0], a[1], line.fn), a[2], default=_default(line)),
           evaluate=_eval_aggregate,
           expression=lambda line, a: f"rasp.Aggregate({_select_source(line, a)}, {a[2]}, default={_default(line)})",
           parse=_parse_aggregate, generator_kinds=("numerical_aggregate", "categorical_aggregate"),
           table=tables.SELECT),
    OpSpec("selector_width", ("keys", "queries"), "SelectorWidth", tuple(registry.COMPARISONS),
           build=lambda line, a, select: rasp.SelectorWidth(select(a[0], a[1], line.fn)),
           evaluate=_eval_selector_width,
           expression=lambda line, a: f"rasp.SelectorWidth({_select_source(line, a)})",
           parse=_parse_selector_width, generator_kinds=("selector_width",), table=tables.SELECT),
)}
KINDS: tuple[str, ...] = tuple(SPECS)  # the model's op vocabulary, in this order
BY_RASP_NAME = {spec.rasp_name: spec for spec in SPECS.values()}
GENERATOR_KINDS = {g: spec.kind for spec in SPECS.values() for g in spec.generator_kinds}


def spec(kind: str) -> OpSpec:
  try:
    return SPECS[kind]
  except KeyError:
    raise KeyError(f"unknown op {kind!r}") from None


def evaluate_line(line: "Line", args: list[Values], causal: bool = False) -> Values:
  return values.padded(SPECS[line.op].evaluate(line, args, causal), args[0].valid)

