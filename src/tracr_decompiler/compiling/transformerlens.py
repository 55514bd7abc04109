"""TransformerLens models in and out: how most people hold Tracr models, mapped exactly onto CompiledModel.

TransformerLens' Tracr demo, TracrBench and InterpBench turn a tracr model into a
`HookedTransformer`. Its state dict (legacy names, GUIDE §2) holds tracr's own
parameters, reshaped:

    embed.W_E [V, D]          token_embed/embeddings      (V = |vocab| + 2: BOS, PAD)
    pos_embed.W_pos [N, D]    pos_embed/embeddings        (N = max_seq_len + 1)
    blocks.l.attn.W_Q [H, D, K], b_Q [H, K]   attn/query w [D, H*K] (heads first), b [H*K]; same for K, V
    blocks.l.attn.W_O [H, K, D], b_O [D]      attn/linear w [H*K, D]
    blocks.l.mlp.W_in [D, M], b_in, W_out [M, D], b_out    mlp/linear_1, mlp/linear_2

`TransformerBridge` (newer TransformerLens) uses PyTorch Linear layout (out x in):
`tok_embed.weight`, `pos.weight`, `layers.l.attn.{q,k,v,o}.weight/bias`,
`layers.l.mlp.fc_in/fc_out.weight/bias`, `head.weight`.

What the weights do not say comes from tracr's encoders (objects with
`encoding_map`, `bos_token`, `pad_token`; duck-typed), a settings JSON or flags:
the vocabulary and BOS/PAD (which token is which embedding row), causal
masking, and the output's values. The output block is found from the weights:
the block one node writes and no layer reads (tracr compiles only what the
output uses), whose width is the number of output values (one dimension for a
numerical output). The unembedding W_U is evidence only where it is a real
reader: one column per dim of such a block, all of weight 1 (up to a common
scale for a categorical output), zero bias. Then column j is output value j,
whatever the dims' order, and the model is moved into tracr's frame
(compiling/frame.py). TransformerLens' demo sets `W_U = eye(d_model,
d_vocab_out)`, which reads the first residual dimensions, not the output's
unless they happen to sort first: such a W_U is ignored and tracr's order (by
value, so by dim) stands in. A reader that weighs the output dims unevenly is
refused: no tracr program computes it. `CompiledModel.output_name` says which
block was used and which convention gave its order.

Nothing here imports TransformerLens or unpickles anything; files are
safetensors, checked (names, shapes, sizes) before any tensor is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any, Mapping

import numpy as np

from tracr_decompiler import files, limits
from tracr_decompiler.compiling import frame, model_io, tracr_model
from tracr_decompiler.compiling.compiler import CompiledModel
from tracr_decompiler.compiling.model_io import ModelFileError
from tracr_decompiler.errors import UsageError

SETTINGS_FORMAT = "tracr-decompiler/transformerlens-settings"
SETTINGS_VERSION = 1
MAX_FILE_BYTES = model_io.MAX_FILE_BYTES
MAX_SETTINGS_BYTES = 4 << 20

# Parameter names of each layout -> (tracr module, tracr parameter, how to reshape).
# "heads_in": [H, D, K] -> [D, H*K]; "heads_bias": [H, K] -> [H*K]; "heads_out": [H, K, D] -> [H*K, D];
# "linear": PyTorch [out, in] -> [in, out]; "same": as is.
_LEGACY = {
    "embed.W_E": ("token_embed", "embeddings", "same"),
    "pos_embed.W_pos": ("pos_embed", "embeddings", "same"),
    "blocks.{l}.attn.W_Q": ("attn/query", "w", "heads_in"), "blocks.{l}.attn.b_Q": ("attn/query", "b", "heads_bias"),
    "blocks.{l}.attn.W_K": ("attn/key", "w", "heads_in"), "blocks.{l}.attn.b_K": ("attn/key", "b", "heads_bias"),
    "blocks.{l}.attn.W_V": ("attn/value", "w", "heads_in"), "blocks.{l}.attn.b_V": ("attn/value", "b", "heads_bias"),
    "blocks.{l}.attn.W_O": ("attn/linear", "w", "heads_out"), "blocks.{l}.attn.b_O": ("attn/linear", "b", "same"),
    "blocks.{l}.mlp.W_in": ("mlp/linear_1", "w", "same"), "blocks.{l}.mlp.b_in": ("mlp/linear_1", "b", "same"),
    "blocks.{l}.mlp.W_out": ("mlp/linear_2", "w", "same"), "blocks.{l}.mlp.b_out": ("mlp/linear_2", "b", "same"),
}
_BRIDGE = {
    "tok_embed.weight": ("token_embed", "embeddings", "same"),
    "pos.weight": ("pos_embed", "embeddings", "same"),
    **{f"layers.{{l}}.attn.{s}.{p}": (f"attn/{m}", p[0], "linear" if p == "weight" else "same")
       for s, m in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "linear")) for p in ("weight", "bias")},
    **{f"layers.{{l}}.mlp.{s}.{p}": (f"mlp/{m}", p[0], "linear" if p == "weight" else "same")
       for s, m in (("fc_in", "linear_1"), ("fc_out", "linear_2")) for p in ("weight", "bias")},
}
# Present in real state dicts and not parameters of tracr's: the unembedding (read apart, by `_unembed_reader`)
# and TransformerLens' attention buffers (the causal mask buffer exists even for bidirectional models).
_UNEMBED = {"legacy": "unembed.W_U", "bridge": "head.weight"}
_UNEMBED_BIAS = {"legacy": "unembed.b_U", "bridge": "head.bias"}
# A layer index is spelled one way only (ASCII decimal, no leading zeros): `blocks.00.` or `blocks.٠.` would
# otherwise alias `blocks.0.`, and a file holding both would be read as one model and run as the other.
_LAYER = r"(0|[1-9][0-9]{0,2})"
_IGNORED = re.compile(rf"^(unembed\.(W_U|b_U)|head\.(weight|bias)|(blocks|layers)\.{_LAYER}\.attn\.(mask|IGNORE))$",
                      re.ASCII)
ZERO = 1e-3  # relative to a matrix's largest entry: below it an entry counts as zero (fp16, small noise)
_NORM = re.compile(r"(^|\.)(ln\w*|norm\w*|ln_final)\.")


@dataclasses.dataclass(frozen=True)
class Reading:
  """What a TransformerLens model's weights do not say, from encoders, a settings JSON or flags.

  Every field is optional; None means "not given" (defaults apply where tracr has one).
  """
  vocab: tuple | None = None  # input tokens (BOS and PAD excluded)
  bos: Any = None  # tracr's compiler_bos (default "compiler_bos", as compile_rasp_to_model)
  pad: Any = None  # tracr's compiler_pad (default "compiler_pad")
  input_encoding: dict | None = None  # token -> embedding row; default: tracr's own order
  max_seq_len: int | None = None  # default: rows of the position embedding - 1
  causal: bool | None = None  # default: the config's attention_dir, else tracr's default (False)
  output_kind: str | None = None  # "categorical" | "numerical"; default: from the output values / block width
  output_values: tuple | None = None  # categorical output values, in output-index order
  n_heads: int | None = None  # needed for the TransformerBridge layout (q.weight is [H*K, D])
  mlp_exactness: int | None = None  # informational (what tracr compiled with), default 100

  def merged(self, other: "Reading") -> "Reading":
    """`other`'s given fields override ours."""
    return dataclasses.replace(self, **{k: v for k, v in dataclasses.asdict(other).items() if v is not None})


# ---------------------------------------------------------------------------
# recognising TransformerLens inputs


def layout_of(names) -> str | None:
  """"legacy" / "bridge" from state-dict key names, or None."""
  names = set(names)
  if "embed.W_E" in names and "pos_embed.W_pos" in names:
    return "legacy"
  if "tok_embed.weight" in names and "pos.weight" in names:
    return "bridge"
  return None


def is_transformerlens(model) -> bool:
  """A HookedTransformer-like object (`state_dict()` and `cfg`) or a TransformerLens state dict."""
  if isinstance(model, Mapping):
    return layout_of(k for k in model if isinstance(k, str)) is not None
  return callable(getattr(model, "state_dict", None)) and hasattr(model, "cfg")


def reading_from_encoders(input_encoder=None, output_encoder=None) -> Reading:
  """Vocabulary, BOS/PAD and output values from tracr's encoders (duck-typed, never changed).

  input_encoder: tracr CategoricalEncoder (`encoding_map`, `bos_token`, `pad_token`).
  output_encoder: CategoricalEncoder (value -> output index), NumericalEncoder, or None.
  """
  r = Reading()
  if input_encoder is not None:
    try:
      encoding = {t: int(i) for t, i in input_encoder.encoding_map.items()}
      bos, pad = input_encoder.bos_token, getattr(input_encoder, "pad_token", None)
    except (AttributeError, TypeError, ValueError) as e:
      raise UsageError(f"input_encoder is not a tracr CategoricalEncoder ({type(e).__name__}: {e})") from None
    vocab = tuple(sorted((t for t in encoding if t not in (bos, pad)), key=lambda t: (type(t).__name__, t)))
    r = dataclasses.replace(r, vocab=vocab, bos=bos, pad=pad, input_encoding=encoding)
  if output_encoder is not None:
    if hasattr(output_encoder, "encoding_map"):
      values = tuple(v for v, _ in sorted(output_encoder.encoding_map.items(), key=lambda kv: kv[1]))
      r = dataclasses.replace(r, output_kind="categorical", output_values=values)
    else:
      r = dataclasses.replace(r, output_kind="numerical")
  return r


def reading_from_config(cfg) -> Reading:
  """What a HookedTransformerConfig (object or dict) tells: heads, causal masking, max_seq_len."""
  get = (lambda k: cfg.get(k)) if isinstance(cfg, Mapping) else (lambda k: getattr(cfg, k, None))
  if get("normalization_type") not in (None, "None"):
    raise ModelFileError(f"the model uses layer norm ({get('normalization_type')}); Tracr models have none")
  if get("act_fn") not in (None, "relu"):
    raise ModelFileError(f"the model's activation is {get('act_fn')!r}; Tracr MLPs use relu")
  direction = get("attention_dir")
  n_ctx, n_heads = get("n_ctx"), get("n_heads")
  return Reading(causal=None if direction is None else direction == "causal",
                 max_seq_len=int(n_ctx) - 1 if isinstance(n_ctx, int) and n_ctx > 1 else None,
                 n_heads=int(n_heads) if isinstance(n_heads, int) else None)


# ---------------------------------------------------------------------------
# state dict -> CompiledModel


def _numpy(x) -> np.ndarray:
  """A torch tensor (any device or dtype) or array as float32 NumPy, without importing torch."""
  if hasattr(x, "detach"):
    x = x.detach().cpu().float().numpy()
  return np.asarray(x, dtype=np.float32)


def _template(layout: str, name: str) -> tuple[str, int | None] | None:
  """("blocks.{l}.attn.W_Q", 3) for "blocks.3.attn.W_Q"; None for unknown names."""
  table = _LEGACY if layout == "legacy" else _BRIDGE
  if name in table:
    return name, None
  m = re.fullmatch(rf"(blocks|layers)\.{_LAYER}\.(.+)", name, re.ASCII | re.DOTALL)
  if m and f"{m.group(1)}.{{l}}.{m.group(3)}" in table:
    return f"{m.group(1)}.{{l}}.{m.group(3)}", int(m.group(2))
  return None


def _plan(layout: str, shapes: Mapping[str, tuple], n_heads: int | None, where: str) -> dict:
  """Checks names and shapes against each other and LIMITS; returns the model's sizes.

  Works on shapes only, so a file is checked before any tensor is read.
  """
  bad = lambda why: ModelFileError(f"{where}: {why}")
  layers: set[int] = set()
  for name in shapes:
    if not isinstance(name, str):
      raise bad(f"parameter names must be strings, got {type(name).__name__}")
    if _IGNORED.fullmatch(name):
      continue
    if _NORM.search(name):
      raise bad(f"{name} is a layer-norm parameter; Tracr models have no layer norm")
    t = _template(layout, name)
    if t is None:
      raise bad(f"unexpected parameter {name[:80]!r} for the TransformerLens {layout} layout")
    if t[1] is not None:
      layers.add(t[1])
  if not layers:
    raise bad("no transformer layers")
  if sorted(layers) != list(range(len(layers))) or len(layers) > limits.MAX_LAYERS:
    raise bad(f"layers must be numbered 0..n-1 (at most {limits.MAX_LAYERS}), got {sorted(layers)[:8]}")
  emb, pos = ("embed.W_E", "pos_embed.W_pos") if layout == "legacy" else ("tok_embed.weight", "pos.weight")
  if len(shapes[emb]) != 2 or len(shapes[pos]) != 2 or shapes[emb][1] != shapes[pos][1]:
    raise bad(f"{emb} and {pos} must be [rows, d_model] with the same d_model")
  v, d = shapes[emb]
  n = shapes[pos][0]
  if not (0 < d <= limits.MAX_RESIDUAL and 3 <= v <= limits.MAX_VOCAB + 2 and 2 <= n <= limits.MAX_SEQ_LEN + 1):
    raise bad(f"embedding sizes out of range (vocab rows {v}, positions {n}, d_model {d})")
  key = (lambda l, s: f"blocks.{l}.{s}") if layout == "legacy" else (lambda l, s: f"layers.{l}.{s}")
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
    qw = shapes.get(key(0, "attn.q.weight"))
    if qw is None or len(qw) != 2:
      raise bad("layers.0.attn.q.weight must be [n_heads * d_head, d_model]")
    if n_heads is None:
      raise bad("the TransformerBridge layout does not say how many heads there are: give n_heads "
                "(settings 'n_heads' or the model's cfg)")
    if n_heads < 1 or qw[0] % n_heads:
      raise bad(f"q.weight has {qw[0]} rows, not a multiple of n_heads {n_heads}")
    h, k = n_heads, qw[0] // n_heads
    fc = shapes.get(key(0, "mlp.fc_in.weight"))
    if fc is None or len(fc) != 2:
      raise bad("layers.0.mlp.fc_in.weight must be [d_mlp, d_model]")
    m = fc[0]
    expect = {**{f"attn.{s}.weight": (h * k, d) for s in "qkv"}, **{f"attn.{s}.bias": (h * k,) for s in "qkv"},
              "attn.o.weight": (d, h * k), "attn.o.bias": (d,),
              "mlp.fc_in.weight": (m, d), "mlp.fc_in.bias": (m,), "mlp.fc_out.weight": (d, m), "mlp.fc_out.bias": (d,)}
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
          "d_mlp": m, "name": key}


def _convert(layout: str, tensors: Mapping[str, np.ndarray], plan: dict) -> dict[str, dict[str, np.ndarray]]:
  """TransformerLens tensors -> tracr's parameter dict (exact reshapes, missing biases as zeros)."""
  h, k, d, m = plan["heads"], plan["key_size"], plan["d_model"], plan["d_mlp"]
  params: dict[str, dict[str, np.ndarray]] = {}
  for name, value in tensors.items():
    t = _template(layout, name)
    if t is None:
      continue
    module, p, how = (_LEGACY if layout == "legacy" else _BRIDGE)[t[0]]
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
  for layer in range(plan["layers"]):
    for module, width in widths.items():
      entry = params.setdefault(f"transformer/layer_{layer}/{module}", {})
      entry.setdefault("b", np.zeros(width, np.float32))
  return params


def _input_encoding(r: Reading, rows: int, where: str) -> tuple[dict, Any, Any, tuple]:
  if r.input_encoding is not None:
    encoding = dict(r.input_encoding)
    bos = r.bos if r.bos is not None else "compiler_bos"
    pad = r.pad if r.pad is not None else "compiler_pad"
    vocab = r.vocab or tuple(sorted((t for t in encoding if t not in (bos, pad)),
                                    key=lambda t: (type(t).__name__, t)))
  else:
    if not r.vocab:
      raise UsageError(f"{where}: the vocabulary is not in the weights; give it (--vocab, settings 'vocab', "
                       "or tracr's input encoder)")
    bos = r.bos if r.bos is not None else "compiler_bos"
    pad = r.pad if r.pad is not None else "compiler_pad"
    vocab = tuple(r.vocab)
    if bos in vocab or pad in vocab or bos == pad:
      raise UsageError(f"{where}: BOS and PAD must differ from each other and from the vocabulary")
    encoding = {t: i for i, t in enumerate(frame.tracr_token_order(set(vocab) | {bos, pad}))}
  if bos not in encoding:
    raise UsageError(f"{where}: the input encoding has no row for the BOS token {bos!r}")
  if len(encoding) != rows or sorted(encoding.values()) != list(range(rows)):
    raise UsageError(f"{where}: the embedding has {rows} rows but the vocabulary, BOS and PAD make "
                     f"{len(encoding)} (tracr adds BOS and PAD to the vocabulary)")
  return encoding, bos, pad, vocab


def _output_block(params, encoding, settings, plan, r: Reading, unembed, where: str, unembed_bias=None):
  """(dims, categorical, values, description) of the output block, found from the weights."""
  from tracr_decompiler.encoding import weights
  try:
    graph = weights.encode_weights(params, encoding, settings, plan["layers"], plan["heads"], plan["key_size"])
  except weights.NotTracrError as e:
    raise ModelFileError(f"{where}: not a Tracr-compiled model ({e})") from None
  read = {d for n in graph.nodes for role, dims in n.reads.items() if role != "scratch" for d in dims}
  unread = [n for n in graph.nodes if n.layer >= 0 and n.writes and not read & set(n.writes)]
  values = list(r.output_values) if r.output_values is not None else None
  kind = r.output_kind or ("categorical" if values else None)
  if kind == "numerical":
    fits = [n for n in unread if len(n.writes) == 1]
  elif values is not None:
    fits = [n for n in unread if len(n.writes) == len(values)]
  else:
    fits = unread
  if not fits:  # the node splitter can fail on odd MLPs: fall back to the dims no layer reads, as one block
    written = {d for n in graph.nodes if n.layer >= 0 for d in n.writes} | \
        {d for n in graph.nodes if n.kind == "selector_width" for d in n.reads.get("scratch", [])}
    loose = sorted(written - read)
    if loose and (len(loose) == 1 if kind == "numerical" else values is None or len(loose) == len(values)):
      from tracr_decompiler.encoding.nodes import Node
      fits = [Node("loose", max(n.layer for n in graph.nodes), loose)]
  if not fits:
    widths = sorted({len(n.writes) for n in unread})
    raise ModelFileError(f"{where}: no block that no layer reads fits the output "
                         f"({'numerical' if kind == 'numerical' else f'{len(values)} values' if values else 'any'}; "
                         f"unread blocks have widths {widths})")
  reader = _unembed_reader(unembed, unembed_bias, fits, where)
  node = reader[0] if reader else fits[-1]  # nodes are in layer order: else the deepest (tracr's output is last)
  # W_U that reads one block, one column per value, says which dim is which value; otherwise tracr's order
  # (sorted by value, so by dim) stands in.
  dims = reader[1] if reader else sorted(node.writes)
  categorical = kind == "categorical" or (kind is None and len(dims) > 1)
  if categorical and values is None:  # no output encoder: tracr's apply returns indices
    values = list(range(len(dims)))
  text = (f"residual dims {dims[0]}..{dims[-1]}" if len(dims) > 1 else f"residual dim {dims[0]}")
  what = f"categorical, {len(dims)} values" if categorical else "numerical"
  if node.kind == "loose":
    text += f" ({what}): the written dims no layer reads (the MLP could not be split into ops)"
  else:
    where_in = {"mlp": "MLP", "selector_width": "selector width"}.get(node.kind, f"head {node.head}")
    text += (f" written by layer {node.layer} {where_in} ({what}),"
             f" the {'only ' if len(fits) == 1 else 'deepest ' if not reader else ''}block no layer reads")
  if len(fits) > 1:
    text += f" ({len(fits)} fit)"
  if reader:
    text += "; W_U reads it, one column per value, and gives the values' order" if dims != sorted(dims) \
        else "; W_U reads the same dims"
  elif unembed is not None:
    used = [int(i) for i in np.flatnonzero(np.abs(unembed).sum(1))] if unembed.ndim == 2 else []
    text += (f"; W_U ignored (it reads dims {used[:3]}{'...' if len(used) > 3 else ''}, not one output block):"
             " values in tracr's order (by dim)")
  return dims, categorical, (values if categorical else []), text


def _unembed_reader(unembed, bias, fits, where: str) -> tuple[Any, list[int]] | None:
  """(node, its dims in W_U's column order) when W_U reads one fitting block, one column per dim; else None.

  Such a W_U is what the model's own library runs: its logits are that block, column j being output value j.
  It must then weigh every column alike (tracr's argmax, or the number itself for a numerical output);
  a reader that scales the columns unevenly computes something no tracr program does, and is refused.
  """
  if unembed is None or unembed.ndim != 2 or not unembed.size or not np.abs(unembed).max() > 0:
    return None
  big = np.abs(unembed) > ZERO * np.abs(unembed).max()
  if not (big.sum(0) == 1).all():
    return None
  dims = [int(np.flatnonzero(big[:, j])[0]) for j in range(unembed.shape[1])]
  node = next((n for n in fits if sorted(n.writes) == sorted(dims) and len(dims) == len(set(dims))), None)
  if node is None:
    return None
  weights = unembed[dims, np.arange(len(dims))]
  scale = 1.0 if len(dims) == 1 else float(weights.mean())  # a numerical output is the number itself
  if not (weights > 0).all() or np.abs(weights - scale).max() > ZERO * abs(scale):
    raise ModelFileError(f"{where}: W_U reads the output block with weights {np.round(weights[:4], 4).tolist()}"
                         f"{'...' if len(dims) > 4 else ''}; a tracr model's unembedding reads each output dim "
                         f"with weight 1")
  if bias is not None and np.size(bias) and np.abs(bias).max() > ZERO * abs(scale):
    raise ModelFileError(f"{where}: the unembedding's bias is not zero (largest {np.abs(bias).max():.3g}): it "
                         "shifts the output, which no tracr model does")
  return node, dims


def from_state_dict(state_dict: Mapping[str, Any], reading: Reading = Reading(),
                    where: str = "TransformerLens state dict"):
  """A TransformerLens state dict (legacy or TransformerBridge names) -> CompiledModel.

  Raises:
    ModelFileError: names or shapes that are not a Tracr model's; UsageError: missing settings.
  """
  layout = layout_of(k for k in state_dict if isinstance(k, str))
  if layout is None:
    raise ModelFileError(f"{where}: not a TransformerLens state dict (no embed.W_E/pos_embed.W_pos or "
                         "tok_embed.weight/pos.weight)")
  shapes = {k: tuple(getattr(v, "shape", np.shape(v))) for k, v in state_dict.items()}
  plan = _plan(layout, shapes, reading.n_heads, where)
  tensors = {k: _numpy(v) for k, v in state_dict.items() if not _IGNORED.fullmatch(k)}
  unembed = state_dict.get(_UNEMBED[layout])
  unembed = None if unembed is None else (_numpy(unembed).T if layout == "bridge" else _numpy(unembed))
  bias = state_dict.get(_UNEMBED_BIAS[layout])
  return _assemble(layout, tensors, plan, reading, unembed, where, None if bias is None else _numpy(bias))


def _assemble(layout, tensors, plan, r: Reading, unembed, where: str, unembed_bias=None):
  from tracr_decompiler.compiling.compiler import CompiledModel, CompileSettings
  for name, value in tensors.items():
    if not np.isfinite(value).all():
      raise ModelFileError(f"{where}: {name} holds NaN or inf")
  params = _convert(layout, tensors, plan)
  encoding, bos, pad, vocab = _input_encoding(r, plan["vocab_rows"], where)
  max_seq_len = plan["positions"] - 1
  if r.max_seq_len is not None and r.max_seq_len != max_seq_len:
    raise UsageError(f"{where}: max_seq_len {r.max_seq_len} given, but the position embedding has "
                     f"{plan['positions']} rows (max_seq_len + 1)")
  try:
    settings = CompileSettings(vocab=vocab, max_seq_len=max_seq_len, compiler_bos=bos, compiler_pad=pad,
                               mlp_exactness=r.mlp_exactness or 100, causal=bool(r.causal))
  except ValueError as e:
    raise UsageError(f"{where}: {e}") from None
  dims, categorical, values, text = _output_block(params, encoding, settings, plan, r, unembed, where, unembed_bias)
  return frame.to_tracr_frame(CompiledModel(
      params=params, settings=settings, num_heads=plan["heads"], num_layers=plan["layers"],
      key_size=plan["key_size"], residual_labels=[], input_encoding=encoding, output_values=values,
      output_dims=dims, categorical_output=categorical, output_name=text))


def from_transformerlens(model, *, input_encoder=None, output_encoder=None, **settings):
  """A HookedTransformer (duck-typed) or a TransformerLens state dict -> CompiledModel.

  Args:
    model: an object with `state_dict()` and `cfg` (HookedTransformer), or its state dict.
    input_encoder, output_encoder: tracr's encoders (TracrBench ships them with every model).
    **settings: any field of `Reading` (vocab, bos, pad, max_seq_len, causal, output_values, ...);
      they override what the encoders and the config say.
  Example usage:
    >>> compiled = from_transformerlens(hooked, input_encoder=tracr_model.input_encoder,
    ...                                 output_encoder=tracr_model.output_encoder)
  """
  try:
    flags = Reading(**settings)
  except TypeError as e:
    raise UsageError(f"unknown setting for a TransformerLens model: {e}") from None
  reading = Reading()
  if not isinstance(model, Mapping):
    reading = reading_from_config(model.cfg)
    model = model.state_dict()
  reading = reading.merged(reading_from_encoders(input_encoder, output_encoder)).merged(flags)
  return from_state_dict(model, reading)


# ---------------------------------------------------------------------------
# files: safetensors state dict + settings JSON


def settings_path_for(path: str | os.PathLike) -> str:
  """model.safetensors -> model.json (where `save` puts the settings and `load` looks first)."""
  root, ext = os.path.splitext(str(path))
  return (root if ext == ".safetensors" else str(path)) + ".json"


def _token_list(x) -> bool:
  return isinstance(x, list) and all(map(model_io._token, x))  # pylint: disable=protected-access


def reading_from_json(d, where: str) -> Reading:
  """Validates a settings document (as written by `save`; every key optional)."""
  def check(cond, why):
    if not cond:
      raise ModelFileError(f"{where}: {why}")
  check(isinstance(d, dict), "settings must be a JSON object")
  known = {"format", "format_version", "vocab", "bos", "pad", "input_encoding", "max_seq_len", "causal", "output",
           "output_values", "n_heads", "mlp_exactness", "transformerlens_config"}
  check(set(d) <= known, f"unknown settings keys {sorted(set(map(str, d)) - known)[:5]}; expected some of {sorted(known)}")
  check(d.get("format", SETTINGS_FORMAT) == SETTINGS_FORMAT, f"format must be {SETTINGS_FORMAT!r}")
  cfg = d.get("transformerlens_config", {})
  check(isinstance(cfg, dict), "transformerlens_config must be an object")
  r = reading_from_config(cfg)
  vocab = d.get("vocab")
  check(vocab is None or (_token_list(vocab) and 0 < len(vocab) <= limits.MAX_VOCAB
                          and len({(type(t) is str, t) for t in vocab}) == len(vocab)),
        f"vocab must be a list of 1..{limits.MAX_VOCAB} distinct numbers or short strings")
  for key in ("bos", "pad"):
    check(key not in d or model_io._token(d[key]), f"{key} must be a number or a short string")  # pylint: disable=protected-access
  pairs = d.get("input_encoding")
  check(pairs is None or (isinstance(pairs, list) and len(pairs) <= limits.MAX_VOCAB + 2 and all(
      isinstance(p, list) and len(p) == 2 and model_io._token(p[0]) and model_io._int(p[1], 0, limits.MAX_VOCAB + 1)  # pylint: disable=protected-access
      for p in pairs)), "input_encoding must be a list of [token, row] pairs")
  check(pairs is None or len({p[0] for p in pairs}) == len(pairs), "input_encoding lists a token twice")
  check(d.get("max_seq_len") is None or model_io._int(d["max_seq_len"], 1, limits.MAX_SEQ_LEN),  # pylint: disable=protected-access
        f"max_seq_len must be an integer in 1..{limits.MAX_SEQ_LEN}")
  check(isinstance(d.get("causal", False), bool), "causal must be true or false")
  check(d.get("output") in (None, "categorical", "numerical"), "output must be 'categorical' or 'numerical'")
  values = d.get("output_values")
  check(values is None or (isinstance(values, list) and len(values) <= limits.MAX_RESIDUAL
                           and all(model_io._token(v) or isinstance(v, bool) for v in values)),  # pylint: disable=protected-access
        "output_values must be a list of numbers, booleans or short strings")
  check(d.get("n_heads") is None or model_io._int(d["n_heads"], 1, limits.MAX_HEADS), "n_heads out of range")  # pylint: disable=protected-access
  check(d.get("mlp_exactness") is None or model_io._int(d["mlp_exactness"], 1, 10 ** 6), "mlp_exactness out of range")  # pylint: disable=protected-access
  given = Reading(vocab=tuple(vocab) if vocab else None, bos=d.get("bos"), pad=d.get("pad"),
                  input_encoding={p[0]: p[1] for p in pairs} if pairs is not None else None,
                  max_seq_len=d.get("max_seq_len"), causal=d.get("causal"), output_kind=d.get("output"),
                  output_values=tuple(values) if values is not None else None, n_heads=d.get("n_heads"),
                  mlp_exactness=d.get("mlp_exactness"))
  return r.merged(given)


def sniff_layout(path: str | os.PathLike) -> str | None:
  """"ours", "legacy", "bridge" or None, from a safetensors file's header (no tensor is read)."""
  f, size = files.open_regular(path, MAX_FILE_BYTES, "model file")
  with f:
    header, metadata, _ = files.read_safetensors_header(f, size, path)
  if model_io.META_KEY in metadata:
    return "ours"
  return layout_of(header)


def load(path: str | os.PathLike, settings_path: str | os.PathLike | None = None,
         overrides: Reading = Reading()):
  """A TransformerLens state dict saved as safetensors, plus its settings JSON -> CompiledModel.

  settings_path: default `settings_path_for(path)` when that file exists.
  overrides: settings given as flags (they win over the JSON).
  Raises:
    ModelFileError: for a file that is not a Tracr model in TransformerLens layout.
  """
  where = str(path)
  reading = Reading()
  if settings_path is None and os.path.exists(settings_path_for(path)):
    settings_path = settings_path_for(path)
  if settings_path is not None:
    try:
      doc = files.read_json(settings_path, MAX_SETTINGS_BYTES, "settings JSON")
    except ModelFileError:
      raise
    except files.FileError as e:
      raise ModelFileError(str(e)) from None
    reading = reading_from_json(doc, str(settings_path))
  reading = reading.merged(overrides)
  try:
    f, size = files.open_regular(path, MAX_FILE_BYTES, "TransformerLens model")
  except files.FileError as e:
    raise ModelFileError(str(e)) from None
  with f:
    try:
      header, _, data_start = files.read_safetensors_header(f, size, path)
    except files.FileError as e:
      raise ModelFileError(str(e)) from None
    layout = layout_of(header)
    if layout is None:
      raise ModelFileError(f"{where}: not a TransformerLens state dict (no embed.W_E/pos_embed.W_pos or "
                           "tok_embed.weight/pos.weight)")
    floats = ("F16", "F32", "F64")
    for name, entry in header.items():
      if entry["dtype"] not in floats and not _IGNORED.fullmatch(name):  # the mask buffer is BOOL; never read
        raise ModelFileError(f"{where}: tensor {name[:80]} is {entry['dtype']}, not F16/F32/F64")
    plan = _plan(layout, {k: tuple(e["shape"]) for k, e in header.items()}, reading.n_heads, where)
    tensors, unembed, unembed_bias = {}, None, None
    for name, entry in header.items():
      if name == _UNEMBED[layout]:
        if entry["dtype"] in floats and math.prod(entry["shape"]) <= plan["d_model"] * (limits.MAX_RESIDUAL + 2):
          unembed = files.read_tensor(f, entry, data_start, path).astype(np.float32)
          unembed = unembed.T if layout == "bridge" else unembed
      elif name == _UNEMBED_BIAS[layout]:
        if entry["dtype"] in floats and math.prod(entry["shape"]) <= limits.MAX_RESIDUAL + 2:
          unembed_bias = files.read_tensor(f, entry, data_start, path).astype(np.float32)
      elif not _IGNORED.fullmatch(name):
        tensors[name] = files.read_tensor(f, entry, data_start, path).astype(np.float32, copy=False)
  return _assemble(layout, tensors, plan, reading, unembed, where, unembed_bias)


def to_state_dict(model) -> tuple[dict[str, np.ndarray], dict]:
  """A CompiledModel or tracr model -> (legacy TransformerLens state dict, HookedTransformerConfig dict).

  Unlike TransformerLens' demo, `unembed.W_U` is the real projection onto the
  output block ([d_model, output values]; one column for a numerical output),
  so the HookedTransformer's logits argmax to output-encoder indices.
  """
  m = model if isinstance(model, CompiledModel) else tracr_model.from_tracr(model)
  p, h, k = m.params, m.num_heads, m.key_size
  d = p["token_embed"]["embeddings"].shape[1]
  sd = {"embed.W_E": p["token_embed"]["embeddings"], "pos_embed.W_pos": p["pos_embed"]["embeddings"]}
  for layer in range(m.num_layers):
    a, b = f"transformer/layer_{layer}/attn", f"blocks.{layer}"
    for tl, tr in (("Q", "query"), ("K", "key"), ("V", "value")):
      sd[f"{b}.attn.W_{tl}"] = p[f"{a}/{tr}"]["w"].reshape(d, h, k).transpose(1, 0, 2)
      sd[f"{b}.attn.b_{tl}"] = p[f"{a}/{tr}"]["b"].reshape(h, k)
    sd[f"{b}.attn.W_O"] = p[f"{a}/linear"]["w"].reshape(h, k, d)
    sd[f"{b}.attn.b_O"] = p[f"{a}/linear"]["b"]
    mlp = f"transformer/layer_{layer}/mlp"
    sd[f"{b}.mlp.W_in"], sd[f"{b}.mlp.b_in"] = p[f"{mlp}/linear_1"]["w"], p[f"{mlp}/linear_1"]["b"]
    sd[f"{b}.mlp.W_out"], sd[f"{b}.mlp.b_out"] = p[f"{mlp}/linear_2"]["w"], p[f"{mlp}/linear_2"]["b"]
  w_u = np.zeros((d, len(m.output_dims)), np.float32)
  w_u[m.output_dims, np.arange(len(m.output_dims))] = 1
  sd["unembed.W_U"], sd["unembed.b_U"] = w_u, np.zeros(len(m.output_dims), np.float32)
  widths = {p[f"transformer/layer_{l}/mlp/linear_1"]["w"].shape[1] for l in range(m.num_layers)}
  if len(widths) != 1:
    raise ModelFileError(f"MLP widths differ between layers ({sorted(widths)}); TransformerLens has one d_mlp")
  cfg = {"n_layers": m.num_layers, "d_model": d, "d_head": k, "n_heads": h, "d_mlp": widths.pop(),
         "n_ctx": m.settings.max_seq_len + 1, "d_vocab": len(m.input_encoding), "d_vocab_out": len(m.output_dims),
         "act_fn": "relu", "attention_dir": "causal" if m.settings.causal else "bidirectional",
         "normalization_type": None}
  return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}, cfg


def settings_document(model) -> dict:
  """The settings JSON `load` reads back: everything the weights do not say, and the TransformerLens config."""
  m = model if isinstance(model, CompiledModel) else tracr_model.from_tracr(model)
  _, cfg = to_state_dict(m)
  s = m.settings
  return {"format": SETTINGS_FORMAT, "format_version": SETTINGS_VERSION, "vocab": list(s.vocab),
          "bos": s.compiler_bos, "pad": s.compiler_pad,
          "input_encoding": [[t, i] for t, i in sorted(m.input_encoding.items(), key=lambda kv: kv[1])],
          "max_seq_len": s.max_seq_len, "causal": s.causal,
          "output": "categorical" if m.categorical_output else "numerical",
          "output_values": list(m.output_values) if m.categorical_output else None,
          "n_heads": m.num_heads, "mlp_exactness": s.mlp_exactness, "transformerlens_config": cfg}


def save(model, path: str | os.PathLike, settings_path: str | os.PathLike | None = None) -> tuple[str, str]:
  """Writes the legacy TransformerLens state dict (safetensors) and its settings JSON, atomically.

  Load it in TransformerLens with
    `HookedTransformer(HookedTransformerConfig(**settings["transformerlens_config"]))`
    `.load_state_dict({k: torch.tensor(v) for k, v in safetensors.numpy.load_file(path).items()}, strict=False)`.
  Returns (model path, settings path) as written.
  """
  from safetensors.numpy import save_file
  sd, _ = to_state_dict(model)
  doc = settings_document(model)
  if doc["output_values"] is None:
    del doc["output_values"]
  settings_path = settings_path or settings_path_for(path)
  written = files.atomic_write(path, lambda tmp: save_file(sd, tmp))
  return written, files.atomic_write_text(settings_path, json.dumps(doc, indent=1) + "\n")
