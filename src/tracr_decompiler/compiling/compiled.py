"""What a compile produces, as plain data: the settings, the compiled model, the error. No tracr, no JAX.

compiling/compiler.py fills these; loading/ builds them from what users hand us; everything downstream reads
them. Kept apart from the compiler so that reading a model file or a dataset row never imports tracr.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.errors import TracrDecompilerError

COMPILER_BOS = "compiler_bos"
COMPILER_PAD = "compiler_pad"


class CompileError(TracrDecompilerError, ValueError):
  """tracr cannot compile the program (its reasons joined in the message)."""


@dataclasses.dataclass(frozen=True)
class CompileSettings:
  vocab: tuple = (0, 1, 2, 3, 4)
  max_seq_len: int = 5
  compiler_bos: str = COMPILER_BOS
  compiler_pad: str = COMPILER_PAD
  mlp_exactness: int = 100
  causal: bool = False  # attention masked to keys <= query (weights are the same; outputs differ)

  def __post_init__(self):
    if self.max_seq_len < 1:
      raise ValueError("max_seq_len must be at least 1")
    if not self.vocab:
      raise ValueError("vocab must not be empty")
    if self.compiler_bos in self.vocab or self.compiler_pad in self.vocab:
      raise ValueError("compiler_bos/compiler_pad must not be in the vocab")

  def to_json(self) -> dict:
    return {**dataclasses.asdict(self), "vocab": list(self.vocab)}

  @classmethod
  def from_json(cls, d: dict) -> "CompileSettings":
    return cls(**{"causal": False, **d, "vocab": tuple(d["vocab"])})  # files before `causal` were not causal


@dataclasses.dataclass
class CompiledModel:
  """What a Tracr compile produces, as plain NumPy (no JAX objects).

  params: tracr's layout, e.g. params["transformer/layer_0/attn/query"]["w"] [D, H*K].
  """
  params: dict[str, dict[str, np.ndarray]]
  settings: CompileSettings
  num_heads: int
  num_layers: int
  key_size: int
  residual_labels: list[str]  # for analysis only; never a decompiler input
  input_encoding: dict  # token -> row of token_embed (BOS and PAD included)
  output_values: list  # categorical: value of each output dim; numerical: []
  output_dims: list[int]  # residual dims the output SOp occupies
  categorical_output: bool
  # label -> (layer, "attn"|"mlp"): where each SOp's computation sits.
  allocation: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
  output_name: str = ""  # the output SOp's residual label (where it was found), for messages only
  # The weights exactly as given (in tracr's frame) where `params` are them with entries near zero snapped
  # to zero for reading (loading/frame.py); the oracle and weight identity use these. None: params as given.
  given_params: dict[str, dict[str, np.ndarray]] | None = None

  @property
  def as_given(self) -> "CompiledModel":
    """The model with the weights exactly as given: what the oracle runs and weight identity compares."""
    return self if self.given_params is None else dataclasses.replace(self, params=self.given_params,
                                                                      given_params=None)
