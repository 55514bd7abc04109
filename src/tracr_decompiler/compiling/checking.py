"""Checks that a compiled model computes what its RASP program computes.

tracr compiles some programs silently wrong (a categorical Aggregate whose
selector picks several different values; numerical MLPs outside their
approximation range), so every sample is run both ways before it is kept.
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.compiling import forward
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.program import evaluate
from tracr_decompiler.program.values import Values


def compiled_matches(model: CompiledModel, inputs: list[tuple], expected: list[list],
                     tol: float = 1e-3) -> bool:
  """Compiled outputs equal `expected` (RASP evaluation) on every input."""
  return evaluate.same_outputs(forward.run(model, inputs), expected, tol)


def compiled_matches_padded(model: CompiledModel, tokens: np.ndarray, valid: np.ndarray, expected: Values,
                            labels: tuple | None = None, tol: float = 1e-3) -> bool:
  """The compiled model computes `expected` (RASP evaluation) on one padded batch (evaluate.padded_batch).

  Any vocabulary: tokens are codes into `labels` when given; categorical
  outputs are compared in `expected`'s encoding (its codes when it has labels).
  """
  got = forward.run_padded(model, tokens, valid, labels)
  if model.categorical_output:  # output index -> expected's float encoding; inf never matches
    encode = _encoding(expected.labels)
    table = np.array([encode(v) for v in model.output_values] + [np.nan])
    got = table[np.where(np.isnan(got), len(model.output_values), got).astype(int)]
  return same_arrays(got[valid], expected.data[valid], tol)


def _encoding(labels: tuple | None):
  """value -> the float an evaluated Values holds for it (its code when there are labels; inf if none fits)."""
  if labels is not None:
    codes = {evaluate.value_key(v): i for i, v in enumerate(labels)}
    return lambda value: float(codes.get(evaluate.value_key(value), np.inf))
  return lambda value: float(value) if evaluate.is_number(value) or isinstance(value, (bool, np.bool_)) else np.inf


def same_arrays(got: np.ndarray, want: np.ndarray, tol: float = 1e-3) -> bool:
  """evaluate.same_outputs for float arrays with NaN for None."""
  both_none = np.isnan(got) & np.isnan(want)
  with np.errstate(invalid="ignore"):
    close = np.abs(got - want) <= tol
  return bool((both_none | close).all())


def dynamic_reasons(expr, inputs: list[tuple]) -> list[str]:
  """tracr's own dynamic validation on a few inputs (reasons; empty if fine)."""
  from tracr.compiler import validating  # imports JAX: only where the generator validates
  reasons = []
  for xs in inputs:
    try:
      reasons += [f"{u.expr.label}: {u.reason}" for u in validating.dynamic_validate(expr, list(xs))]
    except Exception as e:  # pylint: disable=broad-except
      # tracr's evaluator fails where ours does not: a numerical Aggregate whose
      # input holds None at every selected position (ValueError), or a table
      # keyed by a float that tracr's own arithmetic computes one ulp apart
      # (KeyError). A program tracr cannot run is rejected, not a crash of the
      # generator (mixed settings with tables found both).
      reasons.append(f"tracr's evaluator fails: {type(e).__name__}: {e}")
  return sorted(set(reasons))
