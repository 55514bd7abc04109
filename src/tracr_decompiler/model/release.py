"""The released-model format, read without torch: `config.json` + `model.safetensors`.

What any reader of a trained decompiler needs before (or instead of) torch: the
config and its checks, the tensor file's header checks, and the tensors as
NumPy arrays. Decompiling in NAR mode (numpy_nar.py) needs nothing more;
pretrained.py builds the torch model from the same files.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Callable, TypeVar

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from tracr_decompiler import files
from tracr_decompiler.encoding import programs
from tracr_decompiler.errors import FileError
from tracr_decompiler.model.config import ModelConfig

T = TypeVar("T")
MAX_CHECKPOINT_BYTES = 4 << 30  # per tensor file; the shipped model is 14 MB


class CheckpointError(FileError):
  """A checkpoint folder that is missing, truncated, corrupt or from another version (also a ValueError)."""


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


def model_folder(folder: str | pathlib.Path) -> pathlib.Path:
  """The folder holding model.safetensors: `folder` itself, or a training run's `last/`."""
  folder = pathlib.Path(folder)
  return folder / "last" if (folder / "last" / "model.safetensors").exists() else folder


def read_config(folder: pathlib.Path) -> tuple[ModelConfig, dict | None]:
  """(architecture, what it was trained on) from a model folder's config.json, checked against this code."""
  config = read_json(folder / "config.json")
  try:
    model_cfg = ModelConfig.from_json(config["model_config"])
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{folder / 'config.json'} is not a decompiler config ({type(e).__name__})") from None
  if not isinstance(config.get("vocab"), dict):
    raise CheckpointError(f"{folder / 'config.json'} has no vocab")
  if config["vocab"].get("fns") != list(programs.FNS) or config["vocab"].get("ar") != list(programs.AR_VOCAB):
    raise CheckpointError(f"{folder} was trained with another function registry")
  trained_on = config.get("trained_on")
  return model_cfg, trained_on if isinstance(trained_on, dict) else None


def read_tensor_file(path: pathlib.Path, load: Callable[[pathlib.Path], dict[str, T]]) -> dict[str, T]:
  """A safetensors file's tensors, by `load` (safetensors' NumPy or torch loader) once its header is checked."""
  check_tensor_file(path, None)
  try:
    return load(path)
  except (OSError, RuntimeError, ValueError, SafetensorError) as e:
    raise CheckpointError(f"cannot read {path}: {str(e).splitlines()[0][:120]}") from None


def load_arrays(path: pathlib.Path) -> dict[str, np.ndarray]:
  """The tensors of a checked safetensors file, as NumPy arrays."""
  return read_tensor_file(path, load_file)
