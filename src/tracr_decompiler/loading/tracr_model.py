"""Reading tracr's own model objects into our CompiledModel, faithfully.

An `AssembledTransformerModel` (tracr-pypi 1.0.0) carries its parameters, a
`model_config` (heads, layers, key size, `causal`), `residual_labels`
("name:value" for categorical dimensions, "name" for numerical ones), an input
`CategoricalEncoder` (`encoding_map`, `bos_token`, `pad_token`) and an output
encoder: a `CategoricalEncoder` (`encoding_map` value -> output index; there is
no `decoding_map`), a `NumericalEncoder`, or None. Objects are duck-typed, so
nothing here imports JAX, and the caller's object is never changed.

The unembedding is not in the parameters, so the output block is found from
the model itself: the residual block whose labels are the output encoder's
values in order (a single unlabelled dimension for a numerical output); when
several blocks fit, the one no layer reads (tracr compiles only what the
output uses, so the output is the one SOp nobody reads). Verification then
checks our reading against the model's own forward pass (decompiling/verify.py).
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel, CompileSettings
from tracr_decompiler.loading.model_io import ModelFileError


def is_tracr_model(model) -> bool:
  return all(hasattr(model, a) for a in ("params", "model_config", "input_encoder", "forward"))


def from_tracr(model) -> CompiledModel:
  """Converts a tracr AssembledTransformerModel (duck-typed: no JAX import needed)."""
  try:
    params = {m: {p: np.array(v, dtype=np.float32) for p, v in ps.items()} for m, ps in model.params.items()}
    cfg = model.model_config
    enc = model.input_encoder
    bos, pad = enc.bos_token, enc.pad_token
    encoding = {t: int(i) for t, i in enc.encoding_map.items()}
    max_seq_len = params[layout.POS_EMBED][layout.EMBEDDINGS].shape[0] - 1
    labels = [str(x) for x in model.residual_labels]
    num_heads, num_layers, key_size = int(cfg.num_heads), int(cfg.num_layers), int(cfg.key_size)
    causal = bool(getattr(cfg, "causal", False))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    raise ModelFileError(f"not a tracr AssembledTransformerModel ({type(e).__name__}: {e})") from None
  if bos is None or bos not in encoding:
    raise ModelFileError("the model's input encoder has no BOS token; tracr models always have one")
  vocab = tuple(sorted((t for t in encoding if t not in (bos, pad)), key=lambda t: (type(t).__name__, t)))
  settings = CompileSettings(vocab=vocab, max_seq_len=max_seq_len, compiler_bos=bos,
                             compiler_pad=pad if pad is not None else "compiler_pad", causal=causal)
  out_enc = model.output_encoder
  kind = ("categorical" if out_enc is not None and hasattr(out_enc, "encoding_map")
          else "numerical" if out_enc is not None else None)
  output_values = ([v for v, _ in sorted(out_enc.encoding_map.items(), key=lambda kv: kv[1])]
                   if kind == "categorical" else [])
  name, dims, categorical = locate_output(labels, params, num_layers, kind, output_values)
  if categorical and not output_values:  # no output encoder: tracr's apply returns indices
    output_values = list(range(len(dims)))
  return CompiledModel(params=params, settings=settings, num_heads=num_heads, num_layers=num_layers,
                       key_size=key_size, residual_labels=labels, input_encoding=encoding,
                       output_values=output_values, output_dims=dims, categorical_output=categorical,
                       output_name=name)


def _blocks(labels: list[str]) -> dict[str, list[int]]:
  """SOp name -> its residual dims, from labels "name:value" / "name"."""
  blocks: dict[str, list[int]] = {}
  for i, label in enumerate(labels):
    blocks.setdefault(label.split(":", 1)[0], []).append(i)
  return blocks


def _read_dims(params, num_layers: int) -> set[int]:
  """Residual dims some layer reads (query, key, value, MLP input)."""
  read: set[int] = set()
  for layer in range(num_layers):
    for m in (layout.attn(layer, "query"), layout.attn(layer, "key"), layout.attn(layer, "value"),
              layout.mlp(layer, "linear_1")):
      w = params.get(m, {}).get("w")
      if w is not None:
        read |= {int(d) for d in np.flatnonzero(np.abs(w).sum(1))}
  return read


def locate_output(labels: list[str], params, num_layers: int, kind: str | None,
                  output_values: list) -> tuple[str, list[int], bool]:
  """(name, dims, categorical) of the output block; ("", [], kind == categorical) when not found."""
  fixed = {"tokens", "indices", "one"}
  candidates = []
  for name, dims in _blocks(labels).items():
    if name in fixed:
      continue
    numerical = len(dims) == 1 and labels[dims[0]] == name
    if kind in ("numerical", None) and numerical:
      candidates.append((name, dims, False))
    if kind in ("categorical", None) and not numerical:
      if kind is None or [labels[d] for d in dims] == [f"{name}:{v}" for v in output_values]:
        candidates.append((name, dims, True))
  if len(candidates) > 1:  # the output is the block no layer reads
    read = _read_dims(params, num_layers)
    unread = [c for c in candidates if not read & set(c[1])]
    candidates = unread or candidates
  if len(candidates) != 1:
    return "", [], kind == "categorical"
  return candidates[0]
