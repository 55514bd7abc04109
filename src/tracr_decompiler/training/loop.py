"""Training: AdamW, warmup + cosine, clipping, validation, atomic checkpoints, resume.

Single process:   tracr-decompiler train --data data/main --out runs/main
Several GPUs:     torchrun --standalone --nproc_per_node=4 -m tracr_decompiler.cli train --data ... --out ...
The same command runs on a CPU or a GPU (CUDA when torch sees one). DDP is
detected from RANK; every rank trains on its own slice of each batch order,
and only rank 0 validates, logs and saves. Killing the run (kill -9 included)
and rerunning the same command resumes from the last checkpoint, with the
optimizer, the step and the data order.

train() is an entry point: it sets torch's CPU thread count for the run
(TrainConfig.threads, or the fastest count timed on the first batch) and
restores the caller's count when it returns.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from tracr_decompiler import machine, stopping
from tracr_decompiler.dataset import reader
from tracr_decompiler.dataset.reader import DatasetError
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.generation import settings
from tracr_decompiler.model import beam, decode, pretrained, release
from tracr_decompiler.model.batch import Batch
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.model.model import Decompiler
from tracr_decompiler.training import checkpoint, data
from tracr_decompiler.training.config import TrainConfig  # its home is config.py; loop.TrainConfig still works


def lr_at(cfg: TrainConfig, step: int) -> float:
  if step < cfg.warmup:  # 1) linear warmup
    return cfg.lr * (step + 1) / cfg.warmup
  progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))  # 2) cosine decay to min_lr
  return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _device() -> torch.device:
  if torch.cuda.is_available():
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
  return torch.device("cpu")


def _to(batch, device):
  if device.type == "cuda":  # pinned host memory lets the copy run while the GPU still computes the last step
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
  return batch


def thread_candidates(cores: int) -> list[int]:
  """The thread counts worth timing on `cores` cores: 1, 2, 4, ... and `cores` itself."""
  counts = [1]
  while counts[-1] * 2 < cores:
    counts.append(counts[-1] * 2)
  return counts + [cores] if cores > 1 else counts


def pick_threads(step, candidates: list[int], repeats: int = 2) -> tuple[int, dict[int, float]]:
  """The thread count under which `step()` runs fastest, and each count's best seconds.

  More threads is not always faster: on this project's 2-core machine, busy
  with other work, a step took 2 to 18 times longer with 2 threads than with 1
  (each of a step's thousands of small ops waits for the slower thread), so
  the count is timed rather than assumed. Counts
  take turns (after one warm-up call) so that load from other processes
  falls on all of them alike. Leaves torch at the chosen count.
  """
  step()
  seconds = {n: math.inf for n in candidates}
  for _ in range(repeats):
    for n in candidates:
      torch.set_num_threads(n)
      t = time.perf_counter()
      step()
      seconds[n] = min(seconds[n], time.perf_counter() - t)
  best = min(candidates, key=seconds.__getitem__)
  torch.set_num_threads(best)
  return best, seconds


def _cores_per_rank() -> int:
  return max(1, machine.available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def use_bf16(flag: bool | None, device: torch.device) -> bool:
  """TrainConfig.bf16, or where unset: bf16 autocast where the device has bf16 kernels.

  On this project's CPU (AVX512-BF16) a training step was 1.2-1.5x faster in
  bf16 (benchmarks/training_throughput.py); CPUs without oneDNN's bf16 kernels
  stay fp32.
  """
  if flag is not None:
    return flag
  if device.type == "cuda":
    return torch.cuda.is_bf16_supported()
  return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _losses(net, batch: Batch, mode: str, device: torch.device, bf16: bool) -> dict[str, torch.Tensor]:
  """One training forward pass; on CPU with the plain ("math") attention kernel.

  Our sequences are short (a few dozen nodes or tokens), and on CPU the flash
  kernel's bf16 backward made a whole step 1.3x slower than the math kernel
  (fp32: no difference). The choice is undone when the pass returns.
  """
  attention = sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else contextlib.nullcontext()
  with attention, torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
    return net(batch, mode)


def _timed_threads(model: Decompiler, batch: Batch, mode: str, bf16: bool) -> tuple[int, dict[int, float]]:
  """pick_threads over this machine's cores, timing forward and backward of the run's first batch on CPU."""
  def fwd_bwd():
    with torch.random.fork_rng(devices=[]):  # dropout draws here must not shift the run's random stream
      _losses(model, batch, mode, torch.device("cpu"), bf16)["loss"].backward()
    model.zero_grad(set_to_none=True)
  return pick_threads(fwd_bwd, thread_candidates(_cores_per_rank()))


@torch.no_grad()
def evaluate_batches(model: Decompiler, examples: list[data.Example], device, mode: str,
                     bf16: bool = True, ar_limit: int | None = None) -> dict[str, float]:
  """Teacher-forced field/token accuracy and greedy exact match on `examples` (the model's mode is restored)."""
  was_training = model.training
  model.eval()
  stats = {"fields": 0, "fields_ok": 0, "nar_exact": 0, "n": 0, "ar_tokens": 0, "ar_tokens_ok": 0,
           "ar_exact": 0, "ar_n": 0}
  for start in range(0, len(examples), 64):
    chunk = examples[start:start + 64]
    batch = _to(data.collate(chunk, model.cfg), device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
      memory, mask = model.encode(batch)
      if mode in ("nar", "both"):
        logits = model.nar(memory, mask, batch)
    if mode in ("nar", "both"):
      pred = {k: logits[k].float().argmax(-1) for k in ("op", "enc", "fn", "args")}
      for k in ("op", "enc", "fn", "args"):
        valid = batch[k] != programs.IGNORE
        stats["fields"] += int(valid.sum())
        stats["fields_ok"] += int(((pred[k] == batch[k]) & valid).sum())
      for i, e in enumerate(chunk):
        s = e.size
        if (e.fn[2:] == programs.IGNORE).any():
          # A table function has no fn target (programs.targets): exact means every field the decoder is
          # asked for is right (the readers fill the table later); the program has no registry form.
          stats["nar_exact"] += int(all(((pred[k][i, :s] == batch[k][i, :s]) | (batch[k][i, :s] == programs.IGNORE))
                                        .all() for k in ("op", "enc", "fn", "args")))
          stats["n"] += 1
          continue
        truth = programs.program_from_fields(e.op, e.enc, e.fn, e.args)
        cands = decode.nar_candidates({k: v[i:i + 1].float().cpu().numpy() for k, v in logits.items()}, s, k=1)
        stats["nar_exact"] += int(bool(cands) and cands[0][1] == truth)
        stats["n"] += 1
    if mode in ("ar", "both"):
      with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        ar = model.ar_logits(memory, mask, batch["ar_in"]).float()
      valid = batch["ar_out"] != programs.PAD
      stats["ar_tokens"] += int(valid.sum())
      stats["ar_tokens_ok"] += int(((ar.argmax(-1) == batch["ar_out"]) & valid).sum())
      for i, e in enumerate(chunk):
        if ar_limit is not None and stats["ar_n"] >= ar_limit:
          break
        if (e.fn[2:] == programs.IGNORE).any():  # a table program: no registry form to compare with
          continue  # (AR exact is over programs without tables; NAR exact above covers both)
        truth = programs.program_from_fields(e.op, e.enc, e.fn, e.args)
        cands = beam.ar_beam(model, memory[i:i + 1].float(), mask[i:i + 1], e.size, beam=1)
        stats["ar_exact"] += int(bool(cands) and cands[0][1] == truth)
        stats["ar_n"] += 1
  model.train(was_training)  # a caller's eval-mode model (the shipped one, shared) stays in eval mode
  out = {}
  if stats["n"]:
    out["field_acc"] = stats["fields_ok"] / max(1, stats["fields"])
    out["nar_exact"] = stats["nar_exact"] / stats["n"]
  if stats["ar_tokens"]:
    out["ar_token_acc"] = stats["ar_tokens_ok"] / stats["ar_tokens"]
    out["ar_exact"] = stats["ar_exact"] / max(1, stats["ar_n"])
  return out


def warm_start(path: str) -> tuple[pathlib.Path, ModelConfig, dict | None]:
  """(model folder, architecture, what it was trained on) of --init-from, refused when its weights cannot fit."""
  folder = release.model_folder(path)
  model_cfg, trained_on = release.read_config(folder)
  version = (trained_on or {}).get("feature_version")
  if version is not None and version != weights.FEATURE_VERSION:
    raise checkpoint.CheckpointError(f"{folder} was trained on features v{version}; this code makes "
                                     f"v{weights.FEATURE_VERSION}: its weights would not fit them")
  return folder, model_cfg, trained_on


def train(cfg: TrainConfig, model_cfg: ModelConfig = ModelConfig(), progress: bool = True) -> dict:
  """Trains (or resumes) a run in cfg.out; returns the final validation metrics."""
  threads = torch.get_num_threads()
  try:
    return _train(cfg, model_cfg, progress)
  finally:
    torch.set_num_threads(threads)  # the run's count was for the run


def _train(cfg: TrainConfig, model_cfg: ModelConfig, progress: bool) -> dict:
  ddp = "RANK" in os.environ
  rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
  if cfg.batch_size < world:
    raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {world} ranks (each needs a program)")
  device = _device()
  if ddp:
    if device.type == "cuda":
      torch.cuda.set_device(device)  # NCCL's communicator uses the current device: this rank's, not cuda:0
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
  master = rank == 0
  if cfg.threads is not None:
    torch.set_num_threads(cfg.threads)
  bf16 = use_bf16(cfg.bf16, device)
  out = pathlib.Path(cfg.out)
  out.mkdir(parents=True, exist_ok=True)

  resumable = checkpoint.find_resumable(out)  # last/, else prev/ if last/ is damaged
  resume_from, state = resumable if resumable else (None, None)
  if resume_from is not None and state is not None:  # resume: the saved configs win, so the run stays one run
    try:
      model_cfg = ModelConfig.from_json(state["model_config"])
    except (ValueError, TypeError) as e:
      raise checkpoint.CheckpointError(f"{resume_from / 'trainer_state.json'}: bad model_config ({e})") from None
  init = None
  if cfg.init_from is not None and resume_from is None:  # a warm start: the model's own architecture
    init, model_cfg, init_trained_on = warm_start(cfg.init_from)
  if master:
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    (out / "argv.txt").write_text(" ".join(sys.argv) + "\n")

  cache = out / "cache"
  dirs = cfg.data_dirs
  # Several parts: concatenated; validation takes an equal share of each part. Under torchrun rank 0
  # featurises (on every core) while the other ranks wait, then they read its cache: not each rank all of it.
  if ddp and not master:
    torch.distributed.barrier()
  prepared = data.prepare_many([(d, split, cfg.limit if split == "train" else None)
                                for d in dirs for split in ("train", "val")],
                               cache, cfg.data_workers, progress=progress and master, model_cfg=model_cfg)
  if ddp and master:
    torch.distributed.barrier()
  train_ex = [e for part in prepared[0::2] for e in part]
  val_parts = prepared[1::2]
  val_ex = [e for part in val_parts for e in part[:max(1, cfg.eval_examples // len(dirs))]][:cfg.eval_examples]
  if not train_ex:
    raise DatasetError(f"no usable training programs in {cfg.data}")

  torch.manual_seed(cfg.seed)
  model = Decompiler(model_cfg).to(device)
  # What the model has learned from: a warm start's earlier parts too (decompile warns outside all of them).
  earlier = ([(p.get("generation"), p.get("covers")) for p in (init_trained_on or {}).get("parts", [])]
             if init is not None else [])
  parts = [(g, settings.coverage(g)) for g in map(reader.generation_config, dirs)]
  model.trained_on = pretrained.trained_on(earlier + parts)  # parts drawn alike are one entry
  if init is not None:
    pretrained.load_weights(model, init)
  opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
  step = 0
  if resume_from is not None and state is not None:  # both or neither
    checkpoint.load_weights(model, resume_from)
    checkpoint.load_optimizer(opt, resume_from)
    step = state["step"]
  # Some parameters get no gradient in some steps (the AR decoder in nar mode, the flat slots in a graph run,
  # heads whose targets a batch lacks); DDP must look for them, or it waits for their gradients forever.
  net = (torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                   find_unused_parameters=True) if ddp else model)

  per_epoch = max(1, len(train_ex) // cfg.batch_size)

  def batch_at(step: int) -> Batch:
    """This rank's slice of batch `step`: the order is a function of (seed, epoch) alone, so resume replays it."""
    epoch, pos = divmod(step, per_epoch)
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_ex))
    idx = order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size][rank::world]
    return _to(data.collate([train_ex[i] for i in idx], model_cfg), device)

  batch = batch_at(step)
  if cfg.threads is None and device.type == "cpu":
    threads, seconds = _timed_threads(model, batch, cfg.mode, bf16)  # unwrapped: no waiting on other ranks
    if progress and master:
      tqdm.write(f"torch threads: {threads} (seconds per step: "
                 + ", ".join(f"{n} threads {s:.2f}" for n, s in seconds.items()) + f"); bf16: {bf16}")
  start, metrics = time.time(), {}
  window, window_steps = time.time(), 0  # training throughput since the last validation, which it excludes
  bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and master))
  log_path = out / "metrics.csv"

  def validate(losses: dict) -> dict:
    """Validates, logs a metrics row, checkpoints and redraws the curve (rank 0 only)."""
    programs_per_s = window_steps * cfg.batch_size / (time.time() - window) if window_steps else 0.0
    metrics = evaluate_batches(model, val_ex, device, cfg.mode, bf16, ar_limit=len(val_ex) // 5)
    row = {"step": step, "lr": lr_at(cfg, step), "loss": losses["loss"].item() if losses else "",
           **{k: v.item() for k, v in losses.items() if k != "loss"}, **metrics,
           "programs_seen": step * cfg.batch_size,
           "minutes": (time.time() - start) / 60 + (state or {}).get("minutes", 0.0),
           "programs_per_s": programs_per_s, "threads": torch.get_num_threads(), "bf16": int(bf16)}
    _append_csv(log_path, row)
    checkpoint.save(model, opt, model_cfg, out, step, row)
    _plot(log_path, out / "training.png")
    bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return metrics

  if init is not None and step == 0 and master:  # a warm start's curve begins where its model stands
    metrics = validate({})
    window = time.time()
  while step < cfg.steps:
    stopping.check()
    for g in opt.param_groups:
      g["lr"] = lr_at(cfg, step)
    losses = _losses(net, batch, cfg.mode, device, bf16)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    step += 1
    window_steps += 1
    if step < cfg.steps:  # on a GPU this runs while the step's kernels do: .item() below is the first wait
      batch = batch_at(step)
    loss = losses["loss"].item()
    bar.update()
    bar.set_postfix(loss=f"{loss:.3f}")
    timed_out = cfg.max_minutes is not None and time.time() - start > 60 * cfg.max_minutes
    if ddp:  # rank 0's clock decides, so that no rank leaves while the others wait for its gradients
      flag = torch.tensor([float(timed_out)], device=device)
      torch.distributed.broadcast(flag, 0)
      timed_out = bool(flag.item())
    if master and (step % cfg.eval_every == 0 or step == cfg.steps or timed_out):
      metrics = validate(losses)
      window, window_steps = time.time(), 0
    if timed_out:
      break
  bar.close()
  if ddp:
    torch.distributed.destroy_process_group()
  return metrics


def _append_csv(path: pathlib.Path, row: dict) -> None:
  rows = list(csv.DictReader(path.open())) if path.exists() else []
  rows = [r for r in rows if int(r["step"]) < row["step"]]  # a resumed run overwrites its future
  rows.append({k: str(v) for k, v in row.items()})
  keys = list(dict.fromkeys(k for r in rows for k in r))
  tmp = path.with_suffix(".tmp")
  with tmp.open("w", newline="") as f:
    w = csv.DictWriter(f, keys)
    w.writeheader()
    w.writerows(rows)
  tmp.replace(path)


def _plot(csv_path: pathlib.Path, png: pathlib.Path) -> None:
  """Loss by step; validation by programs seen and by wall-clock hours (docs/training.md's curves)."""
  from matplotlib.figure import Figure  # no pyplot: drawing must not touch the process's matplotlib state
  rows = list(csv.DictReader(csv_path.open()))
  steps = [int(r["step"]) for r in rows]
  fig = Figure(figsize=(14, 4))
  a, b, c = fig.subplots(1, 3)
  for key in ("nar_loss", "ar_loss"):
    logged = [(s, float(r[key])) for s, r in zip(steps, rows) if r.get(key)]  # a warm start's step 0 has none
    if logged:
      a.plot(*zip(*logged), label=key)
  a.set_yscale("log"); a.set_xlabel("step"); a.set_title("training loss")
  seen = [float(r.get("programs_seen") or 0) for r in rows]
  hours = [float(r.get("minutes") or 0) / 60 for r in rows]
  for key in ("nar_exact", "field_acc", "ar_exact", "ar_token_acc"):
    if rows and rows[0].get(key):
      b.plot(seen, [float(r[key]) for r in rows], label=key)
      c.plot(hours, [float(r[key]) for r in rows], label=key)
  b.set_xlabel("programs seen (with repeats)"); b.set_title("validation (greedy)")
  c.set_xlabel("wall-clock hours"); c.set_title("validation (greedy)")
  for ax in (a, b, c):
    if ax.get_legend_handles_labels()[0]:
      ax.legend()
  b.set_ylim(0, 1); c.set_ylim(0, 1)
  fig.tight_layout()
  fig.savefig(png, dpi=100)
