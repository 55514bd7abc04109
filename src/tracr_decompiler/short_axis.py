"""Reductions over a short last axis (sequence positions), like NumPy's but 5-15x faster.

Sequences here are a few dozen positions at most, and NumPy reduces a short
last axis one row at a time: max over a [3905, 6, 6] float32 array took 803 us,
an elementwise fold over its six [3905, 6] slices 47 us (sum: 282 vs 36 us).
Results are the same: exact for max, min, any and counts. Float sums are
added left to right: NumPy's own order below 8 elements, and beyond it the
order of Python's `sum`, with which tracr's evaluator averages an Aggregate's
selected values (NumPy's pairwise sum differed from it in the last bit:
program/evaluate_test.py).
"""

from __future__ import annotations

import numpy as np


def _fold(ufunc: np.ufunc, a: np.ndarray, dtype=None) -> np.ndarray:
  if a.shape[-1] == 0:
    return ufunc.reduce(a, axis=-1, dtype=dtype)  # the identity, or NumPy's own error
  out = a[..., 0].astype(dtype or a.dtype)  # a copy: folded into in place
  for k in range(1, a.shape[-1]):
    ufunc(out, a[..., k], out=out)
  return out


def amax(a: np.ndarray) -> np.ndarray:
  return _fold(np.maximum, a)


def amin(a: np.ndarray) -> np.ndarray:
  return _fold(np.minimum, a)


def any_(a: np.ndarray) -> np.ndarray:
  return _fold(np.logical_or, a, bool)


def fold_or(a: np.ndarray) -> np.ndarray:
  """Bitwise OR over the last axis (integers)."""
  return _fold(np.bitwise_or, a)


def total(a: np.ndarray) -> np.ndarray:
  """The sum; booleans are counted (int64), as ndarray.sum does."""
  return _fold(np.add, a, np.int64 if a.dtype == bool else None)
