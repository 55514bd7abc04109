"""The released model as a torch Decompiler: saved by training, loaded for AR decoding and training.

The format (`model.safetensors` + `config.json`, no pickle) and its checks live in
release.py, which reads it without torch; this module adds the torch side. It
lives with the model, below both training (which writes it, training/checkpoint.py)
and decompiling (which reads it). config.json holds the ModelConfig, the dataset
schema version and the vocabularies the heads were trained on; a model trained
with another function registry is refused rather than silently misread.
"""

from __future__ import annotations

import json
import pathlib

import torch
from safetensors.torch import load_file, save_file

from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.model.model import Decompiler
from tracr_decompiler.model.release import (MAX_CHECKPOINT_BYTES, CheckpointError, check_tensor_file, file_sha256,
                                            model_folder, read_config, read_json, read_tensor_file)

__all__ = ["MAX_CHECKPOINT_BYTES", "CheckpointError", "check_tensor_file", "file_sha256", "read_json",
           "trained_on", "save_pretrained", "load_tensors", "load_weights", "load_decompiler"]


def _config_json(model_cfg: ModelConfig) -> dict:
  from tracr_decompiler.dataset import schema  # imports pyarrow, which loading (decompile) never needs
  return {"model_config": model_cfg.to_json(), "schema_version": schema.SCHEMA_VERSION,
          "vocab": {"ops": list(programs.OPS), "encodings": list(programs.ENCODINGS), "fns": list(programs.FNS),
                    "ar": list(programs.AR_VOCAB)}}


def trained_on(parts: list[tuple[dict | None, dict | None]]) -> dict:
  """The record of what a decompiler was trained on: the feature version and, per kind of dataset part,
  the generator's settings and the ranges they cover ((generation, coverage) pairs). Parts drawn alike
  with other seeds (the rounds of scripts/generate_training_data.sh) are one entry."""
  entries: list[dict] = []
  for g, c in parts:
    if {"generation": g, "covers": c} not in entries:
      entries.append({"generation": g, "covers": c})
  return {"feature_version": weights.FEATURE_VERSION, "parts": entries}


def save_pretrained(model: Decompiler, folder: pathlib.Path) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, folder / "model.safetensors")
  config = {**_config_json(model.cfg), "trained_on": model.trained_on}
  (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_tensors(path: pathlib.Path) -> dict[str, torch.Tensor]:
  return read_tensor_file(path, load_file)


def load_weights(model: Decompiler, folder: pathlib.Path) -> None:
  path = folder / "model.safetensors"
  tensors = load_tensors(path)
  try:
    model.load_state_dict(tensors)
  except (RuntimeError, ValueError, KeyError) as e:
    raise CheckpointError(f"{path} does not fit its config.json ({str(e).splitlines()[0][:120]})") from None


def load_decompiler(folder: str | pathlib.Path) -> Decompiler:
  """A trained decompiler from a folder with model.safetensors and config.json."""
  folder = model_folder(folder)
  model_cfg, trained = read_config(folder)
  model = Decompiler(model_cfg)
  load_weights(model, folder)
  model.trained_on = trained
  model.eval()
  return model
