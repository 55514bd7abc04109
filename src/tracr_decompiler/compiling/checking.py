"""Checks that a compiled model computes what its RASP program computes.

tracr compiles some programs silently wrong (a categorical Aggregate whose
selector picks several different values; numerical MLPs outside their
approximation range), so every sample is run both ways before it is kept.
"""

from __future__ import annotations

import numpy as np
from tracr.compiler import validating

from tracr_decompiler.compiling import forward
from tracr_decompiler.compiling.compiler import CompiledModel
from tracr_decompiler.program import evaluate


def compiled_matches(model: CompiledModel, inputs: list[tuple], expected: list[list],
                     tol: float = 1e-3) -> bool:
  """Compiled outputs equal `expected` (RASP evaluation) on every input."""
  return evaluate.same_outputs(forward.run(model, inputs), expected, tol)


def compiled_matches_batches(model: CompiledModel, batches: dict[int, np.ndarray],
                             expected: dict[int, np.ndarray], tol: float = 1e-3) -> bool:
  """Vectorised `compiled_matches` for numeric vocabularies.

  batches: length -> tokens [N, L]; expected: length -> RASP outputs [N, L] (NaN = None).
  """
  bos = model.input_encoding[model.settings.compiler_bos]
  vocab = np.array(model.settings.vocab, dtype=float)
  for n, tokens in batches.items():
    ids = np.searchsorted(vocab, tokens)  # vocab is sorted
    rows = np.array([model.input_encoding[v] for v in model.settings.vocab])[ids]
    ids = np.concatenate([np.full((len(rows), 1), bos), rows], axis=1)
    out = forward.residual_stream(model, ids)[:, 1:, model.output_dims]
    if model.categorical_output:
      values = np.asarray(model.output_values, dtype=float)[out.argmax(-1)]
      got = np.where(out.max(-1) > 0.5, values, np.nan)
    else:
      got = out[..., 0].astype(float)
    want = expected[n]
    same = (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= tol)
    if not same.all():
      return False
  return True


def dynamic_reasons(expr, inputs: list[tuple]) -> list[str]:
  """tracr's own dynamic validation on a few inputs (reasons; empty if fine)."""
  reasons = []
  for xs in inputs:
    reasons += [f"{u.expr.label}: {u.reason}" for u in validating.dynamic_validate(expr, list(xs))]
  return sorted(set(reasons))
