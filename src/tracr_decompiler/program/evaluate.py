"""A vectorised RASP evaluator for our programs, matching tracr's evaluator.

Inputs are grouped by length; an SOp's values on a group are a float array
[N, L] with NaN for None. Values that are not numbers (string tokens, say) are
held as codes into a `labels` table, so functions and predicates always see
the real values. With `causal=True` every selector is masked to keys at or
before the query, which is what tracr's causally masked models compute.
Python functions run once per distinct value (or pair), so evaluating a program on all 3,905 inputs of vocab 5 / length <= 5
takes milliseconds instead of the seconds tracr's per-input evaluator needs.
`program.evaluate_test.py` checks agreement with tracr's evaluator.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from tracr_decompiler.program import ir, ops, registry, tables, values
# The value primitives live in values.py; these names are part of this module's API.
from tracr_decompiler.program.values import (EvaluationError, Values, is_number, py_value, selector,
                                             value_key)

__all__ = ["EvaluationError", "Values", "is_number", "py_value", "selector", "value_key", "all_inputs",
           "eval_line", "input_values", "evaluate_batch", "evaluate", "token_labels",
           "same_value", "same_outputs", "with_canonical_aliases", "group_by_length", "length_batches",
           "padded_batch"]


def all_inputs(vocab, max_seq_len: int, min_len: int = 1) -> list[tuple]:
  """Every input sequence (without BOS) of length min_len..max_seq_len."""
  vocab = sorted(vocab)
  return [seq for n in range(min_len, max_seq_len + 1) for seq in itertools.product(vocab, repeat=n)]


def eval_line(line: ir.Line, env: dict[str, Values], causal: bool = False) -> Values:
  """One line's values from its arguments' values (the op table says how)."""
  return ops.evaluate_line(line, [env[x] for x in line.args], causal)


def input_values(tokens: np.ndarray, labels: tuple | None = None,
                 valid: np.ndarray | None = None) -> dict[str, Values]:
  """Values of `tokens` and `indices` on a batch [N, L] of equal-length inputs (or padded: `valid`)."""
  n, length = tokens.shape
  indices = np.broadcast_to(np.arange(length, dtype=float), (n, length)).copy()
  return {"tokens": values.padded(Values(tokens.astype(float), registry.INT, labels), valid),
          "indices": values.padded(Values(indices, registry.INT), valid)}


def padded_batch(inputs: list[tuple], labels: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Inputs of any lengths as one batch: (tokens [N, max length] floats, valid [N, max length] bool).

  tokens: the token values, or codes into `labels` (token_labels) for any vocabulary.
  Programs evaluate on it in one pass instead of one per length (pass `valid`
  to evaluate_batch); padding positions are not outputs.
  """
  width = max(len(seq) for seq in inputs)
  valid = np.arange(width)[None, :] < np.array([len(seq) for seq in inputs])[:, None]
  code = {value_key(t): i for i, t in enumerate(labels)} if labels is not None else None
  flat = (t for seq in inputs for t in seq)
  tokens = np.zeros((len(inputs), width))
  tokens[valid] = np.fromiter(flat if code is None else (code[value_key(t)] for t in flat), dtype=float)
  return np.where(valid, tokens, tokens[:, :1]), valid  # padding: a token that occurs (values.padded's rule)


def evaluate_batch(program: ir.Program, tokens: np.ndarray, all_lines: bool = False, *,
                   labels: tuple | None = None, causal: bool = False, valid: np.ndarray | None = None):
  """Evaluates on a batch of equal-length inputs [N, L].

  tokens: the token values (numeric vocab), or codes into `labels` (any vocab).
  causal: evaluate as a causally masked model computes (selectors see keys <= query).
  valid: for a padded batch of several lengths (padded_batch), the positions that exist.
  Returns the output Values, or every line's Values (dict) with all_lines=True.
  Raises EvaluationError where tracr's evaluator would raise.
  """
  env = input_values(tokens, labels, valid)
  for line in program.lines:
    env[line.out] = eval_line(line, env, causal)
  return env if all_lines else env[program.output.out]


def _to_python(row: np.ndarray, kind: str, labels: tuple | None = None) -> list:
  return [None if np.isnan(v) else py_value(v, kind, labels) for v in row]


def token_labels(inputs: list[tuple]) -> tuple | None:
  """None when every token is a number (held as itself); else the code table for the tokens."""
  tokens = {t for seq in inputs for t in seq}
  if all(is_number(t) for t in tokens):
    return None
  return tuple(sorted(tokens, key=lambda v: (type(v).__name__, v)))


def evaluate(program: ir.Program, inputs: list[tuple], causal: bool = False) -> list[list]:
  """Outputs of `program` on each input (lists of Python values, None for None)."""
  outputs: list = [None] * len(inputs)
  labels = token_labels(inputs)
  code = {value_key(t): i for i, t in enumerate(labels)} if labels is not None else None
  for idx in group_by_length(inputs).values():
    rows = [inputs[i] for i in idx]
    tokens = (np.array(rows, dtype=float) if code is None
              else np.array([[code[value_key(t)] for t in r] for r in rows], dtype=float))
    result = evaluate_batch(program, tokens, labels=labels, causal=causal)
    for i, row in zip(idx, result.data):
      outputs[i] = _to_python(row, result.kind, result.labels)
  return outputs


def same_value(a, b, tol: float = 1e-3) -> bool:
  """One output position: None only equals None; numbers within `tol`."""
  if a is None or b is None:
    return a is None and b is None
  if isinstance(a, str) or isinstance(b, str):
    return a == b
  return abs(float(a) - float(b)) <= tol


def same_outputs(xs: list[list], ys: list[list], tol: float = 1e-3) -> bool:
  """Whether two programs' outputs agree on every input and position."""
  return len(xs) == len(ys) and all(
      len(x) == len(y) and all(same_value(a, b, tol) for a, b in zip(x, y)) for x, y in zip(xs, ys))


def with_canonical_aliases(program: ir.Program, inputs: list[tuple], causal: bool = False,
                           search_formulas: bool = False) -> ir.Program:
  """Map functions replaced by their first registry alias on the values they receive.

  See registry.canonical_alias. Programs from the generator already are in
  this form; older data and user programs may not be. Table functions of any
  op (Map, SequenceMap, Select predicate) that a registry entry matches on the
  values their arguments receive are written as that entry (registry.named):
  this is where a table becomes a name. With search_formulas, functions are
  named as read_functions names what it reads: a table or formula that no entry
  matches becomes the shortest formula that does, by the line's encoding
  (registry.named).
  """
  labels = token_labels(inputs)  # any vocabulary: letters are codes into labels
  tokens, valid = padded_batch(inputs, labels)
  env = evaluate_batch(program, tokens, all_lines=True, labels=labels, valid=valid, causal=causal)

  def seen(name: str) -> tuple[list, str]:
    v = env[name]
    codes = np.unique(v.data[valid])
    return [py_value(x, v.kind, v.labels) for x in codes[~np.isnan(codes)]], v.kind

  lines = []
  for line in program.lines:
    if line.op == "map" or registry.written(line.fn) is not None:
      domains, kinds = zip(*(seen(a) for a in line.args[:1 if line.op == "map" else 2]))
      line = dataclasses.replace(line, fn=registry.named(line.fn, list(domains), list(kinds), search_formulas,
                                                          line.encoding if search_formulas else None))
    lines.append(line)
  return ir.Program(tuple(lines))


def group_by_length(inputs: list[tuple]) -> dict[int, list[int]]:
  """Input length -> positions of the inputs of that length, lengths ascending."""
  by_length: dict[int, list[int]] = {}
  for i, seq in enumerate(inputs):
    by_length.setdefault(len(seq), []).append(i)
  return dict(sorted(by_length.items()))


def length_batches(inputs: list[tuple]) -> dict[int, np.ndarray]:
  """Input length -> tokens [N, L] as floats (raises ValueError/TypeError for non-numeric tokens)."""
  return {n: np.array([inputs[i] for i in idx], dtype=float) for n, idx in group_by_length(inputs).items()}
