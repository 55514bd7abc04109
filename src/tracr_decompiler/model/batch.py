"""The batch contract between featurised weights and the model: one typed dict, built here.

Shapes: B batch, S nodes, F feature dim (encoding.weights.FEATURE_DIM),
R relation types, A max arguments per line, L AR target length, T flat
chunks, C flat chunk size. Inference batches carry the input keys only;
training batches (training/data.py's `collate`) add the targets.

The input representation is chosen in one place, `ModelConfig.input_mode`:
"graph" (ours) feeds the node keys; "flat" (the paper's flatten-and-chunk
baseline, encoding/flat.py) adds `flat`/`flat_mask`, and its NAR head still
gets one learned slot per graph node (node_mask), as in training.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from tracr_decompiler.encoding import flat, weights
from tracr_decompiler.model.config import ModelConfig


class Batch(TypedDict, total=False):
  # inputs (graph mode)
  features: torch.Tensor  # [B, S, F] float32
  kinds: torch.Tensor  # [B, S] int64, index into weights.KINDS
  layers: torch.Tensor  # [B, S] int64, layer + 1 (0 = embeddings)
  relations: torch.Tensor  # [B, S, S, R] float32, 0/1
  is_output: torch.Tensor  # [B, S] float32, 1 on the output node
  node_mask: torch.Tensor  # [B, S] bool, True on real nodes
  # inputs (flat baseline)
  flat: torch.Tensor  # [B, T, C] float32
  flat_mask: torch.Tensor  # [B, T] bool
  # NAR targets (programs.IGNORE where absent)
  op: torch.Tensor  # [B, S] int64
  enc: torch.Tensor  # [B, S] int64
  fn: torch.Tensor  # [B, S] int64
  args: torch.Tensor  # [B, S, A] int64
  # AR targets
  ar_in: torch.Tensor  # [B, L] int64, BOS + shifted tokens
  ar_out: torch.Tensor  # [B, L] int64


def graph_batch(graph: weights.WeightGraph) -> Batch:
  """Inference batch of one graph (no targets)."""
  s = len(graph.nodes)
  t = torch.from_numpy
  return Batch(features=t(graph.features)[None], kinds=t(graph.kinds.astype(np.int64))[None],
               layers=t(graph.layers.astype(np.int64) + 1)[None], relations=t(graph.relations)[None],
               is_output=t(graph.is_output)[None], node_mask=torch.ones(1, s, dtype=torch.bool))


def flat_chunks(params, cfg: ModelConfig) -> np.ndarray:
  """The flat baseline's input [T, C] for one model, sized by the run's config."""
  return flat.flatten_params(params, cfg.flat_chunk, cfg.flat_max_tokens)


def inference_batch(params, graph: weights.WeightGraph, cfg: ModelConfig) -> Batch:
  """The model's input for one compiled model, in the representation the run was trained on."""
  batch = graph_batch(graph)
  if cfg.input_mode == "flat":
    chunks = flat_chunks(params, cfg)
    batch["flat"] = torch.from_numpy(chunks)[None]
    batch["flat_mask"] = torch.ones(1, len(chunks), dtype=torch.bool)
  return batch
