"""TrainConfig: how a decompiler is trained (optimizer, schedule, validation, budget).

Written as train_config.json into each run folder; `tracr-decompiler train
--config runs/x/train_config.json` reads it back. Each field's help is its
command-line help (cli_config.py), so defaults and docs live here only.
"""

from __future__ import annotations

import dataclasses

from tracr_decompiler.cli_config import setting


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  data: str = setting("data/main", "dataset folder from `generate`; several, comma-separated, train on all of "
                      "them (e.g. parts drawn with different settings)")
  out: str = setting("runs/main", "run folder (checkpoints, metrics.csv, training.png); resumes when it holds a run")
  mode: str = setting("both", "decoders to train: nar, ar or both (one encoder, both decoders)",
                      choices=("nar", "ar", "both"))
  steps: int = setting(6000, "optimizer steps")
  batch_size: int = setting(32, "programs per step (over all ranks)")
  lr: float = setting(5e-4, "peak learning rate (AdamW)")
  min_lr: float = setting(2e-5, "learning rate at the end of the cosine decay")
  warmup: int = setting(200, "steps of linear warmup")
  weight_decay: float = setting(0.01, "AdamW weight decay")
  grad_clip: float = setting(1.0, "gradient norm clip")
  eval_every: int = setting(250, "steps between validations and checkpoints")
  eval_examples: int = setting(500, "validation programs for NAR exact match (AR uses a fifth)")
  seed: int = setting(0, "seed of initialisation and data order")
  threads: int | None = setting(None, "torch CPU threads; none: on CPU the fastest of 1, 2, 4, ... up to the "
                                "cores per rank, timed on the first batch (loop.pick_threads); on CUDA torch's own")
  bf16: bool | None = setting(None, "bf16 autocast; none: on where the device has bf16 kernels (CUDA with bf16, "
                              "CPUs with oneDNN bf16: 1.2-1.6x faster steps on this project's machine)")
  limit: int | None = setting(None, "use only the first N training programs (of each dataset part)")
  data_workers: int | None = setting(None, "processes that featurise the data before the first step (once: "
                                     "cached in the run folder); none: every available core")
  max_minutes: float | None = setting(None, "stop (and checkpoint) after this much wall time")
  init_from: str | None = setting(None, "start from this trained model's weights (a model folder, e.g. the shipped "
                                  "src/tracr_decompiler/pretrained, or a run): its architecture replaces the model "
                                  "size flags; ignored when --out resumes a run")

  @property
  def data_dirs(self) -> list[str]:
    return [d for d in self.data.split(",") if d]

  def __post_init__(self):
    if self.mode not in ("nar", "ar", "both"):
      raise ValueError(f"mode must be nar, ar or both, got {self.mode!r}")
    if self.steps < 1 or self.batch_size < 1:
      raise ValueError("steps and batch_size must be positive")
    if self.threads is not None and self.threads < 1:
      raise ValueError(f"threads must be positive (or None to measure), got {self.threads}")
    if self.data_workers is not None and self.data_workers < 1:
      raise ValueError(f"data_workers must be positive (or None for every core), got {self.data_workers}")
