"""ModelConfig: the decompiler's architecture, saved as JSON beside its weights."""

from __future__ import annotations

import dataclasses

from tracr_decompiler.encoding import programs, weights


NEG = -1e9  # the score of a masked attention key or argument pointer
RELATION_READS = len(weights.ROLES)  # relation channels 0..4: "node i reads node j in role r"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  input_mode: str = "graph"  # "graph" (structure-aware nodes) or "flat" (the paper's flatten-and-chunk baseline)
  d_model: int = 256
  n_heads: int = 8
  n_encoder_layers: int = 4
  n_decoder_layers: int = 2  # autoregressive decoder only
  d_ff: int = 1024
  dropout: float = 0.0  # the largest CPU cost (2 cores, d_model 256, 4+4 layers: 14 s/step at 0.1, 5.7 s at 0); data is plentiful
  feature_dim: int = weights.FEATURE_DIM
  num_relations: int = weights.NUM_RELATIONS
  num_kinds: int = len(weights.KINDS)
  max_layers: int = 32
  max_nodes: int = programs.MAX_NODES
  flat_chunk: int = 256  # floats per token in flat mode
  flat_max_tokens: int = 256  # tokens kept in flat mode (the meta-model's 256 x 256)
  n_ops: int = len(programs.OPS)
  n_encodings: int = len(programs.ENCODINGS)
  n_fns: int = len(programs.FNS)
  ar_vocab: int = len(programs.AR_VOCAB)
  max_target_len: int = programs.TOKENS_PER_LINE * (programs.MAX_NODES - 2) + 1

  def __post_init__(self):
    if self.input_mode not in ("graph", "flat"):
      raise ValueError(f"input_mode must be 'graph' or 'flat', got {self.input_mode!r}")
    if self.d_model % self.n_heads:
      raise ValueError("d_model must be divisible by n_heads")
    for name in ("d_model", "n_heads", "n_encoder_layers", "d_ff"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be positive")
    if not 0 <= self.dropout < 1:
      raise ValueError("dropout must be in [0, 1)")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d: dict) -> "ModelConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    return cls(**d)
