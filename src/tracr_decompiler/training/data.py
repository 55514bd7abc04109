"""Dataset rows -> training examples (cached) -> padded batches.

Features are computed once per dataset split and cached as a NumPy .npz
(no pickle) in the run folder: node features are ~1 % non-zero, so they are
stored sparse and densified per batch.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import pathlib
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tracr_decompiler import machine
from tracr_decompiler.compiling import inputs as inputs_lib
from tracr_decompiler.dataset import reader, rows
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.model.batch import Batch, flat_chunks
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.program import evaluate


@dataclasses.dataclass
class Example:
  feat_idx: np.ndarray  # flat indices of non-zero features in [S, F]
  feat_val: np.ndarray
  kinds: np.ndarray  # [S]
  layers: np.ndarray  # [S]
  relations: np.ndarray  # [S, S, R] uint8
  is_output: np.ndarray  # [S]
  op: np.ndarray  # [S]
  enc: np.ndarray
  fn: np.ndarray
  args: np.ndarray  # [S, MAX_ARGS]
  ar: np.ndarray  # [L]
  flat_idx: np.ndarray  # flat baseline: non-zero positions of the flattened parameters
  flat_val: np.ndarray
  n_sops: int
  row_index: int  # position in the split (to find the source program again)

  @property
  def size(self) -> int:
    return len(self.kinds)


def example_from_row(row: dict, index: int, model_cfg: ModelConfig = ModelConfig()) -> Example | None:
  """None if the graph and the program cannot be aligned (rare; see nodes.py), or the program fails on an input.

  The flat baseline's chunks are built only for a flat-input run (model_cfg.input_mode).
  """
  try:
    model = rows.model_from_row(row)
  except rows.RowError as e:
    raise rows.RowError(f"row {index} (id {str(row.get('id'))[:20]!r}): {e}") from None
  try:
    graph = weights.encode_model(model)
    program = evaluate.with_canonical_aliases(rows.program_from_row(row), _probe_inputs(model.settings),
                                              model.settings.causal)
    t = programs.targets(graph, program, model.residual_labels)
  except (programs.AlignmentError, weights.NotTracrError, evaluate.EvaluationError):
    # EvaluationError: settings too large for exhaustive checks were checked on the
    # generator's own input sample; a program that fails on one of these inputs is left out.
    return None
  if len(graph.nodes) > programs.MAX_NODES:
    return None
  idx = np.flatnonzero(graph.features)
  chunks = (flat_chunks(model.params, model_cfg).ravel() if model_cfg.input_mode == "flat"
            else np.zeros(0, np.float32))
  fidx = np.flatnonzero(chunks)
  return Example(idx.astype(np.int32), graph.features.ravel()[idx].astype(np.float32), graph.kinds, graph.layers,
                 graph.relations.astype(np.uint8), graph.is_output, t["op"], t["enc"], t["fn"], t["args"],
                 programs.ar_sequence(t), fidx.astype(np.int32), chunks[fidx].astype(np.float32),
                 row["n_sops"], index)


@functools.lru_cache(maxsize=64)  # mixed-settings data: one entry per distinct settings
def _probe_inputs(settings) -> list[tuple]:
  """Inputs that show every value an SOp can take (all of them when there are few)."""
  return inputs_lib.input_set(settings.vocab, settings.max_seq_len).inputs


def _work(args):
  row, index, model_cfg, skip_bad_rows = args
  try:
    return example_from_row(row, index, model_cfg)
  except rows.RowError as e:
    if skip_bad_rows:
      return e  # a value, so a pool goes on with the next row
    raise


_FIELDS = ("feat_idx", "feat_val", "kinds", "layers", "relations", "is_output", "op", "enc", "fn", "args", "ar",
           "flat_idx", "flat_val")


def save_examples(examples: list[Example], path: pathlib.Path) -> None:
  arrays = {}
  for f in _FIELDS:
    parts = [getattr(e, f) for e in examples]
    arrays[f] = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.zeros(0)
    arrays[f + "_len"] = np.array([p.size for p in parts], np.int64)
  arrays["sizes"] = np.array([e.size for e in examples], np.int64)
  arrays["n_sops"] = np.array([e.n_sops for e in examples], np.int64)
  arrays["row_index"] = np.array([e.row_index for e in examples], np.int64)
  tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # DDP ranks each write the same cache
  np.savez(tmp, allow_pickle=False, **arrays)  # numbers only; load_examples reads without pickle too
  tmp.replace(path)


def load_examples(path: pathlib.Path) -> list[Example]:
  data = np.load(path, allow_pickle=False)
  sizes = data["sizes"]
  out: list[dict[str, Any]] = [{} for _ in sizes]  # per example: field -> array
  for f in _FIELDS:
    offsets = np.concatenate([[0], np.cumsum(data[f + "_len"])])
    flat_arr = data[f]
    for i, s in enumerate(sizes):
      a = flat_arr[offsets[i]:offsets[i + 1]]
      if f == "relations":
        a = a.reshape(s, s, -1)
      elif f == "args":
        a = a.reshape(s, programs.MAX_ARGS)
      out[i][f] = a
  return [Example(**d, n_sops=int(n), row_index=int(r)) for d, n, r in zip(out, data["n_sops"], data["row_index"])]


def _cache_path(data_dir: str, split: str, cache_dir: pathlib.Path, limit: int | None,
                model_cfg: ModelConfig) -> pathlib.Path:
  m = reader.manifest(data_dir)
  mode = "graph" if model_cfg.input_mode == "graph" else f"flat{model_cfg.flat_chunk}x{model_cfg.flat_max_tokens}"
  return cache_dir / f"examples-v{weights.FEATURE_VERSION}-{mode}-{split}-{m['content_hash'][:12]}-{limit or 'all'}.npz"


def prepare_many(parts: list[tuple[str, str, int | None]], cache_dir: pathlib.Path, workers: int | None = None,
                 progress: bool = True, model_cfg: ModelConfig = ModelConfig(),
                 skipped: list[str] | None = None) -> list[list[Example]]:
  """Featurised examples of each (dataset folder, split, first-N limit or None), from the cache where it is there.

  Everything not cached is featurised in one pool of `workers` processes (none:
  every available core), so many small dataset parts cost one pool start, not
  one each. A malformed row raises DatasetError naming the dataset, split and
  row; with `skipped` (a list) it is left out and its line appended there
  instead, and a part with a skipped row is not cached, so every run says so.
  """
  caches = [_cache_path(d, split, cache_dir, limit, model_cfg) for d, split, limit in parts]
  results: dict[int, list[Example]] = {k: [] for k, cache in enumerate(caches) if not cache.exists()}
  jobs, owner = [], []
  for k in results:
    d, split, limit = parts[k]
    table = reader.read_split(d, None if split == "all" else split, limit=limit)
    jobs += [(r, i, model_cfg, skipped is not None) for i, r in enumerate(table)]
    owner += [k] * len(table)
  bad: set[int] = set()  # parts with a skipped row

  def keep(k: int, ex: Example | rows.RowError | None) -> None:
    if isinstance(ex, rows.RowError):
      assert skipped is not None
      d, split, _ = parts[k]
      skipped.append(f"{d} ({split} split), {ex}")
      bad.add(k)
    elif ex is not None:
      results[k].append(ex)

  if jobs:
    workers = min(workers or machine.available_cores(), -(-len(jobs) // 64))  # a worker per imap chunk at most
    desc = "featurise " + "+".join(sorted({split for _, split, _ in parts}))
    done = 0
    with tqdm(total=len(jobs), desc=desc, disable=not progress, unit="prog") as bar:
      try:
        if workers > 1:
          with mp.get_context("spawn").Pool(workers) as pool:
            for k, ex in zip(owner, pool.imap(_work, jobs, chunksize=64)):
              keep(k, ex)
              done += 1
              bar.update()
        else:
          for k, job in zip(owner, jobs):
            keep(k, _work(job))
            done += 1
            bar.update()
      except rows.RowError as e:  # one clean line naming the dataset, split and row
        d, split, _ = parts[owner[min(done, len(owner) - 1)]]
        raise reader.DatasetError(f"{d} ({split} split), {e}") from None
  cache_dir.mkdir(parents=True, exist_ok=True)
  for k, examples in results.items():  # an empty split too: its cache says so next time
    if k not in bad:
      save_examples(examples, caches[k])
  return [results[k] if k in results else load_examples(c) for k, c in enumerate(caches)]


def prepare(data_dir: str, split: str, cache_dir: pathlib.Path, workers: int | None = None,
            limit: int | None = None, progress: bool = True,
            model_cfg: ModelConfig = ModelConfig(), skipped: list[str] | None = None) -> list[Example]:
  """Featurised examples of one split, for the run's input representation, from the cache when it is there."""
  return prepare_many([(data_dir, split, limit)], cache_dir, workers, progress, model_cfg, skipped)[0]


def collate(examples: list[Example], model_cfg: ModelConfig = ModelConfig()) -> Batch:
  """Pads examples into a batch: graph input, NAR and AR targets, and the flat input for a flat run."""
  b, s = len(examples), max(e.size for e in examples)
  r = examples[0].relations.shape[-1]
  feats = np.zeros((b, s, weights.FEATURE_DIM), np.float32)
  kinds, layers = np.zeros((b, s), np.int64), np.zeros((b, s), np.int64)
  rel = np.zeros((b, s, s, r), np.float32)
  is_out, mask = np.zeros((b, s), np.float32), np.zeros((b, s), bool)
  op, enc, fn = (np.full((b, s), programs.IGNORE, np.int64) for _ in range(3))
  args = np.full((b, s, programs.MAX_ARGS), programs.IGNORE, np.int64)
  l = max(len(e.ar) for e in examples)
  ar_in, ar_out = np.full((b, l), programs.PAD, np.int64), np.full((b, l), programs.PAD, np.int64)
  for i, e in enumerate(examples):
    n = e.size
    view = feats[i, :n].reshape(-1)
    view[e.feat_idx] = e.feat_val
    kinds[i, :n], layers[i, :n] = e.kinds, e.layers + 1
    rel[i, :n, :n] = e.relations
    is_out[i, :n], mask[i, :n] = e.is_output, True
    op[i, :n], enc[i, :n], fn[i, :n], args[i, :n] = e.op, e.enc, e.fn, e.args
    ar_in[i, 0] = programs.BOS
    ar_in[i, 1:len(e.ar)] = e.ar[:-1]
    ar_out[i, :len(e.ar)] = e.ar
  t = lambda a: torch.from_numpy(a)
  batch = Batch(features=t(feats), kinds=t(kinds), layers=t(layers), relations=t(rel), is_output=t(is_out),
                node_mask=t(mask), op=t(op), enc=t(enc), fn=t(fn), args=t(args), ar_in=t(ar_in), ar_out=t(ar_out))
  if model_cfg.input_mode == "flat":
    chunk = model_cfg.flat_chunk
    tokens = max(int(e.flat_idx.max()) // chunk + 1 if len(e.flat_idx) else 1 for e in examples)
    x = np.zeros((b, tokens * chunk), np.float32)
    fmask = np.zeros((b, tokens), bool)
    for i, e in enumerate(examples):
      x[i, e.flat_idx] = e.flat_val
      fmask[i, :(int(e.flat_idx.max()) // chunk + 1) if len(e.flat_idx) else 1] = True
    batch["flat"], batch["flat_mask"] = t(x.reshape(b, tokens, chunk)), t(fmask)
  return batch
