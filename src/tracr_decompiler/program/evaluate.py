"""A vectorised RASP evaluator for our programs, matching tracr's evaluator.

Inputs are grouped by length; an SOp's values on a group are a float array
[N, L] with NaN for None. Values that are not numbers (string tokens, say) are
held as codes into a `labels` table, so functions and predicates always see
the real values. With `causal=True` every selector is masked to keys at or
before the query, which is what tracr's causally masked models compute. Python functions run once per distinct value (or
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
  data: np.ndarray  # [N, L] float, NaN = None; codes into `labels` when labels is set
  kind: str  # registry.INT / BOOL / NUM
  labels: tuple | None = None  # the real values when they are not numbers


def is_number(v) -> bool:
  """Values the float encoding holds exactly as themselves (bools are labels: True != 1 for users)."""
  return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def value_key(v):
  """Equality key for output values: numbers by value, bools and strings apart from numbers."""
  if isinstance(v, (bool, np.bool_)):
    return ("bool", bool(v))
  if is_number(v):
    return ("num", float(v))
  return (type(v).__name__, v)


def all_inputs(vocab, max_seq_len: int, min_len: int = 1) -> list[tuple]:
  """Every input sequence (without BOS) of length min_len..max_seq_len."""
  vocab = sorted(vocab)
  return [seq for n in range(min_len, max_seq_len + 1) for seq in itertools.product(vocab, repeat=n)]


def sample_inputs(vocab, max_seq_len: int, n: int, rng: np.random.Generator) -> list[tuple]:
  """`n` random inputs, lengths uniform in 1..max_seq_len."""
  vocab = sorted(vocab)
  lengths = rng.integers(1, max_seq_len + 1, size=n)
  return [tuple(vocab[i] for i in rng.integers(0, len(vocab), size=k)) for k in lengths]


def py_value(v: float, kind: str, labels: tuple | None = None):
  """The Python value tracr's evaluator would hold for our float encoding."""
  if labels is not None:
    return labels[int(v)]
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
      results = [fn(*(py_value(v, c.kind, c.labels) for v, c in zip(row, columns))) for row in args]
    except Exception as e:  # a user function failing on a value
      raise EvaluationError(f"function failed: {e}") from None
    if any(r is None for r in results):
      raise EvaluationError("function returned None")
    if not all(is_number(r) or isinstance(r, (bool, np.bool_)) for r in results):
      if encoding == "numerical":
        raise EvaluationError("a numerical function returned a value that is not a number")
      labels = tuple(sorted(set(results), key=lambda v: (type(v).__name__, v)))
      codes = {value_key(v): i for i, v in enumerate(labels)}
      out[valid] = np.array([codes[value_key(r)] for r in results], dtype=float)[inverse.reshape(-1)]
      return Values(out.reshape(shape), registry.INT, labels)
    kind = _kind_of(results, encoding)
    out[valid] = np.asarray(results, dtype=float)[inverse.reshape(-1)]
  return Values(out.reshape(shape), kind)


def selector(keys: Values, queries: Values, comparison: str, causal: bool = False) -> np.ndarray:
  if np.isnan(keys.data).any() or np.isnan(queries.data).any():
    raise EvaluationError("Select on an SOp that holds None")
  # selector[n, q, k] = predicate(key[n, k], query[n, q])
  if keys.labels is None and queries.labels is None:
    sel = _COMPARE[comparison](keys.data[:, None, :], queries.data[:, :, None])
  else:
    sel = _labelled_selector(keys, queries, comparison)
  if causal:  # a causal model's query sees only keys at or before it
    length = sel.shape[-1]
    sel = sel & np.tril(np.ones((length, length), dtype=bool))
  return sel


def _labelled_selector(keys: Values, queries: Values, comparison: str) -> np.ndarray:
  """The predicate on real values (strings, bools), once per distinct (key, query) pair."""
  ku, ki = np.unique(keys.data, return_inverse=True)
  qu, qi = np.unique(queries.data, return_inverse=True)
  fn = _COMPARE[comparison]
  try:
    table = np.array([[bool(fn(np.asarray(py_value(k, keys.kind, keys.labels), dtype=object),
                               np.asarray(py_value(q, queries.kind, queries.labels), dtype=object)))
                       for k in ku] for q in qu], dtype=bool).reshape(len(qu), len(ku))
  except TypeError as e:  # e.g. "<" between a string and a number: tracr's evaluator raises too
    raise EvaluationError(f"Select cannot compare these values: {e}") from None
  ki, qi = ki.reshape(keys.data.shape), qi.reshape(queries.data.shape)
  return table[qi[:, :, None], ki[:, None, :]]


def _aggregate(selector: np.ndarray, values: Values, encoding: str) -> Values:
  if values.labels is not None and encoding == "numerical":
    raise EvaluationError("numerical Aggregate of values that are not numbers")
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
  if values.labels is not None:
    if not np.all(np.isnan(out) | (out == np.round(out))):
      raise EvaluationError("categorical Aggregate over different values")
    return Values(out, kind, values.labels)
  return Values(out, kind)


def eval_line(line: ir.Line, env: dict[str, Values], causal: bool = False) -> Values:
  """One line's values from its arguments' values."""
  a = [env[x] for x in line.args]
  if line.op in ("map", "sequence_map"):
    return _apply(registry.FUNCTIONS[line.fn].fn, a, line.encoding)
  if line.op == "linear_sequence_map":
    if any(x.labels is not None for x in a):
      raise EvaluationError("LinearSequenceMap of values that are not numbers")
    w = registry.LINEAR[line.fn]
    return Values(w.fst * a[0].data + w.snd * a[1].data, registry.NUM)
  sel = selector(a[0], a[1], line.fn, causal)
  if line.op == "aggregate":
    return _aggregate(sel, a[2], line.encoding)
  return Values(sel.sum(-1).astype(float), registry.INT)


def input_values(tokens: np.ndarray, labels: tuple | None = None) -> dict[str, Values]:
  """Values of `tokens` and `indices` on a batch [N, L] of equal-length inputs."""
  n, length = tokens.shape
  indices = np.broadcast_to(np.arange(length, dtype=float), (n, length)).copy()
  return {"tokens": Values(tokens.astype(float), registry.INT, labels), "indices": Values(indices, registry.INT)}


def evaluate_batch(program: ir.Program, tokens: np.ndarray, all_lines: bool = False, *,
                   labels: tuple | None = None, causal: bool = False):
  """Evaluates on a batch of equal-length inputs [N, L].

  tokens: the token values (numeric vocab), or codes into `labels` (any vocab).
  causal: evaluate as a causally masked model computes (selectors see keys <= query).
  Returns the output Values, or every line's Values (dict) with all_lines=True.
  Raises EvaluationError where tracr's evaluator would raise.
  """
  env = input_values(tokens, labels)
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
