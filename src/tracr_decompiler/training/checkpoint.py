"""Checkpoints: safetensors for tensors, JSON for everything else, never pickle.

A checkpoint folder holds
    model.safetensors       weights (from the unwrapped module: no DDP prefixes)
    config.json             {"model_config": ..., "vocab": ..., "schema_version": ...}
    optimizer.safetensors   AdamW moments (resume only)
    trainer_state.json      step, last metrics, param groups (resume only)
It is written to a temporary folder and renamed into place, so a kill at any
moment leaves the previous checkpoint or the new one, never half of one. A run
folder keeps two: `last/` and the one before it, `prev/`. trainer_state.json
records the SHA-256 of both tensor files, so a checkpoint damaged later (a full
disk, a bad copy, a truncated file) is detected and resuming falls back to
`prev/`, saying so.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

import torch
from safetensors.torch import save_file

from tracr_decompiler.model import pretrained
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.model.model import Decompiler
from tracr_decompiler.model.pretrained import CheckpointError, load_decompiler, load_weights, save_pretrained

__all__ = ["CheckpointError", "load_decompiler", "load_weights", "save_pretrained", "save", "validate",
           "find_resumable", "load_trainer_state", "load_optimizer"]

TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")


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
       "model_config": model_cfg.to_json(), "sha256": {n: pretrained.file_sha256(tmp / n) for n in TENSOR_FILES}}, indent=2) + "\n")
  last, prev, old = out / "last", out / "prev", out / ".prev.old"
  shutil.rmtree(old, ignore_errors=True)
  if last.exists():
    try:
      validate(last)
      if prev.exists():
        prev.rename(old)
      last.rename(prev)  # the previous good checkpoint stays, in case `last` is damaged later
    except CheckpointError:
      shutil.rmtree(last)  # damaged since it was written: keep `prev` as the fallback instead
  tmp.rename(last)
  shutil.rmtree(old, ignore_errors=True)


def validate(folder: pathlib.Path) -> dict:
  """Checks a resumable checkpoint folder without loading it; returns its trainer state.

  Raises:
    CheckpointError: naming the first file that is missing, truncated or corrupt.
  """
  state = pretrained.read_json(folder / "trainer_state.json")
  hashes = state.get("sha256") or {}  # checkpoints from before hashes were recorded have none
  if not isinstance(hashes, dict) or not isinstance(state.get("step"), int) or "model_config" not in state \
      or not isinstance(state.get("param_groups"), list):
    raise CheckpointError(f"{folder / 'trainer_state.json'} lacks step, model_config or param_groups")
  pretrained.read_json(folder / "config.json")
  for name in TENSOR_FILES:
    pretrained.check_tensor_file(folder / name, hashes.get(name))
  return state


def find_resumable(out: pathlib.Path) -> tuple[pathlib.Path, dict] | None:
  """The newest usable checkpoint of a run folder (`last/`, else `prev/`), with its trainer state.

  A damaged `last/` is reported on stderr and skipped. Returns None for a fresh run.
  Raises:
    CheckpointError: checkpoints exist but none is usable (the message names the file and the remedy).
  """
  if not (out / "last").exists() and (out / ".last.old").exists():  # killed mid-rename by an older version
    (out / ".last.old").rename(out / "last")
  problems = []
  for folder in (out / "last", out / "prev"):
    if not folder.exists():
      continue
    try:
      state = validate(folder)
    except CheckpointError as e:
      problems.append(str(e))
      continue
    if problems:
      print(f"warning: {problems[0]}; resuming from {folder} (step {state['step']})", file=sys.stderr)
    return folder, state
  if problems:
    raise CheckpointError(f"{problems[0]}; no usable checkpoint left in {out}: delete {out / 'last'} "
                          f"and {out / 'prev'} to start over, or use another --out")
  return None


def load_trainer_state(out: pathlib.Path) -> dict | None:
  found = find_resumable(out)
  return found[1] if found else None


def load_optimizer(opt: torch.optim.Optimizer, folder: pathlib.Path) -> None:
  path = folder / "optimizer.safetensors"
  tensors = pretrained.load_tensors(path)
  state = pretrained.read_json(folder / "trainer_state.json")
  per_param: dict[int, dict] = {}
  try:
    for key, value in tensors.items():
      pid, name = key.split(".", 1)
      per_param.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
  except (RuntimeError, ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{path} does not fit the model ({str(e).splitlines()[0][:120]})") from None


