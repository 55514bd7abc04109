"""Values of SOps on batches of inputs, and the primitive operations on them.

An SOp's values on a batch of equal-length inputs are a float array [N, L]
with NaN for None. Values that are not numbers (string tokens, say) are held as
codes into a `labels` table, so functions and predicates always see the real
values. These are the building blocks the op table (ops.py) evaluates lines with.
"""

from __future__ import annotations

import dataclasses
import functools
import operator

import numpy as np

from tracr_decompiler import short_axis
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.program import registry

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
  # [N, L] bool, set when inputs of several lengths are padded into one batch:
  # the positions that exist. Padding holds a copy of position 0's value (see
  # `padded`), so functions there only ever see values that really occur.
  valid: np.ndarray | None = None

  @functools.cached_property
  def unique(self) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values, sorted, one NaN last if any; each element's index into them, flat).

    Cached: the generator evaluates dozens of candidate lines on the same SOps.
    Nothing writes `data` after a Values is made.
    """
    u, inverse = np.unique(self.data, return_inverse=True, equal_nan=True)
    return u, inverse.reshape(-1)

  @functools.cached_property
  def holds_none(self) -> bool:
    """Whether any position holds None (padding copies a real position, so the whole array tells)."""
    return bool(np.isnan(self.data).any())


def padded(values: Values, valid: np.ndarray | None) -> Values:
  """values with `valid` set and every padding position holding its row's position-0 value."""
  if valid is None:
    return values
  return dataclasses.replace(values, data=np.where(valid, values.data, values.data[:, :1]), valid=valid)


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


def apply(fn, columns: list[Values], encoding: str) -> Values:
  """fn applied elementwise, once per distinct tuple of non-None arguments."""
  shape = columns[0].data.shape
  flat = [c.data.ravel() for c in columns]
  valid = ~np.any([np.isnan(f) for f in flat], axis=0)
  out = np.full(flat[0].shape, np.nan)
  kind = registry.NUM if encoding == "numerical" else columns[0].kind
  if valid.any():
    # Encode each argument tuple as one integer, then call fn once per distinct tuple.
    uniq_cols, codes = [], np.zeros(int(valid.sum()), dtype=np.int64)
    for c in columns:
      u, inv = c.unique  # NaN is a code too, but never in a valid tuple
      uniq_cols.append(u)
      codes = codes * len(u) + inv[valid]
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
      # Distinct by value_key: a set would merge 0 and False, which are different labels here.
      labels = tuple(sorted({value_key(v): v for v in results}.values(), key=lambda v: (type(v).__name__, v)))
      label_codes = {value_key(v): i for i, v in enumerate(labels)}
      out[valid] = np.array([label_codes[value_key(r)] for r in results], dtype=float)[inverse.reshape(-1)]
      return Values(out.reshape(shape), registry.INT, labels)
    kind = _kind_of(results, encoding)
    out[valid] = np.asarray(results, dtype=float)[inverse.reshape(-1)]
  return Values(out.reshape(shape), kind)


def selector(keys: Values, queries: Values, comparison: str, causal: bool = False) -> np.ndarray:
  """selector[n, q, k]: whether key k is selected for query q; `comparison` a line's `fn` (name or truth table)."""
  if keys.holds_none or queries.holds_none:
    raise EvaluationError("Select on an SOp that holds None")
  # selector[n, q, k] = predicate(key[n, k], query[n, q])
  if keys.labels is None and queries.labels is None and comparison in _COMPARE:
    sel = _COMPARE[comparison](keys.data[:, None, :], queries.data[:, :, None])
  else:
    sel = _labelled_selector(keys, queries, comparison)
  if causal:  # a causal model's query sees only keys at or before it
    length = sel.shape[-1]
    sel &= np.tril(np.ones((length, length), dtype=bool))  # sel is always a new array
  if keys.valid is not None:  # padding keys do not exist
    sel &= keys.valid[:, None, :]
  return sel


def _labelled_selector(keys: Values, queries: Values, comparison: str) -> np.ndarray:
  """The predicate on real values (strings, bools; any table), once per distinct (key, query) pair."""
  (ku, ki), (qu, qi) = keys.unique, queries.unique  # no NaN: selector() refuses None first
  compare = _COMPARE.get(comparison)
  fn = (lambda k, q: compare(np.asarray(k, dtype=object), np.asarray(q, dtype=object))) if compare \
      else registry.predicate(comparison)
  if fn is None:
    raise EvaluationError(f"unknown predicate {comparison!r}")
  try:
    table = np.array([[bool(fn(py_value(k, keys.kind, keys.labels), py_value(q, queries.kind, queries.labels)))
                       for k in ku] for q in qu], dtype=bool).reshape(len(qu), len(ku))
  except TypeError as e:  # e.g. "<" between a string and a number: tracr's evaluator raises too
    raise EvaluationError(f"Select cannot compare these values: {e}") from None
  ki, qi = ki.reshape(keys.data.shape), qi.reshape(queries.data.shape)
  return table[qi[:, :, None], ki[:, None, :]]


def aggregate(selector: np.ndarray, values: Values, encoding: str) -> Values:
  if values.labels is not None and encoding == "numerical":
    raise EvaluationError("numerical Aggregate of values that are not numbers")
  count = short_axis.total(selector)  # [N, Lq]
  exists = values.valid if values.valid is not None else True  # padding queries do not exist
  data = values.data
  if values.holds_none:
    picked_nan = short_axis.any_(selector & np.isnan(data)[:, None, :])
    if (picked_nan & (count > 1) & exists).any():
      raise EvaluationError("Aggregate averages over None")
    data = np.where(np.isnan(data), 0.0, data)  # None adds nothing (inf stays inf, as in tracr's sum)
  total = short_axis.total(np.where(selector, data[:, None, :], 0.0))
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = total / count
  if values.holds_none:
    mean = np.where(picked_nan, np.nan, mean)
  default = 0.0 if encoding == "numerical" else np.nan
  out = np.where(count == 0, default, mean)
  kind = registry.NUM if encoding == "numerical" else values.kind
  if values.labels is not None:
    if not np.all(np.isnan(out) | (out == np.round(out)) | ~exists):
      raise EvaluationError("categorical Aggregate over different values")
    return Values(out, kind, values.labels)
  return Values(out, kind)
