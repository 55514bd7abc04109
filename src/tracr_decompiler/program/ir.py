"""A RASP program as typed lines, one SOp per line, and its canonical form.

Example:
    v1 = map categorical inc (tokens)
    v2 = aggregate numerical LEQ (indices, indices, v1)   # keys, queries, values

`Line.args` holds variable names: "tokens", "indices" or an earlier line's `out`.
`Line.fn` is a registry name, a table function's canonical lambda
(program/tables.py), e.g. `map categorical lambda x: {0: 3, 1: 1}[x] (tokens)`,
or a formula's (program/formulas.py), e.g. `map categorical lambda x: (x + 3) % 5 (tokens)`.

Argument order per op:
    map                  (x,)
    sequence_map         (fst, snd)
    linear_sequence_map  (fst, snd)
    aggregate            (keys, queries, values)
    selector_width       (keys, queries)
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.program import ops, registry

INPUTS = ("tokens", "indices")


class ProgramError(TracrDecompilerError, ValueError):
  """A program that is not well formed (unknown name, bad arity, cycle...)."""


@dataclasses.dataclass(frozen=True)
class Line:
  op: str  # One of ops.KINDS.
  encoding: str  # "categorical" or "numerical": the encoding of `out`.
  fn: str  # A registry name valid for `op`, or a table or formula (registry.written) of the op's table form.
  args: tuple[str, ...]
  out: str

  def __post_init__(self):
    # Tables and formulas are compared by their text, so they are always written canonically.
    if self.fn.startswith("lambda"):
      object.__setattr__(self, "fn", registry.canonical(self.fn))

  def validate(self) -> None:
    spec = ops.SPECS.get(self.op)
    if spec is None:
      raise ProgramError(f"unknown op {self.op!r}")
    if self.encoding not in ops.ENCODINGS:
      raise ProgramError(f"unknown encoding {self.encoding!r}")
    if not spec.accepts(self.fn):
      raise ProgramError(f"unknown {self.op} function {self.fn!r}")
    if len(self.args) != spec.arity:
      raise ProgramError(f"{self.op} takes {spec.arity} arguments, got {len(self.args)}")
    if self.out in INPUTS:
      raise ProgramError(f"cannot assign to {self.out!r}")


@dataclasses.dataclass(frozen=True)
class Program:
  """Lines in a valid execution order; the last line is the program's output."""
  lines: tuple[Line, ...]

  def __post_init__(self):
    if not self.lines:
      raise ProgramError("a program needs at least one line")
    defined = set(INPUTS)
    for line in self.lines:
      line.validate()
      for arg in line.args:
        if arg not in defined:
          raise ProgramError(f"{line.out} uses {arg!r} before it is defined")
      if line.out in defined:
        raise ProgramError(f"{line.out!r} is assigned twice")
      defined.add(line.out)

  @property
  def output(self) -> Line:
    return self.lines[-1]

  def by_name(self) -> dict[str, Line]:
    return {line.out: line for line in self.lines}

  def __len__(self) -> int:
    return len(self.lines)

  def used(self) -> set[str]:
    """Names that reach the output (the output included)."""
    lines, seen, stack = self.by_name(), set(), [self.output.out]
    while stack:
      name = stack.pop()
      if name in seen or name in INPUTS:
        continue
      seen.add(name)
      stack.extend(lines[name].args)
    return seen

  def depths(self) -> dict[str, int]:
    """Longest path from the inputs: the layer order tracr allocates by."""
    depth = {name: 0 for name in INPUTS}
    for line in self.lines:
      depth[line.out] = 1 + max(depth[a] for a in line.args)
    return depth


def _structure_keys(program: Program) -> dict[str, str]:
  """A naming-free description of each line: its whole expression tree."""
  key = {name: name for name in INPUTS}
  for line in program.lines:
    key[line.out] = f"{line.op}:{line.encoding}:{line.fn}({','.join(key[a] for a in line.args)})"
  return key


def order_symmetric(program: Program, rank) -> Program:
  """Puts the arguments of order-free lines in `rank` order (names and line order kept).

  SequenceMaps of symmetric functions, and LinearSequenceMaps whose swapped
  factors are in the registry, compute the same thing with their arguments
  swapped (the compiled weights differ only by a permutation of hidden units),
  so a canonical form must not depend on that order. `rank(name)` gives the
  sort key of an argument.
  """
  lines = []
  for line in program.lines:
    a = line.args
    if len(a) == 2 and rank(a[1]) < rank(a[0]):
      fn = ops.SPECS[line.op].swapped(line)
      if fn is not None:
        line = dataclasses.replace(line, args=(a[1], a[0]), fn=fn)
    lines.append(line)
  return Program(tuple(lines))


def _symmetric_normal_form(program: Program) -> Program:
  """order_symmetric by structure keys, computed bottom-up so keys see ordered children."""
  out = Program(program.lines)
  for _ in range(len(program.lines)):  # keys of deeper lines settle after their inputs'
    key = _structure_keys(out)
    nxt = order_symmetric(out, lambda name: key[name])
    if nxt == out:
      break
    out = nxt
  return out


def canonicalize(program: Program) -> Program:
  """Renames variables v1..vn and orders lines by (depth, structure).

  Lines are sorted by their longest-path depth (the layer tracr puts them in),
  ties broken by their expression tree, so programs that differ only in naming
  or in the order of independent lines give the same result; arguments of
  order-free functions are sorted too (order_symmetric). Lines that do not
  reach the output are dropped.
  """
  program = _symmetric_normal_form(program)
  used = program.used()
  depth, key = program.depths(), _structure_keys(program)
  order = sorted((line for line in program.lines if line.out in used),
                 key=lambda line: (depth[line.out], key[line.out]))
  rename = {name: name for name in INPUTS}
  rename.update({line.out: f"v{i}" for i, line in enumerate(order, 1)})
  # The output line has the strictly largest depth, so it stays last.
  return Program(tuple(
      dataclasses.replace(line, args=tuple(rename[a] for a in line.args), out=rename[line.out])
      for line in order))


def make_program(lines: Iterable[Line]) -> Program:
  return Program(tuple(lines))
