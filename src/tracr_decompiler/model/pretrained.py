"""The released-model format: `model.safetensors` + `config.json`, loaded without pickle.

This is what inference needs from a trained decompiler (the shipped model in
`pretrained/`, or a run folder's `last/`), so it lives with the model, below
both training (which writes it, training/checkpoint.py) and decompiling (which
reads it). config.json holds the ModelConfig, the dataset schema version and
the vocabularies the heads were trained on; a model trained with another
function registry is refused rather than silently misread.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tracr_decompiler import files
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.errors import FileError
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.model.model import Decompiler

MAX_CHECKPOINT_BYTES = 4 << 30  # per tensor file; the shipped model is 30 MB


class CheckpointError(FileError):
  """A checkpoint folder that is missing, truncated, corrupt or from another version (also a ValueError)."""


def _config_json(model_cfg: ModelConfig) -> dict:
  from tracr_decompiler.dataset import schema  # imports pyarrow, which loading (decompile) never needs
  return {"model_config": model_cfg.to_json(), "schema_version": schema.SCHEMA_VERSION,
          "vocab": {"ops": list(programs.OPS), "encodings": list(programs.ENCODINGS), "fns": list(programs.FNS),
                    "ar": list(programs.AR_VOCAB)}}


def trained_on(parts: list[tuple[dict | None, dict | None]]) -> dict:
  """The record of what a decompiler was trained on: the feature version and, per dataset part,
  the generator's settings and the ranges they cover ((generation, coverage) pairs)."""
  return {"feature_version": weights.FEATURE_VERSION,
          "parts": [{"generation": g, "covers": c} for g, c in parts]}


def save_pretrained(model: Decompiler, folder: pathlib.Path) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, folder / "model.safetensors")
  config = {**_config_json(model.cfg), "trained_on": model.trained_on}
  (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def file_sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def read_json(path: pathlib.Path) -> dict:
  try:
    value = files.read_json(path, 16 << 20, "checkpoint JSON file")
  except FileError as e:
    raise CheckpointError(str(e)) from None
  if not isinstance(value, dict):
    raise CheckpointError(f"{path} is not a JSON object")
  return value


def check_tensor_file(path: pathlib.Path, sha256: str | None) -> None:
  """Header and size checks (and the recorded hash) before safetensors reads a byte of data."""
  try:
    f, size = files.open_regular(path, MAX_CHECKPOINT_BYTES, "checkpoint tensor file")
    with f:
      files.read_safetensors_header(f, size, path)
  except FileError as e:
    raise CheckpointError(str(e)) from None
  if sha256 is not None and file_sha256(path) != sha256:
    raise CheckpointError(f"{path} is corrupt (its SHA-256 differs from the one recorded when it was saved)")


def load_tensors(path: pathlib.Path) -> dict[str, torch.Tensor]:
  check_tensor_file(path, None)
  try:
    return load_file(path)
  except (OSError, RuntimeError, ValueError, SafetensorError) as e:
    raise CheckpointError(f"cannot read {path}: {str(e).splitlines()[0][:120]}") from None


def load_weights(model: Decompiler, folder: pathlib.Path) -> None:
  path = folder / "model.safetensors"
  tensors = load_tensors(path)
  try:
    model.load_state_dict(tensors)
  except (RuntimeError, ValueError, KeyError) as e:
    raise CheckpointError(f"{path} does not fit its config.json ({str(e).splitlines()[0][:120]})") from None


def load_decompiler(folder: str | pathlib.Path) -> Decompiler:
  """A trained decompiler from a folder with model.safetensors and config.json."""
  folder = pathlib.Path(folder)
  if (folder / "last" / "model.safetensors").exists():  # a training run folder
    folder = folder / "last"
  config = read_json(folder / "config.json")
  try:
    model_cfg = ModelConfig.from_json(config["model_config"])
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{folder / 'config.json'} is not a decompiler config ({type(e).__name__})") from None
  if not isinstance(config.get("vocab"), dict):
    raise CheckpointError(f"{folder / 'config.json'} has no vocab")
  if config.get("vocab", {}).get("fns") != list(programs.FNS) or config.get("vocab", {}).get("ar") != list(programs.AR_VOCAB):
    raise CheckpointError(f"{folder} was trained with another function registry")
  model = Decompiler(model_cfg)
  load_weights(model, folder)
  model.trained_on = config.get("trained_on") if isinstance(config.get("trained_on"), dict) else None
  model.eval()
  return model
