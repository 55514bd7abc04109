"""TransformerLens models in memory -> CompiledModel: how most people hold Tracr models, mapped exactly.

Accepted (layouts in loading/tl_layouts.py):
  - a TransformerLens 4 `TransformerBridge` (its `tl_parameters()` and `cfg`), e.g. from
    `TransformerBridge.boot_native(cfg)` + `load_state_dict(convert_tl_checkpoint(sd, cfg), strict=True)`;
  - a legacy `HookedTransformer` (TransformerLens <= 3: `state_dict()` and `cfg`);
  - a state dict in any of the three layouts (legacy names, the bridge's `state_dict()`, the native names).

What the weights do not say comes from tracr's encoders (objects with `encoding_map`, `bos_token`,
`pad_token`; duck-typed), a settings JSON (loading/tl_files.py) or flags: the vocabulary and BOS/PAD (which
token is which embedding row), causal masking, and the output's values. The output block and its order come
from the weights and W_U (loading/tl_output.py), and the model is moved into tracr's frame
(loading/frame.py). A config that describes a model no tracr program compiles to (layer norm, another
activation, grouped-query attention, rotary or other positions, gated MLPs) is refused with one line.

Nothing here imports TransformerLens or unpickles anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from tracr_decompiler.compiling.compiled import CompiledModel, CompileSettings
from tracr_decompiler.errors import UsageError
from tracr_decompiler.loading import frame, model_io, tl_layouts, tl_output
from tracr_decompiler.loading.model_io import ModelFileError


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
  n_heads: int | None = None  # needed for the Linear layouts (q.weight is [H*K, D])
  mlp_exactness: int | None = None  # informational (what tracr compiled with), default 100

  def merged(self, other: "Reading") -> "Reading":
    """`other`'s given fields override ours."""
    return dataclasses.replace(self, **{k: v for k, v in dataclasses.asdict(other).items() if v is not None})


def is_transformerlens(model) -> bool:
  """A TransformerBridge or HookedTransformer (`state_dict()` and `cfg`) or a TransformerLens state dict."""
  if isinstance(model, Mapping):
    return tl_layouts.layout_of(k for k in model if isinstance(k, str)) is not None
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
      vocab = tuple(sorted((t for t in encoding if t not in (bos, pad)), key=lambda t: (type(t).__name__, t)))
    except (AttributeError, TypeError, ValueError) as e:
      raise UsageError(f"input_encoder is not a tracr CategoricalEncoder ({type(e).__name__}: {e})") from None
    r = dataclasses.replace(r, vocab=vocab, bos=bos, pad=pad, input_encoding=encoding)
  if output_encoder is not None:
    if hasattr(output_encoder, "encoding_map"):
      try:
        values = tuple(v for v, _ in sorted(output_encoder.encoding_map.items(), key=lambda kv: kv[1]))
      except (AttributeError, TypeError, ValueError) as e:
        raise UsageError(f"output_encoder is not a tracr encoder ({type(e).__name__}: {e})") from None
      r = dataclasses.replace(r, output_kind="categorical", output_values=values)
    else:
      r = dataclasses.replace(r, output_kind="numerical")
  return r


# A TransformerLens 4 config field -> (the value a tracr model has, why another one is refused).
_TRACR_CONFIG = {
    "normalization_type": ((None, "None"), "the model uses layer norm ({}); Tracr models have none"),
    "act_fn": ((None, "relu"), "the model's activation is {!r}; Tracr MLPs use relu"),
    "positional_embedding_type": ((None, "standard"),
                                  "the model's positions are {!r}; Tracr models add a learned position embedding"),
    "gated_mlp": ((None, False), "the model's MLPs are gated ({}); Tracr MLPs are ReLU(x W_in) W_out"),
    "final_rms": ((None, False), "the model ends with an RMS norm ({}); Tracr models have none"),
    "parallel_attn_mlp": ((None, False), "the model runs attention and MLP in parallel ({}); Tracr runs them in turn"),
}


def reading_from_config(cfg) -> Reading:
  """What a HookedTransformerConfig or TransformerBridgeConfig (object or dict) tells, after refusing configs
  of models that are not tracr's: heads, causal masking, max_seq_len."""
  get = (lambda k: cfg.get(k)) if isinstance(cfg, Mapping) else (lambda k: getattr(cfg, k, None))
  for field, (allowed, why) in _TRACR_CONFIG.items():
    if get(field) not in allowed:
      raise ModelFileError(why.format(get(field)))
  n_ctx, n_heads, kv_heads = get("n_ctx"), get("n_heads"), get("n_key_value_heads")
  if kv_heads is not None and kv_heads != n_heads:
    raise ModelFileError(f"the model uses grouped-query attention ({kv_heads} key/value heads for {n_heads} "
                         "query heads); every Tracr head has its own keys and values")
  if n_heads is not None and not (isinstance(n_heads, int) and not isinstance(n_heads, bool) and n_heads > 0):
    raise UsageError(f"the model's cfg.n_heads is {n_heads!r}, not a positive integer")
  direction = get("attention_dir")
  return Reading(causal=None if direction is None else direction == "causal",
                 max_seq_len=int(n_ctx) - 1 if isinstance(n_ctx, int) and n_ctx > 1 else None,
                 n_heads=n_heads)


def _input_encoding(r: Reading, rows: int, where: str) -> tuple[dict, Any, Any, tuple]:
  tokens = list(r.vocab or ()) + list(r.input_encoding or ()) + [r.bos, r.pad]
  bad = next((t for t in tokens if t is not None and not model_io.is_token(t)), None)
  if bad is not None:
    raise UsageError(f"{where}: tokens (vocab, bos, pad, input_encoding) must be numbers or short strings, "
                     f"got {str(bad)[:40]!r}")
  if r.input_encoding is not None:
    encoding = dict(r.input_encoding)
    bos = r.bos if r.bos is not None else "compiler_bos"
    pad = r.pad if r.pad is not None else "compiler_pad"
    vocab = r.vocab or tuple(sorted((t for t in encoding if t not in (bos, pad)),
                                    key=lambda t: (type(t).__name__, t)))
    if set(vocab) | {bos, pad} != set(encoding):
      raise UsageError(f"{where}: the vocabulary {list(vocab)[:8]} (with BOS {bos!r} and PAD {pad!r}) is not the "
                       f"input encoding's tokens {list(encoding)[:10]}: give one, or make them agree")
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


def unembed(layout: str, weight, bias) -> tuple[np.ndarray | None, np.ndarray | None]:
  """W_U as [d_model, d_out] and its bias, as NumPy (None where absent)."""
  w = None if weight is None else tl_layouts.as_numpy(weight)
  if w is not None and layout != "legacy":
    w = w.T  # the Linear layouts store [d_out, d_model]
  return w, None if bias is None else tl_layouts.as_numpy(bias)


def from_state_dict(state_dict: Mapping[str, Any], reading: Reading = Reading(),
                    where: str = "TransformerLens state dict") -> CompiledModel:
  """A TransformerLens state dict (any layout of loading/tl_layouts.py) -> CompiledModel.

  Raises:
    ModelFileError: names or shapes that are not a Tracr model's; UsageError: missing settings.
  """
  if not isinstance(state_dict, Mapping):
    raise UsageError(f"{where}: a state dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
  layout = tl_layouts.layout_of(k for k in state_dict if isinstance(k, str))
  if layout is None:
    raise ModelFileError(f"{where}: not a TransformerLens state dict (no "
                         f"{' or '.join('/'.join(e) for e in tl_layouts.EMBEDDINGS.values())})")
  def numbers(read):
    try:
      return read()
    except (TypeError, ValueError) as e:  # object-dtype or ragged tensors, shapes that are not tuples of ints
      raise ModelFileError(f"{where}: a tensor is not an array of numbers ({type(e).__name__}: {str(e)[:100]})") from None
  shapes = numbers(lambda: {k: tuple(int(n) for n in getattr(v, "shape", np.shape(v))) for k, v in state_dict.items()})
  sizes = tl_layouts.plan(layout, shapes, reading.n_heads, where)
  tensors = numbers(lambda: {k: tl_layouts.as_numpy(v) for k, v in state_dict.items()
                             if not tl_layouts.is_extra(layout, k)})
  weight, bias = (state_dict.get(name) for name in tl_layouts.UNEMBED[layout])
  return assemble(layout, tensors, sizes, reading, unembed(layout, weight, bias), where)


def assemble(layout: str, tensors: Mapping[str, np.ndarray], sizes: dict, r: Reading,
             unembed: tuple[np.ndarray | None, np.ndarray | None], where: str) -> CompiledModel:
  """Checked tensors (names and shapes passed `tl_layouts.plan`) -> CompiledModel in tracr's frame."""
  for name, value in tensors.items():
    if not np.isfinite(value).all():
      raise ModelFileError(f"{where}: {name} holds NaN or inf")
  params = tl_layouts.convert(layout, tensors, sizes)
  encoding, bos, pad, vocab = _input_encoding(r, sizes["vocab_rows"], where)
  max_seq_len = sizes["positions"] - 1
  if r.max_seq_len is not None and r.max_seq_len != max_seq_len:
    raise UsageError(f"{where}: max_seq_len {r.max_seq_len} given, but the position embedding has "
                     f"{sizes['positions']} rows (max_seq_len + 1)")
  try:
    settings = CompileSettings(vocab=vocab, max_seq_len=max_seq_len, compiler_bos=bos, compiler_pad=pad,
                               mlp_exactness=r.mlp_exactness or 100, causal=bool(r.causal))
  except (TypeError, ValueError) as e:
    raise UsageError(f"{where}: {e}") from None
  find = lambda read: tl_output.output_block(read, encoding, settings, sizes, r.output_values, r.output_kind,
                                            *unembed, where)
  noisy = None
  try:
    dims, categorical, values, text = find(params)
  except ModelFileError:
    # Not readable exactly (rounding, noise): read again with near-zero entries as zero (frame.SNAP). The
    # weights as given stay the oracle's, so this can only cost a decompile, never buy a verification.
    noisy = frame.snap(params)
    w_u, b_u = unembed
    read_unembed = frame.snap({"unembed": {"w": w_u, "b": b_u if b_u is not None else np.zeros(0)}}) if (
        w_u is not None) else None
    if read_unembed is not None:  # W_U is read as a reader of the output block: its noise too
      unembed = (read_unembed["unembed"]["w"], b_u if b_u is None else read_unembed["unembed"]["b"])
    if noisy is None and read_unembed is None:
      raise
    dims, categorical, values, text = find(noisy if noisy is not None else params)
  model = frame.to_tracr_frame(CompiledModel(
      params=params, settings=settings, num_heads=sizes["heads"], num_layers=sizes["layers"],
      key_size=sizes["key_size"], residual_labels=[], input_encoding=encoding, output_values=values,
      output_dims=dims, categorical_output=categorical, output_name=text))
  return model if noisy is None else frame.snapped(model)


def _parameters(model) -> Mapping:
  """A TransformerBridge's legacy-named parameters (its heads are then in the shapes), else `state_dict()`."""
  get = getattr(model, "tl_parameters", None)
  params = get() if callable(get) else model.state_dict()
  if not isinstance(params, Mapping):
    raise UsageError(f"the model's {'tl_parameters' if callable(get) else 'state_dict'}() returned "
                     f"{type(params).__name__}, not a mapping of names to tensors")
  return params


def from_transformerlens(model, *, input_encoder=None, output_encoder=None, **settings) -> CompiledModel:
  """A TransformerBridge or HookedTransformer (duck-typed) or a TransformerLens state dict -> CompiledModel.

  Args:
    model: an object with `cfg` and `tl_parameters()` (TransformerBridge) or `state_dict()`
      (HookedTransformer), or a state dict.
    input_encoder, output_encoder: tracr's encoders (TracrBench ships them with every model).
    **settings: any field of `Reading` (vocab, bos, pad, max_seq_len, causal, output_values, ...);
      they override what the encoders and the config say.
  Example usage:
    >>> compiled = from_transformerlens(bridge, input_encoder=tracr_model.input_encoder,
    ...                                 output_encoder=tracr_model.output_encoder)
  """
  try:
    flags = Reading(**settings)
  except TypeError as e:
    raise UsageError(f"unknown setting for a TransformerLens model: {e}") from None
  reading = Reading()
  if not isinstance(model, Mapping):
    reading = reading_from_config(model.cfg)
    model = _parameters(model)
  reading = reading.merged(reading_from_encoders(input_encoder, output_encoder)).merged(flags)
  return from_state_dict(model, reading)
