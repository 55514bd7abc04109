"""The NumPy forward pass: the sparse plan and padded batches compute what the dense per-length pass does."""

import numpy as np
import pytest

from tracr_decompiler.compiling import forward, layout
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate


@pytest.fixture(scope="module")
def models():
  rng = np.random.default_rng(9)
  return [sampler.sample_program(GenerationConfig(), rng).model for _ in range(12)]


def _dense(model, ids):
  """The textbook forward pass over full matrices, in float32 as tracr runs (what `_plan` must not change)."""
  p, (n, t) = model.params, ids.shape
  x = (p[layout.TOKEN_EMBED][layout.EMBEDDINGS][ids] + p[layout.POS_EMBED][layout.EMBEDDINGS][:t][None]).astype(np.float32)
  h, k = model.num_heads, model.key_size
  for layer in range(model.num_layers):
    a, m = layout.attn(layer), layout.mlp(layer)
    q, kk, v = ((x @ p[f"{a}/{w}"]["w"] + p[f"{a}/{w}"]["b"]).reshape(n, t, h, k) for w in ("query", "key", "value"))
    logits = np.einsum("nqhd,nkhd->nhqk", q, kk) / np.float32(np.sqrt(k))
    if model.settings.causal:
      logits = np.where(np.tril(np.ones((t, t), dtype=bool)), logits, np.float32(-1e30))
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    x = x + np.einsum("nhqk,nkhd->nqhd", w, v).reshape(n, t, h * k) @ p[f"{a}/linear"]["w"] + p[f"{a}/linear"]["b"]
    hidden = np.maximum(x @ p[f"{m}/linear_1"]["w"] + p[f"{m}/linear_1"]["b"], 0)
    x = x + hidden @ p[f"{m}/linear_2"]["w"] + p[f"{m}/linear_2"]["b"]
  return x


def test_sparse_plan_matches_the_dense_pass_also_with_biases(models):
  rng = np.random.default_rng(0)
  for model in models:
    ids = rng.integers(0, len(model.input_encoding), size=(50, model.settings.max_seq_len + 1))
    np.testing.assert_allclose(forward.residual_stream(model, ids), _dense(model, ids), atol=1e-4)
    for params in model.params.values():  # user models may carry biases: the plan keeps them
      if "b" in params:
        params["b"] = params["b"] + rng.normal(size=params["b"].shape).astype(np.float32) * 0.1
    # float32 sums in another order, amplified by discretising MLPs (x100): ~4e-3 at most; a lost bias is ~0.1.
    np.testing.assert_allclose(forward.residual_stream(model, ids), _dense(model, ids), atol=2e-2)


def test_padded_batch_matches_one_batch_per_length(models):
  inputs = evaluate.all_inputs(range(5), 5)
  tokens, valid = evaluate.padded_batch(inputs)
  for model in models:
    per_length = forward.run(model, inputs)  # one unpadded batch per length, decoded
    padded = forward.run_padded(model, tokens, valid)
    for row, want in zip(padded, per_length):
      got = [None if np.isnan(v) else (model.output_values[int(v)] if model.categorical_output else v)
             for v in row[:len(want)]]
      assert evaluate.same_outputs([got], [want], 1e-5), (got, want)
    assert np.isnan(padded[~valid]).all()
