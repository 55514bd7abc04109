"""A vectorised RASP evaluator for our programs, matching tracr's evaluator.

Inputs are grouped by length; an SOp's values on a group are a float array
[N, L] with NaN for None. Python functions run once per distinct value (or
pair), so evaluating a program on all 3,905 inputs of vocab 5 / length <= 5
takes milliseconds instead of the seconds tracr's per-input evaluator needs.
`program.evaluate_test.py` checks agreement with tracr's evaluator.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator

import numpy as np

from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.program import ir, registry

_COMPARE = {  # tracr's predicate(key, query)
    "EQ": operator.eq, "LT": operator.lt, "LEQ": operator.le, "GT": operator.gt,
    "GEQ": operator.ge, "NEQ": operator.ne,
    "TRUE": lambda k, q: np.ones(np.broadcast_shapes(k.shape, q.shape), dtype=bool),
    "FALSE": lambda k, q: np.zeros(np.broadcast_shapes(k.shape, q.shape), dtype=bool),
}


class EvaluationError(TracrDecompilerError, ValueError):
  """The program cannot be evaluated on these inputs (tracr's evaluator would raise)."""


@dataclasses.dataclass
class Values:
  data: np.ndarray  # [N, L] float, NaN = None
  kind: str  # registry.INT / BOOL / NUM


def all_inputs(vocab, max_seq_len: int, min_len: int = 1) -> list[tuple]:
  """Every input sequence (without BOS) of length min_len..max_seq_len."""
  vocab = sorted(vocab)
  return [seq for n in range(min_len, max_seq_len + 1) for seq in itertools.product(vocab, repeat=n)]


def sample_inputs(vocab, max_seq_len: int, n: int, rng: np.random.Generator) -> list[tuple]:
  """`n` random inputs, lengths uniform in 1..max_seq_len."""
  vocab = sorted(vocab)
  lengths = rng.integers(1, max_seq_len + 1, size=n)
  return [tuple(vocab[i] for i in rng.integers(0, len(vocab), size=k)) for k in lengths]


def py_value(v: float, kind: str):
  """The Python value tracr's evaluator would hold for our float encoding."""
  if kind == registry.BOOL:
    return bool(v)
  if kind == registry.INT and float(v).is_integer():
    return int(v)
  return float(v)


def _kind_of(outputs, encoding: str) -> str:
  if encoding == "numerical":
    return registry.NUM
  if outputs and all(isinstance(v, (bool, np.bool_)) for v in outputs):
    return registry.BOOL
  return registry.INT


def _apply(fn, columns: list[Values], encoding: str) -> Values:
  """fn applied elementwise, once per distinct tuple of non-None arguments."""
  shape = columns[0].data.shape
  flat = [c.data.ravel() for c in columns]
  valid = ~np.any([np.isnan(f) for f in flat], axis=0)
  out = np.full(flat[0].shape, np.nan)
  kind = registry.NUM if encoding == "numerical" else columns[0].kind
  if valid.any():
    # Encode each argument tuple as one integer, then call fn once per distinct tuple.
    uniq_cols, codes = [], np.zeros(int(valid.sum()), dtype=np.int64)
    for f in flat:
      u, inv = np.unique(f[valid], return_inverse=True)
      uniq_cols.append(u)
      codes = codes * len(u) + inv.reshape(-1)
    keys, inverse = np.unique(codes, return_inverse=True)
    args = []
    for key in keys:
      row = []
      for u in reversed(uniq_cols):
        key, i = divmod(int(key), len(u))
        row.append(u[i])
      args.append(row[::-1])
    try:
      results = [fn(*(py_value(v, c.kind) for v, c in zip(row, columns))) for row in args]
    except Exception as e:  # a user function failing on a value
      raise EvaluationError(f"function failed: {e}") from None
    if any(r is None or isinstance(r, str) for r in results):
      raise EvaluationError("function returned None or a string")
    kind = _kind_of(results, encoding)
    out[valid] = np.asarray(results, dtype=float)[inverse.reshape(-1)]
  return Values(out.reshape(shape), kind)


def selector(keys: Values, queries: Values, comparison: str) -> np.ndarray:
  if np.isnan(keys.data).any() or np.isnan(queries.data).any():
    raise EvaluationError("Select on an SOp that holds None")
  # selector[n, q, k] = predicate(key[n, k], query[n, q])
  return _COMPARE[comparison](keys.data[:, None, :], queries.data[:, :, None])


def _aggregate(selector: np.ndarray, values: Values, encoding: str) -> Values:
  count = selector.sum(-1)  # [N, Lq]
  vals = np.broadcast_to(values.data[:, None, :], selector.shape)
  picked_nan = (selector & np.isnan(vals)).any(-1)
  if (picked_nan & (count > 1)).any():
    raise EvaluationError("Aggregate averages over None")
  total = np.where(selector, np.nan_to_num(vals), 0.0).sum(-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = total / count
  mean = np.where(picked_nan, np.nan, mean)
  default = 0.0 if encoding == "numerical" else np.nan
  out = np.where(count == 0, default, mean)
  kind = registry.NUM if encoding == "numerical" else values.kind
  return Values(out, kind)


def eval_line(line: ir.Line, env: dict[str, Values]) -> Values:
  """One line's values from its arguments' values."""
  a = [env[x] for x in line.args]
  if line.op in ("map", "sequence_map"):
    return _apply(registry.FUNCTIONS[line.fn].fn, a, line.encoding)
  if line.op == "linear_sequence_map":
    w = registry.LINEAR[line.fn]
    return Values(w.fst * a[0].data + w.snd * a[1].data, registry.NUM)
  sel = selector(a[0], a[1], line.fn)
  if line.op == "aggregate":
    return _aggregate(sel, a[2], line.encoding)
  return Values(sel.sum(-1).astype(float), registry.INT)


def input_values(tokens: np.ndarray) -> dict[str, Values]:
  """Values of `tokens` and `indices` on a batch [N, L] of equal-length inputs."""
  n, length = tokens.shape
  indices = np.broadcast_to(np.arange(length, dtype=float), (n, length)).copy()
  return {"tokens": Values(tokens.astype(float), registry.INT), "indices": Values(indices, registry.INT)}


def evaluate_batch(program: ir.Program, tokens: np.ndarray, all_lines: bool = False):
  """Evaluates on a batch of equal-length inputs [N, L] (numeric tokens).

  Returns the output Values, or every line's Values (dict) with all_lines=True.
  Raises EvaluationError where tracr's evaluator would raise.
  """
  env = input_values(tokens)
  for line in program.lines:
    env[line.out] = eval_line(line, env)
  return env if all_lines else env[program.output.out]


def _to_python(row: np.ndarray, kind: str) -> list:
  return [None if np.isnan(v) else py_value(v, kind) for v in row]


def evaluate(program: ir.Program, inputs: list[tuple]) -> list[list]:
  """Outputs of `program` on each input (lists of Python values, None for None)."""
  outputs: list = [None] * len(inputs)
  for idx in group_by_length(inputs).values():
    result = evaluate_batch(program, np.array([inputs[i] for i in idx], dtype=float))
    for i, row in zip(idx, result.data):
      outputs[i] = _to_python(row, result.kind)
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


def with_canonical_aliases(program: ir.Program, inputs: list[tuple]) -> ir.Program:
  """Map functions replaced by their first registry alias on the values they receive.

  See registry.canonical_alias. Programs from the generator already are in
  this form; older data and user programs may not be.
  """
  env: dict[str, list] = {}
  for batch in length_batches(inputs).values():
    values = evaluate_batch(program, batch, all_lines=True)
    for name, v in values.items():
      env.setdefault(name, []).append(v)
  lines = []
  for line in program.lines:
    if line.op == "map":
      vs = env[line.args[0]]
      seen = np.unique(np.concatenate([v.data.ravel() for v in vs]))
      kind = vs[0].kind
      line = dataclasses.replace(line, fn=registry.canonical_alias(
          line.fn, [py_value(x, kind) for x in seen[~np.isnan(seen)]], kind))
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
