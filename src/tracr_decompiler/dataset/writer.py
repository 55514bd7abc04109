"""Builds a dataset: sharded, parallel, deterministic from the seed, resumable.

Shard k holds programs drawn with the random stream (seed, k), so its content
does not depend on which worker made it or when. Each shard is written to a
temporary file and renamed into place, so a killed run (kill -9 included)
leaves only whole shards; rerunning the same command skips them and finishes
the rest. The final pass drops programs already seen in an earlier shard
(first occurrence wins, in shard order) and writes `manifest.json`.

Example usage:
    build_dataset(DatasetConfig(n=2000, out="data/small", workers=2, seed=0))
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import pathlib
import threading
import time
from queue import Empty
from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from tracr_decompiler import files, parallel
from tracr_decompiler.dataset import rows, schema
from tracr_decompiler.dataset.config import DatasetConfig  # its home is config.py; writer.DatasetConfig still works
from tracr_decompiler.generation import heldout, sampler


def shard_path(out: pathlib.Path, shard: int) -> pathlib.Path:
  # Shards live in data/ so `pandas.read_parquet(out / "data")` and
  # `datasets.load_dataset("parquet", data_dir=out / "data")` read them directly.
  return out / "data" / f"shard-{shard:05d}.parquet"


def write_table(table: pa.Table, path: pathlib.Path) -> None:
  """Atomic: a reader (or a resumed run) sees the whole file or none of it."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  pq.write_table(table, tmp, compression="zstd")
  os.replace(tmp, path)


def generate_shard(cfg: DatasetConfig, shard: int, on_program: Optional[Callable[[int], object]] = None) -> int:
  """Draws one shard's programs and writes it; returns the number of programs.

  on_program(1) is called after each program (progress); in a pool worker the
  default reports to the parent's progress queue.
  """
  with threadpool_limits(limits=1):
    # The generator's matrices are small: BLAS threads only contend with the
    # other workers (2 workers on 2 cores ran 2.4x slower with BLAS's default).
    return _generate_shard(cfg, shard, on_program or _report)


def _generate_shard(cfg: DatasetConfig, shard: int, on_program: Callable[[int], object]) -> int:
  rng = np.random.default_rng([cfg.seed, shard])
  block, records = heldout.blocklist(), []
  seen: set[str] = set()  # sources drawn in this shard
  attempts = time_budget_hits = 0
  for _ in range(cfg.shard_count(shard)):
    sample = sampler.sample_program(cfg.generation, rng, block | frozenset(seen))
    row = rows.to_row(sample.program, sample.model, (cfg.val_percent, cfg.test_percent))
    seen.add(row["source"])
    records.append(row)
    attempts += sample.attempts
    time_budget_hits += sample.time_budget_hits
    on_program(1)
  table = pa.Table.from_pylist(records, schema=schema.SCHEMA)
  # Rejection statistics travel with the shard (deterministic, so the content hash stays a function of the seed).
  stats = {b"attempts": str(attempts).encode()}
  if time_budget_hits:  # only then does the shard depend on the machine's speed: say so
    stats[b"time_budget_hits"] = str(time_budget_hits).encode()
  table = table.replace_schema_metadata({**(table.schema.metadata or {}), **stats})
  write_table(table, shard_path(pathlib.Path(cfg.out), shard))
  return len(records)


_progress = None  # a pool worker's queue to the parent (set by _init_worker); None in the parent


def _init_worker(queue) -> None:
  global _progress
  _progress = queue


def _report(count: int) -> None:
  if _progress is not None:
    _progress.put(count)


def _shard_ok(path: pathlib.Path) -> bool:
  try:
    return pq.ParquetFile(path).metadata.num_rows > 0
  except Exception:  # truncated or foreign file: regenerate it
    return False


def _run_local(cfg: DatasetConfig, todo: list[int], bar) -> None:
  workers = min(cfg.workers, os.cpu_count() or 1, len(todo))
  if workers == 1:
    for shard in todo:
      generate_shard(cfg, shard, bar.update)
    return
  ctx = mp.get_context("spawn")  # no forked JAX state
  queue = ctx.Queue()  # workers -> parent: one item per program, so the bar moves per program
  stop = threading.Event()
  drain = threading.Thread(target=_drain, args=(queue, bar, stop), daemon=True)
  drain.start()
  try:
    for _ in parallel.pool_map(_shard_job, [(cfg, s) for s in todo], workers, _init_worker, (queue,)):
      pass
  except parallel.WorkerDied:
    raise sampler.GenerationError("a generation worker died (killed or out of memory?); whole shards are kept: "
                                  "run the same command again to finish") from None
  finally:
    # The parent never writes to the queue (a worker killed mid-write may hold its lock), and a
    # drain thread stuck on a half-written message is a daemon: it cannot keep the process alive.
    stop.set()
    drain.join(timeout=2)


def _shard_job(job: tuple[DatasetConfig, int]) -> int:
  """A pool's or Ray's job: one shard."""
  return generate_shard(*job)


def _drain(queue, bar, stop: threading.Event) -> None:
  """Moves the bar per program; once the workers have exited (stop), ends at the first empty read."""
  while True:
    try:
      bar.update(queue.get(timeout=0.1))
    except Empty:
      if stop.is_set():
        return


def _run_ray(cfg: DatasetConfig, todo: list[int], bar) -> None:
  assert cfg.ray_address is not None
  for _, count in parallel.ray_map(_shard_job, [(cfg, s) for s in todo], cfg.ray_address):
    bar.update(count)


def _dedupe_and_manifest(cfg: DatasetConfig, out: pathlib.Path, seconds: float) -> dict:
  seen: set[str] = set()
  counts = {s: 0 for s in schema.SPLITS}
  by_sops: dict[int, int] = {}
  digest = hashlib.sha256()
  dropped = attempts = time_budget_hits = 0
  for shard in range(cfg.num_shards):
    path = shard_path(out, shard)
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    attempts += int(meta.get(b"attempts", 0))
    time_budget_hits += int(meta.get(b"time_budget_hits", 0))
    ids = table.column("id").to_pylist()
    keep = [i for i, pid in enumerate(ids) if pid not in seen]
    seen.update(ids)
    if len(keep) < len(ids):
      dropped += len(ids) - len(keep)
      table = table.take(keep)
      write_table(table, path)
    for split, n_sops in zip(table.column("split").to_pylist(), table.column("n_sops").to_pylist()):
      counts[split] += 1
      by_sops[n_sops] = by_sops.get(n_sops, 0) + 1
    digest.update(path.read_bytes())
  manifest = {
      "schema_version": schema.SCHEMA_VERSION,
      "config": cfg.identity(),
      "num_programs": sum(counts.values()),
      "duplicates_dropped": dropped,
      "candidates_per_program": round(attempts / max(1, cfg.n), 2),  # rejection sampling's cost
      "time_budget_hits": time_budget_hits,
      "splits": counts,
      "by_n_sops": dict(sorted(by_sops.items())),
      "shards": [str(shard_path(out, s).relative_to(out)) for s in range(cfg.num_shards)],
      "content_hash": digest.hexdigest(),
  }
  files.atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
  manifest["seconds"] = seconds
  return manifest


def build_dataset(cfg: DatasetConfig, progress: bool = True) -> dict:
  """Generates (or finishes) the dataset in cfg.out; returns the manifest."""
  out = pathlib.Path(cfg.out)
  (out / "data").mkdir(parents=True, exist_ok=True)
  identity_file = out / "dataset_config.json"
  if identity_file.exists() and json.loads(identity_file.read_text()) != cfg.identity():
    raise ValueError(f"{out} holds a dataset made with other settings; choose another --out")
  files.atomic_write_text(identity_file, json.dumps(cfg.identity(), indent=2) + "\n")
  for stale in (out / "data").glob(".shard-*.tmp"):  # left by a killed run
    stale.unlink()
  todo = [s for s in range(cfg.num_shards) if not _shard_ok(shard_path(out, s))]
  done = sum(cfg.shard_count(s) for s in range(cfg.num_shards) if s not in todo)
  start = time.time()
  with tqdm(total=cfg.n, initial=done, unit="prog", disable=not progress, desc="generate") as bar:
    if todo:
      (_run_ray if cfg.ray_address else _run_local)(cfg, todo, bar)
  seconds = time.time() - start
  manifest = _dedupe_and_manifest(cfg, out, seconds)
  manifest["generated_now"] = sum(cfg.shard_count(s) for s in todo)
  return manifest
