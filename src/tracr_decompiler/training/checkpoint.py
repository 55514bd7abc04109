"""Checkpoints: safetensors for tensors, JSON for everything else, never pickle.

A checkpoint folder holds
    model.safetensors       weights (from the unwrapped module: no DDP prefixes)
    config.json             {"model_config": ..., "vocab": ..., "schema_version": ...}
    optimizer.safetensors   AdamW moments (resume only)
    trainer_state.json      step, last metrics, param groups (resume only)
It is written to a temporary folder and renamed into place, so a kill at any
moment leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import torch
from safetensors.torch import load_file, save_file

from tracr_decompiler.dataset import schema
from tracr_decompiler.encoding import programs
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.model.model import Decompiler


class CheckpointError(ValueError):
  """A checkpoint folder that is missing, truncated or from another version."""


def _config_json(model_cfg: ModelConfig) -> dict:
  return {"model_config": model_cfg.to_json(), "schema_version": schema.SCHEMA_VERSION,
          "vocab": {"ops": list(programs.OPS), "encodings": list(programs.ENCODINGS), "fns": list(programs.FNS),
                    "ar": list(programs.AR_VOCAB)}}


def save_pretrained(model: Decompiler, folder: pathlib.Path) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, folder / "model.safetensors")
  (folder / "config.json").write_text(json.dumps(_config_json(model.cfg), indent=2) + "\n")


def save(model: Decompiler, opt: torch.optim.Optimizer, model_cfg: ModelConfig, out: pathlib.Path,
         step: int, metrics: dict) -> None:
  tmp = out / f".last.tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  save_pretrained(model, tmp)
  state = opt.state_dict()
  tensors, groups = {}, state["param_groups"]
  for pid, s in state["state"].items():
    for name, value in s.items():
      tensors[f"{pid}.{name}"] = value.detach().contiguous().cpu() if torch.is_tensor(value) else torch.tensor(value)
  save_file(tensors, tmp / "optimizer.safetensors")
  (tmp / "trainer_state.json").write_text(json.dumps(
      {"step": step, "metrics": metrics, "minutes": metrics.get("minutes", 0.0), "param_groups": groups,
       "model_config": model_cfg.to_json()}, indent=2) + "\n")
  final = out / "last"
  old = out / ".last.old"
  shutil.rmtree(old, ignore_errors=True)
  if final.exists():
    final.rename(old)
  tmp.rename(final)
  shutil.rmtree(old, ignore_errors=True)


def load_trainer_state(out: pathlib.Path) -> dict | None:
  path = out / "last" / "trainer_state.json"
  if not path.exists():
    old = out / ".last.old"  # killed between the two renames in `save`
    if (old / "trainer_state.json").exists():
      old.rename(out / "last")
    else:
      return None
  return json.loads(path.read_text())


def load_weights(model: Decompiler, folder: pathlib.Path) -> None:
  try:
    model.load_state_dict(load_file(folder / "model.safetensors"))
  except (OSError, RuntimeError, ValueError) as e:
    raise CheckpointError(f"cannot load weights from {folder}: {str(e).splitlines()[0]}") from None


def load_optimizer(opt: torch.optim.Optimizer, folder: pathlib.Path) -> None:
  tensors = load_file(folder / "optimizer.safetensors")
  state = json.loads((folder / "trainer_state.json").read_text())
  per_param: dict[int, dict] = {}
  for key, value in tensors.items():
    pid, name = key.split(".", 1)
    per_param.setdefault(int(pid), {})[name] = value
  opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})


def load_decompiler(folder: str | pathlib.Path) -> Decompiler:
  """A trained decompiler from a folder with model.safetensors and config.json."""
  folder = pathlib.Path(folder)
  if (folder / "last" / "model.safetensors").exists():  # a training run folder
    folder = folder / "last"
  try:
    config = json.loads((folder / "config.json").read_text())
    model_cfg = ModelConfig.from_json(config["model_config"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{folder} is not a decompiler checkpoint ({type(e).__name__})") from None
  if config.get("vocab", {}).get("fns") != list(programs.FNS) or config.get("vocab", {}).get("ar") != list(programs.AR_VOCAB):
    raise CheckpointError(f"{folder} was trained with another function registry")
  model = Decompiler(model_cfg)
  load_weights(model, folder)
  model.eval()
  return model
