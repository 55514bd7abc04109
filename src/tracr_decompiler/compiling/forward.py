"""A NumPy forward pass of a compiled Tracr model, batched over equal-length inputs.

Tracr models have no layer norm, zero biases and ReLU MLPs, so the forward pass
is a few matmuls: embeddings, then per layer softmax attention (causally masked
when the model is causal) and an MLP, each added to the residual stream. It matches `AssembledTransformerModel.apply` to
about 1e-6 and runs thousands of inputs per second on a CPU.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler import short_axis
from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.program import evaluate


def _nonzero(a: np.ndarray, axis: int) -> np.ndarray:
  """Indices along the other axis of a 2-D array that hold any non-zero entry."""
  return np.flatnonzero(np.any(a != 0, axis=axis))


@dataclasses.dataclass(frozen=True)
class _Head:
  # Only the residual rows a head reads and the columns it writes take part:
  # tracr puts each SOp in its own block, so most of every matrix is zero.
  q_rows: np.ndarray
  wq: np.ndarray
  bq: np.ndarray
  k_rows: np.ndarray
  wk: np.ndarray
  bk: np.ndarray
  v_rows: np.ndarray
  wv: np.ndarray
  bv: np.ndarray
  out_cols: np.ndarray
  wo: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Mlp:
  in_rows: np.ndarray
  w1: np.ndarray  # [in_rows, active units]
  b1: np.ndarray
  out_cols: np.ndarray
  w2: np.ndarray  # [active units, out_cols]


@dataclasses.dataclass(frozen=True)
class _Layer:
  heads: list[_Head]
  attn_bias: np.ndarray | None  # [D]; None when zero (always, for tracr's own models)
  mlp: _Mlp | None
  mlp_bias: np.ndarray | None


def _plan(model: CompiledModel) -> list[_Layer]:
  """The non-zero parts of each sublayer; empty heads, units and sublayers are skipped (their output is 0).

  Exact: a head whose output projection (or value map and bias) is zero adds
  nothing whatever its attention pattern is; an MLP unit whose output row is
  zero adds nothing; biases are kept wherever they are non-zero (user models).
  """
  p, k = model.params, model.key_size
  plan = []
  for layer in range(model.num_layers):
    a, m = layout.attn(layer), layout.mlp(layer)
    heads = []
    for h in range(model.num_heads):
      cols = slice(h * k, (h + 1) * k)
      wo = p[f"{a}/linear"]["w"][cols]
      wv, bv = p[f"{a}/value"]["w"][:, cols], p[f"{a}/value"]["b"][cols]
      out_cols = _nonzero(wo, 0)
      if not len(out_cols) or not (wv.any() or bv.any()):
        continue
      wq, wk = p[f"{a}/query"]["w"][:, cols], p[f"{a}/key"]["w"][:, cols]
      q_rows, k_rows, v_rows = _nonzero(wq, 1), _nonzero(wk, 1), _nonzero(wv, 1)
      heads.append(_Head(q_rows, wq[q_rows], p[f"{a}/query"]["b"][cols], k_rows, wk[k_rows],
                         p[f"{a}/key"]["b"][cols], v_rows, wv[v_rows], bv, out_cols, wo[:, out_cols]))
    w1, b1, w2 = p[f"{m}/linear_1"]["w"], p[f"{m}/linear_1"]["b"], p[f"{m}/linear_2"]["w"]
    units = _nonzero(w2, 1)
    mlp = None
    if len(units):
      in_rows, out_cols = _nonzero(w1[:, units], 1), _nonzero(w2[units], 0)
      mlp = _Mlp(in_rows, w1[np.ix_(in_rows, units)], b1[units], out_cols, w2[np.ix_(units, out_cols)])
    nonzero = lambda b: b if b.any() else None
    plan.append(_Layer(heads, nonzero(p[f"{a}/linear"]["b"]), mlp, nonzero(p[f"{m}/linear_2"]["b"])))
  return plan


def residual_stream(model: CompiledModel, tokens: np.ndarray, key_mask: np.ndarray | None = None) -> np.ndarray:
  """Final residual stream [N, T, D] for token ids [N, T] (BOS included at position 0).

  key_mask: [N, T] bool, for inputs of several lengths padded into one batch:
  no position attends to a padding key, so every real position computes
  exactly what the unpadded input computes. (tracr's own model has no such
  mask; the decompiler's reading of a model never pads.)
  """
  p = model.params
  n, t = tokens.shape
  x = p[layout.TOKEN_EMBED][layout.EMBEDDINGS][tokens] + p[layout.POS_EMBED][layout.EMBEDDINGS][np.arange(t)][None]
  # Rows are (input, position) pairs: projections are one 2-D matmul each (a
  # 3-D @ 2-D matmul loops over the batch in small products, ~10x slower).
  x = x.astype(np.float32).reshape(n * t, -1)
  scale = np.float32(1 / np.sqrt(model.key_size))
  allowed = np.tril(np.ones((t, t), dtype=bool))[None] if model.settings.causal else None
  if key_mask is not None:
    allowed = key_mask[:, None, :] if allowed is None else allowed & key_mask[:, None, :]
  for layer in _plan(model):
    outputs = []  # every head reads the residual stream before any of them writes
    for h in layer.heads:
      q = (x[:, h.q_rows] @ h.wq + h.bq).reshape(n, t, -1)
      k = (x[:, h.k_rows] @ h.wk + h.bk).reshape(n, t, -1)
      v = (x[:, h.v_rows] @ h.wv + h.bv).reshape(n, t, -1)
      logits = (q @ k.transpose(0, 2, 1)) * scale  # [N, Tq, Tk]
      if allowed is not None:  # as tracr: masked logits set to -1e30 before the softmax
        logits = np.where(allowed, logits, np.float32(-1e30))
      logits -= short_axis.amax(logits)[..., None]
      weights = np.exp(logits)
      weights /= short_axis.total(weights)[..., None]
      outputs.append((h.out_cols, (weights @ v).reshape(n * t, -1) @ h.wo))
    for cols, out in outputs:
      x[:, cols] += out
    if layer.attn_bias is not None:
      x += layer.attn_bias
    if layer.mlp is not None:
      mlp = layer.mlp
      hidden = x[:, mlp.in_rows] @ mlp.w1
      hidden += mlp.b1
      x[:, mlp.out_cols] += np.maximum(hidden, 0, out=hidden) @ mlp.w2
    if layer.mlp_bias is not None:
      x += layer.mlp_bias
  return x.reshape(n, t, -1)


def run(model: CompiledModel, inputs: list[tuple]) -> list[list]:
  """Decoded outputs for each input (without BOS), like `model.apply(...).decoded[1:]`.

  A categorical output whose output block is all (near) zero decodes to None,
  which is how tracr represents None (tracr's own argmax would pick value 0).
  """
  bos = model.input_encoding[model.settings.compiler_bos]
  outputs: list = [None] * len(inputs)
  for idx in evaluate.group_by_length(inputs).values():
    ids = np.array([[bos] + [model.input_encoding[tok] for tok in inputs[i]] for i in idx])
    out = residual_stream(model, ids)[:, 1:, model.output_dims]  # [N, T, |out|]
    for row, i in enumerate(idx):
      if model.categorical_output:
        best = out[row].argmax(-1)
        outputs[i] = [model.output_values[b] if out[row, j, b] > 0.5 else None
                      for j, b in enumerate(best)]
      else:
        outputs[i] = [float(v) for v in out[row, :, 0]]
  return outputs


def run_padded(model: CompiledModel, tokens: np.ndarray, valid: np.ndarray,
               labels: tuple | None = None) -> np.ndarray:
  """The model on one padded batch of several lengths (evaluate.padded_batch): [N, L] floats.

  tokens: token values, or codes into `labels` (any vocabulary). Categorical
  outputs are indices into model.output_values; NaN for None and at padding.
  """
  codes, inverse = np.unique(tokens, return_inverse=True)
  rows = np.array([model.input_encoding[labels[int(c)] if labels is not None else _number(c)] for c in codes])
  bos = model.input_encoding[model.settings.compiler_bos]
  ids = np.concatenate([np.full((len(tokens), 1), bos), rows[inverse.reshape(tokens.shape)]], axis=1)
  key_mask = np.concatenate([np.ones((len(tokens), 1), dtype=bool), valid], axis=1)
  res = residual_stream(model, ids, key_mask=key_mask)[:, 1:, model.output_dims]
  if model.categorical_output:
    out = np.where(res.max(-1) > 0.5, res.argmax(-1), np.nan)
  else:
    out = res[..., 0].astype(float)
  return np.where(valid, out, np.nan)


def _number(v: float):
  return int(v) if float(v).is_integer() else float(v)  # the vocab's own key (3, not 3.0; same hash anyway)
