"""Settings of the random program generator."""

from __future__ import annotations

import dataclasses

from tracr_decompiler.cli_config import setting
from tracr_decompiler.compiling.compiled import CompileSettings
from tracr_decompiler.program import ops

# Relative draw frequencies. Tuned so the *accepted* op mix matches the
# generator the shipped model was trained on (benchmarks/generation_bench.py
# prints both side by side): that generator wasted most selector draws on
# arguments holding None, so its selector_width share came out lower than its
# weight said (0.5 then; 0.35 gives the same share now).
DEFAULT_OP_WEIGHTS = {
    "map": 1.3,
    "sequence_map": 0.8,
    "linear_sequence_map": 0.6,
    "numerical_aggregate": 1.0,
    "categorical_aggregate": 0.9,
    "selector_width": 0.35,
}


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
  min_sops: int = setting(2, "ops per program, drawn uniformly in [min_sops, max_sops]")
  max_sops: int = setting(8, "most ops per program (at most 30)")
  op_weights: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_OP_WEIGHTS),
                                       metadata={"help": "relative frequency of each op kind (JSON object)"})
  settings: CompileSettings = setting(CompileSettings(), "vocab, max_seq_len, compiler tokens")
  table_fraction: float = setting(0.0, "fraction of Map / SequenceMap functions and Select predicates drawn as "
                                       "random lookup / truth tables over their inputs' value sets (issue 10)")
  max_table_entries: int = setting(64, "largest table drawn (keys, or key-query pairs)")
  mixed_settings: bool = setting(False, "each program draws its own compile settings from the documented ranges "
                                        "(generation/settings.py) instead of --vocab/--max-seq-len")
  prefer_unused: float = setting(0.8, "chance an argument is drawn from not-yet-used SOps (all must reach the output)")
  numerical_map_fraction: float = setting(0.33, "fraction of Maps with numerical output encoding")
  max_values: int = setting(10, "distinct values of a categorical SOp (keeps MLPs small)")
  max_numerical_values: int = setting(24, "distinct values of a numerical SOp (discretising MLP size)")
  max_none_fraction: float = setting(0.5, "fraction of None outputs allowed for any SOp")
  max_mlp_hidden: int = setting(128, "reject models with wider MLPs")
  max_half_layers: int = setting(24, "reject deeper models (attention and MLP half-layers)")
  proposals_per_op: int = setting(8, "tries of one drawn op kind before drawing another kind")
  max_attempts: int = setting(10_000, "candidate programs drawn before giving up (settings that admit no program)")
  refills: int = setting(3, "times a grown program with dangling SOps is pruned to the output's ancestors and regrown")
  max_program_seconds: float = setting(60.0, "wall-clock budget of one program: past it a new length is drawn "
                                       "(the one nondeterministic path; counted in Sample.time_budget_hits)")
  redraw_after: int = setting(200, "attempts at one program length before drawing the length again (the attempt budget)")
  tracr_dynamic_checks: int = setting(4, "inputs run through tracr's own dynamic validation")

  def __post_init__(self):
    if not 1 <= self.min_sops <= self.max_sops:
      raise ValueError(f"need 1 <= min_sops <= max_sops, got {self.min_sops}, {self.max_sops}")
    if self.max_sops > 30:
      raise ValueError("max_sops above 30 is not supported")
    unknown = set(self.op_weights) - set(ops.GENERATOR_KINDS)
    if unknown:
      raise ValueError(f"unknown op kinds in op_weights: {sorted(unknown)}")
    if not any(w > 0 for w in self.op_weights.values()) or any(w < 0 for w in self.op_weights.values()):
      raise ValueError("op_weights must be non-negative with at least one positive")

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    d["settings"] = self.settings.to_json()
    return d

  @classmethod
  def from_json(cls, d: dict) -> "GenerationConfig":
    return cls(**{**d, "settings": CompileSettings.from_json(d["settings"])})
