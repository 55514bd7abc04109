"""The batch contract between featurised weights and the model: one typed dict, built here.

Shapes: B batch, S nodes, F feature dim (encoding.weights.FEATURE_DIM),
R relation types, A max arguments per line, L AR target length, T flat
chunks, C flat chunk size. Inference batches carry the input keys only;
training batches (training/data.py's `collate`) add the targets.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from tracr_decompiler.encoding import weights


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
