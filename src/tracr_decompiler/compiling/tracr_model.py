"""Reading tracr's own model objects (placeholder; being rewritten for issue 8)."""

from __future__ import annotations

import numpy as np

from tracr_decompiler.compiling.compiler import CompiledModel, CompileSettings
from tracr_decompiler.compiling.model_io import ModelFileError


def from_tracr(model) -> CompiledModel:
  """Converts a tracr AssembledTransformerModel (duck-typed: no JAX import needed)."""
  try:
    params = {m: {p: np.asarray(v, dtype=np.float32) for p, v in ps.items()} for m, ps in model.params.items()}
    cfg = model.model_config
    enc = model.input_encoder
    bos, pad = enc.bos_token, enc.pad_token
    encoding = dict(enc.encoding_map)
    max_seq_len = params["pos_embed"]["embeddings"].shape[0] - 1
    out_enc = model.output_encoder
    categorical = out_enc is not None and hasattr(out_enc, "decoding_map")
    output_values = [out_enc.decoding_map[i] for i in sorted(out_enc.decoding_map)] if categorical else []
  except (AttributeError, KeyError, TypeError) as e:
    raise ModelFileError(f"not a tracr AssembledTransformerModel ({e})") from None
  vocab = tuple(sorted((t for t in encoding if t not in (bos, pad)), key=lambda t: (str(type(t)), t)))
  settings = CompileSettings(vocab=vocab, max_seq_len=max_seq_len, compiler_bos=bos, compiler_pad=pad)
  return CompiledModel(params=params, settings=settings, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                       key_size=cfg.key_size, residual_labels=list(model.residual_labels), input_encoding=encoding,
                       output_values=output_values, output_dims=[], categorical_output=categorical)


def as_compiled(model) -> CompiledModel:
  """Accepts a CompiledModel or a tracr AssembledTransformerModel."""
  if isinstance(model, CompiledModel):
    return model
  return from_tracr(model)
