"""The paper's baseline input: every parameter flattened, in a fixed order, and chunked.

Kept to compare against the graph encoding (benchmarks/train_bench.py). Values
are squashed with asinh (tracr weights reach +-1e3); the tail is cut at
`max_tokens` chunks, as the meta-model paper cut at 65,536 floats.
"""

from __future__ import annotations

import numpy as np


def flatten_params(params, chunk: int, max_tokens: int) -> np.ndarray:
  """[T, chunk] float32 for tracr's parameter dict (module -> {"w", "b"})."""
  parts = [np.asarray(params[m][p], np.float32).ravel() for m in sorted(params) for p in sorted(params[m])]
  x = np.arcsinh(np.concatenate(parts))[: chunk * max_tokens]
  pad = (-len(x)) % chunk
  return np.concatenate([x, np.zeros(pad, np.float32)]).reshape(-1, chunk)
