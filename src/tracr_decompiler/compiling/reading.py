"""Any model a user hands us -> our CompiledModel: the one dispatch over input kinds.

  CompiledModel                 as is (our model files, fast compiles)
  tracr AssembledTransformerModel   compiling/tracr_model.py
  TransformerLens model, state dict or file   compiling/transformerlens.py
"""

from __future__ import annotations

from tracr_decompiler.compiling import tracr_model, transformerlens
from tracr_decompiler.compiling.compiler import CompiledModel


def as_compiled(model, **reading) -> CompiledModel:
  """Accepts a CompiledModel, a tracr AssembledTransformerModel, or a TransformerLens model or state dict.

  reading: for TransformerLens inputs only, what the weights do not say
  (input_encoder, output_encoder, vocab, bos, pad, causal, output_values, ...;
  see compiling/transformerlens.py).
  """
  if transformerlens.is_transformerlens(model):
    return transformerlens.from_transformerlens(model, **reading)
  if reading:
    raise TypeError(f"{sorted(reading)} apply to TransformerLens models only")
  if isinstance(model, CompiledModel):
    return model
  return tracr_model.from_tracr(model)
