"""DatasetConfig: what `generate` draws and how the work is split (shards, workers, Ray).

Its content-determining part (`identity()`) is written as dataset_config.json
into each dataset folder. Each field's help is its command-line help
(cli_config.py), so defaults and docs live here only.
"""

from __future__ import annotations

import dataclasses
import math

from tracr_decompiler.cli_config import setting
from tracr_decompiler.generation.config import GenerationConfig


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
  n: int = setting(2000, "programs to draw (duplicates across shards are dropped afterwards)")
  out: str = setting("data/default", "output folder")
  workers: int = setting(2, "local processes (capped at the CPU count and the number of shards; ignored with Ray)")
  seed: int = setting(0, "seed: shard k draws from the random stream (seed, k)")
  shard_size: int = setting(250, "programs per shard: the unit of work, resume and atomic write")
  val_percent: int = setting(5, "percent of programs in the validation split")
  test_percent: int = setting(5, "percent of programs in the test split")
  generation: GenerationConfig = setting(GenerationConfig(), "settings of the random program generator")
  ray_address: str | None = setting(None, "run shard tasks on a Ray cluster, e.g. auto or ray://host:10001")

  def __post_init__(self):
    if self.n < 1:
      raise ValueError("n must be at least 1")
    if self.workers < 1:
      raise ValueError("workers must be at least 1")
    if self.shard_size < 1:
      raise ValueError("shard_size must be at least 1")
    if not 0 <= self.val_percent + self.test_percent <= 100:
      raise ValueError("val_percent + test_percent must be within 0..100")

  @property
  def num_shards(self) -> int:
    return math.ceil(self.n / self.shard_size)

  def shard_count(self, shard: int) -> int:
    return min(self.shard_size, self.n - shard * self.shard_size)

  def identity(self) -> dict:
    """What determines the content (not where or how fast it is made)."""
    return {"n": self.n, "seed": self.seed, "shard_size": self.shard_size,
            "val_percent": self.val_percent, "test_percent": self.test_percent,
            "generation": self.generation.to_json()}
