"""Any model a user hands us -> our CompiledModel in tracr's frame: the one dispatch, for the API and the CLI.

  CompiledModel                                      as is (fast compiles, dataset rows)
  tracr AssembledTransformerModel                    loading/tracr_model.py
  TransformerBridge / HookedTransformer / state dict loading/transformerlens.py (layouts: tl_layouts.py)
  a file (str or path): ours                         loading/model_io.py
  a file: a TransformerLens state dict (safetensors) loading/tl_files.py, with its settings JSON
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.errors import UsageError
from tracr_decompiler.loading import model_io, tl_files, tracr_model, transformerlens

FileFormat = Literal["auto", "tracr-decompiler", "transformerlens"]


def as_compiled(model, **reading) -> CompiledModel:
  """Accepts a CompiledModel, a tracr AssembledTransformerModel, a TransformerLens model or state dict,
  or a model file's path.

  reading: for TransformerLens inputs only, what the weights do not say (input_encoder, output_encoder,
  vocab, bos, pad, causal, output_values, n_heads, ...; see loading/transformerlens.py's `Reading`).
  Raises:
    UsageError: settings given for a model that holds its own; ModelFileError: a model that is not tracr's.
  """
  if isinstance(model, (str, os.PathLike)):
    encoders = {k: reading.pop(k) for k in ("input_encoder", "output_encoder") if k in reading}
    try:
      flags = transformerlens.Reading(**reading).merged(transformerlens.reading_from_encoders(**encoders))
    except TypeError as e:
      raise UsageError(f"unknown setting for a model file: {e}") from None
    return load_file(model, flags=flags)
  if transformerlens.is_transformerlens(model):
    return transformerlens.from_transformerlens(model, **reading)
  if reading:
    raise UsageError(f"{sorted(reading)} apply to TransformerLens models only; this model holds its own settings")
  if isinstance(model, CompiledModel):
    return model
  return tracr_model.from_tracr(model)


def load_file(path: str | os.PathLike, file_format: FileFormat = "auto", settings: str | os.PathLike | None = None,
              flags: transformerlens.Reading = transformerlens.Reading()) -> CompiledModel:
  """Our model file or a TransformerLens state dict (safetensors + settings JSON), by format or key names.

  settings: the settings JSON of a TransformerLens file (default: beside it, `model.json`);
  flags: settings given directly (they win over the JSON).
  """
  if file_format == "auto":
    layout = tl_files.sniff_layout(path)
    if layout is None:
      raise model_io.ModelFileError(
          f"{path} is neither a tracr-decompiler model file nor a TransformerLens state dict (embed.W_E, "
          "blocks.0.attn.W_Q, ...; embed.weight, blocks.0.attn.q.weight, ...; or tok_embed.weight, layers.0...)")
    file_format = "tracr-decompiler" if layout == "ours" else "transformerlens"
  if file_format == "tracr-decompiler":
    if settings or any(v is not None for v in dataclasses.astuple(flags)):
      raise UsageError("--settings, --vocab, --bos, --pad, --causal, --n-heads and the output flags are for "
                       "TransformerLens files; a tracr-decompiler model file holds its own settings")
    return model_io.load_model(str(path))
  return tl_files.load(path, settings, flags)
