"""The TransformerLens state-dict layouts of a tracr model: names, shapes, and the exact map onto tracr's params.

Three layouts, each a table from parameter name to (tracr module, tracr parameter, reshape):

  legacy   `HookedTransformer` (TransformerLens <= 3; TracrBench and InterpBench pickles) and TransformerLens 4's
           `bridge.tl_parameters()`:
             embed.W_E [V, D]    pos_embed.W_pos [N, D]    (V = |vocab| + 2: BOS, PAD; N = max_seq_len + 1)
             blocks.l.attn.W_Q/W_K/W_V [H, D, K], b_Q/b_K/b_V [H, K], W_O [H, K, D], b_O [D]
             blocks.l.mlp.W_in [D, M], b_in [M], W_out [M, D], b_out [D]        unembed.W_U [D, d_out], b_U
  bridge   TransformerLens 4's `TransformerBridge.state_dict()` and `convert_tl_checkpoint()`, PyTorch Linear
           layout (out x in):
             embed.weight [V, D]    pos_embed.weight [N, D]
             blocks.l.attn.{q,k,v}.weight [H*K, D] and .bias [H*K], blocks.l.attn.o.weight [D, H*K], .bias [D]
             blocks.l.mlp.in.weight [M, D], .bias [M], blocks.l.mlp.out.weight [D, M], .bias [D]
             unembed.weight [d_out, D], unembed.bias [d_out]
  native   the raw module names TransformerLens 4's own tracr converter feeds into `load_state_dict`
           (`tok_embed.weight`, `pos.weight`, `layers.l.attn.*`, `layers.l.mlp.fc_in/fc_out.*`, `head.weight`);
           a user rarely holds them, but they are what that converter returns.

A name is accepted only in its canonical spelling: a layer index is ASCII decimal without leading zeros
(`blocks.00.` or `blocks.٠.` would otherwise alias `blocks.0.`, and a file holding both would be read as one
model and run as another); every other name is refused by name. Everything here works on names and shapes
alone, so a file is checked before any tensor is read.
"""

from __future__ import annotations

import re
from typing import Literal, Mapping

import numpy as np

from tracr_decompiler import limits
from tracr_decompiler.loading.model_io import ModelFileError

Layout = Literal["legacy", "bridge", "native"]


def _linear(prefix: str, parts: tuple[tuple[str, str], ...]) -> dict:
  """PyTorch Linear names (weight [out, in], bias) of one layer's attention or MLP parts."""
  return {f"{prefix}.{short}.{p}": (module, p[0], "linear" if p == "weight" else "same")
          for short, module in parts for p in ("weight", "bias")}


_ATTN = (("q", "attn/query"), ("k", "attn/key"), ("v", "attn/value"), ("o", "attn/linear"))
# Parameter names -> (tracr module, tracr parameter, how to reshape). "heads_in": [H, D, K] -> [D, H*K];
# "heads_bias": [H, K] -> [H*K]; "heads_out": [H, K, D] -> [H*K, D]; "linear": [out, in] -> [in, out].
TABLES: dict[str, dict[str, tuple[str, str, str]]] = {
    "legacy": {
        "embed.W_E": ("token_embed", "embeddings", "same"),
        "pos_embed.W_pos": ("pos_embed", "embeddings", "same"),
        **{f"blocks.{{l}}.attn.W_{n}": (f"attn/{m}", "w", "heads_in") for n, m in zip("QKV", ("query", "key", "value"))},
        **{f"blocks.{{l}}.attn.b_{n}": (f"attn/{m}", "b", "heads_bias") for n, m in zip("QKV", ("query", "key", "value"))},
        "blocks.{l}.attn.W_O": ("attn/linear", "w", "heads_out"), "blocks.{l}.attn.b_O": ("attn/linear", "b", "same"),
        "blocks.{l}.mlp.W_in": ("mlp/linear_1", "w", "same"), "blocks.{l}.mlp.b_in": ("mlp/linear_1", "b", "same"),
        "blocks.{l}.mlp.W_out": ("mlp/linear_2", "w", "same"), "blocks.{l}.mlp.b_out": ("mlp/linear_2", "b", "same"),
    },
    "bridge": {
        "embed.weight": ("token_embed", "embeddings", "same"),
        "pos_embed.weight": ("pos_embed", "embeddings", "same"),
        **_linear("blocks.{l}.attn", _ATTN),
        **_linear("blocks.{l}.mlp", (("in", "mlp/linear_1"), ("out", "mlp/linear_2"))),
    },
    "native": {
        "tok_embed.weight": ("token_embed", "embeddings", "same"),
        "pos.weight": ("pos_embed", "embeddings", "same"),
        **_linear("layers.{l}.attn", _ATTN),
        **_linear("layers.{l}.mlp", (("fc_in", "mlp/linear_1"), ("fc_out", "mlp/linear_2"))),
    },
}
EMBEDDINGS = {"legacy": ("embed.W_E", "pos_embed.W_pos"), "bridge": ("embed.weight", "pos_embed.weight"),
              "native": ("tok_embed.weight", "pos.weight")}
# The unembedding (read apart: loading/tl_output.py) as (weight, bias); the weight is [D, d_out] in legacy
# names and [d_out, D] in the Linear layouts.
UNEMBED = {"legacy": ("unembed.W_U", "unembed.b_U"), "bridge": ("unembed.weight", "unembed.bias"),
           "native": ("head.weight", "head.bias")}
_LAYER = r"(0|[1-9][0-9]{0,2})"
# TransformerLens' attention buffers (the causal mask exists even for bidirectional models): never read.
_BUFFERS = re.compile(rf"(blocks|layers)\.{_LAYER}\.attn\.(mask|IGNORE)", re.ASCII)
_NORM = re.compile(r"(^|\.)(ln\w*|norm\w*|ln_final)\.")


def layout_of(names) -> Layout | None:
  """The layout the state dict's names are in, from its embeddings' names; None when none fits."""
  names = set(names)
  return next((layout for layout, (emb, pos) in EMBEDDINGS.items()  # type: ignore[misc]
               if emb in names and pos in names), None)


def is_extra(layout: str, name: str) -> bool:
  """A name present in real state dicts that is not one of tracr's parameters (unembedding, buffers)."""
  return name in UNEMBED[layout] or _BUFFERS.fullmatch(name) is not None


def template(layout: str, name: str) -> tuple[str, int | None] | None:
  """("blocks.{l}.attn.W_Q", 3) for "blocks.3.attn.W_Q"; None for names not in the layout's canonical spelling."""
  table = TABLES[layout]
  if name in table:
    return name, None
  m = re.fullmatch(rf"(blocks|layers)\.{_LAYER}\.(.+)", name, re.ASCII | re.DOTALL)
  if m and f"{m.group(1)}.{{l}}.{m.group(3)}" in table:
    return f"{m.group(1)}.{{l}}.{m.group(3)}", int(m.group(2))
  return None


def as_numpy(x) -> np.ndarray:
  """A torch tensor (any device or dtype) or array as float32 NumPy, without importing torch."""
  if hasattr(x, "detach"):
    x = x.detach().cpu().float().numpy()
  return np.asarray(x, dtype=np.float32)


def plan(layout: str, shapes: Mapping[str, tuple], n_heads: int | None, where: str) -> dict:
  """Checks names and shapes against each other and limits.py; returns the model's sizes.

  Raises:
    ModelFileError: one line naming the first name or shape that is not a tracr model's.
  """
  bad = lambda why: ModelFileError(f"{where}: {why}")
  layers: set[int] = set()
  for name in shapes:
    if not isinstance(name, str):
      raise bad(f"parameter names must be strings, got {type(name).__name__}")
    if is_extra(layout, name):
      continue
    if _NORM.search(name):
      raise bad(f"{name} is a layer-norm parameter; Tracr models have no layer norm")
    t = template(layout, name)
    if t is None:
      raise bad(f"unexpected parameter {name[:80]!r} for the TransformerLens {layout} layout")
    if t[1] is not None:
      layers.add(t[1])
  if not layers:
    raise bad("no transformer layers")
  if sorted(layers) != list(range(len(layers))) or len(layers) > limits.MAX_LAYERS:
    raise bad(f"layers must be numbered 0..n-1 (at most {limits.MAX_LAYERS}), got {sorted(layers)[:8]}")
  emb, pos = EMBEDDINGS[layout]
  if len(shapes[emb]) != 2 or len(shapes[pos]) != 2 or shapes[emb][1] != shapes[pos][1]:
    raise bad(f"{emb} and {pos} must be [rows, d_model] with the same d_model")
  v, d = shapes[emb]
  n = shapes[pos][0]
  if not (0 < d <= limits.MAX_RESIDUAL and 3 <= v <= limits.MAX_VOCAB + 2 and 2 <= n <= limits.MAX_SEQ_LEN + 1):
    raise bad(f"embedding sizes out of range (vocab rows {v}, positions {n}, d_model {d})")
  root = "layers" if layout == "native" else "blocks"
  key = lambda l, s: f"{root}.{l}.{s}"
  if layout == "legacy":
    q = shapes.get(key(0, "attn.W_Q"))
    if q is None or len(q) != 3:
      raise bad("blocks.0.attn.W_Q must be [n_heads, d_model, d_head]")
    h, k = q[0], q[2]
    w_in = shapes.get(key(0, "mlp.W_in"))
    if w_in is None or len(w_in) != 2:
      raise bad("blocks.0.mlp.W_in must be [d_model, d_mlp]")
    m = w_in[1]
    expect = {"attn.W_Q": (h, d, k), "attn.W_K": (h, d, k), "attn.W_V": (h, d, k), "attn.W_O": (h, k, d),
              "attn.b_Q": (h, k), "attn.b_K": (h, k), "attn.b_V": (h, k), "attn.b_O": (d,),
              "mlp.W_in": (d, m), "mlp.b_in": (m,), "mlp.W_out": (m, d), "mlp.b_out": (d,)}
  else:
    mlp_in, mlp_out = ("mlp.fc_in", "mlp.fc_out") if layout == "native" else ("mlp.in", "mlp.out")
    qw = shapes.get(key(0, "attn.q.weight"))
    if qw is None or len(qw) != 2:
      raise bad(f"{key(0, 'attn.q.weight')} must be [n_heads * d_head, d_model]")
    if n_heads is None:
      raise bad(f"the TransformerLens {layout} layout does not say how many heads there are: give n_heads "
                "(settings 'n_heads', --n-heads, or the model's cfg)")
    if n_heads < 1 or qw[0] % n_heads:
      raise bad(f"q.weight has {qw[0]} rows, not a multiple of n_heads {n_heads}")
    h, k = n_heads, qw[0] // n_heads
    fc = shapes.get(key(0, f"{mlp_in}.weight"))
    if fc is None or len(fc) != 2:
      raise bad(f"{key(0, mlp_in)}.weight must be [d_mlp, d_model]")
    m = fc[0]
    expect = {**{f"attn.{s}.weight": (h * k, d) for s in "qkv"}, **{f"attn.{s}.bias": (h * k,) for s in "qkv"},
              "attn.o.weight": (d, h * k), "attn.o.bias": (d,), f"{mlp_in}.weight": (m, d), f"{mlp_in}.bias": (m,),
              f"{mlp_out}.weight": (d, m), f"{mlp_out}.bias": (d,)}
  if not (0 < h <= limits.MAX_HEADS and 0 < k <= limits.MAX_KEY_SIZE and 0 <= m <= limits.MAX_MLP_HIDDEN):
    raise bad(f"sizes out of range (n_heads {h}, d_head {k}, d_mlp {m})")
  for layer in range(len(layers)):
    for suffix, shape in expect.items():
      got = shapes.get(key(layer, suffix))
      required = not re.search(r"(\.b_|\.bias$)", suffix)  # tracr's biases are zero; absent ones are zeros
      if got is None:
        if required:
          raise bad(f"missing {key(layer, suffix)}")
        continue
      if tuple(got) != shape:
        raise bad(f"{key(layer, suffix)} has shape {tuple(got)}, expected {shape}")
  total = 4 * (v * d + n * d + len(layers) * (4 * d * h * k + 2 * d * m + 3 * h * k + m + 2 * d))
  if total > limits.MAX_MODEL_BYTES:
    raise bad(f"a model of these sizes exceeds {limits.MAX_MODEL_BYTES >> 20} MiB")
  return {"layers": len(layers), "heads": h, "key_size": k, "d_model": d, "vocab_rows": v, "positions": n,
          "d_mlp": m}


def convert(layout: str, tensors: Mapping[str, np.ndarray], sizes: dict) -> dict[str, dict[str, np.ndarray]]:
  """TransformerLens tensors -> tracr's parameter dict (exact reshapes, missing biases as zeros)."""
  h, k, d, m = sizes["heads"], sizes["key_size"], sizes["d_model"], sizes["d_mlp"]
  params: dict[str, dict[str, np.ndarray]] = {}
  for name, value in tensors.items():
    t = template(layout, name)
    if t is None:
      continue
    module, p, how = TABLES[layout][t[0]]
    if t[1] is not None:
      module = f"transformer/layer_{t[1]}/{module}"
    if how == "heads_in":  # [H, D, K] -> [D, H, K] -> [D, H*K]: head h owns columns h*K..(h+1)*K
      value = value.transpose(1, 0, 2).reshape(d, h * k)
    elif how in ("heads_bias", "heads_out"):  # [H, K] -> [H*K]; [H, K, D] -> [H*K, D]
      value = value.reshape((h * k,) + value.shape[2:])
    elif how == "linear":
      value = value.T
    params.setdefault(module, {})[p] = np.ascontiguousarray(value, dtype=np.float32)
  widths = {"attn/query": h * k, "attn/key": h * k, "attn/value": h * k, "attn/linear": d,
            "mlp/linear_1": m, "mlp/linear_2": d}
  for layer in range(sizes["layers"]):
    for module, width in widths.items():
      entry = params.setdefault(f"transformer/layer_{layer}/{module}", {})
      entry.setdefault("b", np.zeros(width, np.float32))
  return params
