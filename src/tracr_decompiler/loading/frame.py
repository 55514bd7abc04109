"""A model's residual stream put into tracr's order wherever the weights say which dim is which.

tracr orders the dims inside a block by value (`tokens:0, tokens:1, ...`,
`b:False, b:True`), and everything downstream (the encoder's local
coordinates, the function readers, weight identity) reads a block in dim order
as value order. A model a user hands us need not keep that order: a permuted
residual stream, a reordered output block, or embedding rows in another order
compute the same function. Where the weights label the dims, this module moves
them back into tracr's order, a pure permutation of the residual stream
(writers' columns and readers' rows move together), so the model computes
exactly what it computed before:

  tokens   each token's embedding row writes one dim (besides `one`): the
           token block in tracr's token order;
  indices  each position's embedding row writes one dim: the index block in
           position order;
  output   `output_dims` lists the output block's dims in output-value order
           (from W_U or the file): the block in that order.

Dims inside intermediate categorical blocks carry no labels in the weights and
stay where they are: a model that permutes them is still decompiled and
verified on its outputs, but weight identity (a proof up to renaming) then
fails, erring towards "not proved".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import nodes

# Which side of the residual stream each parameter touches: writers' last axis, readers' first.
_WRITERS = ("linear", "linear_2")
_READERS = ("query", "key", "value", "linear_1")


def tracr_token_order(tokens) -> list:
  """Tokens (BOS and PAD included) in the order tracr gives their embedding rows and residual dims."""
  from tracr.craft import bases
  return [b.value for b in bases.VectorSpaceWithBasis.from_values("tokens", tokens).basis]


def _one_hot_dims(rows: np.ndarray, skip: int | None) -> list[int] | None:
  """The one dim each row writes (besides `skip`), or None when a row writes none or several."""
  out = []
  for row in rows:
    nz = [int(j) for j in np.flatnonzero(row) if j != skip]
    if len(nz) != 1:
      return None
    out.append(nz[0])
  return out if len(set(out)) == len(out) else None


def order(model: CompiledModel) -> np.ndarray:
  """perm with perm[new dim] = old dim that puts the labelled blocks in tracr's order (identity elsewhere)."""
  tok = model.params[layout.TOKEN_EMBED][layout.EMBEDDINGS]
  pos = model.params[layout.POS_EMBED][layout.EMBEDDINGS]
  width = tok.shape[1]
  ones = nodes.one_columns(tok)
  one = ones[0] if len(ones) == 1 else None
  blocks: list[list[int]] = []  # each block's dims in the order they belong in
  try:
    tokens = tracr_token_order(list(model.input_encoding))
    token_dims = _one_hot_dims(tok[[model.input_encoding[t] for t in tokens]], one)
  except (TypeError, ValueError, KeyError):  # tokens tracr cannot sort: leave the block as it is
    token_dims = None
  blocks += [token_dims] if token_dims else []
  index_dims = _one_hot_dims(pos, one)
  blocks += [index_dims] if index_dims else []
  blocks.append(list(model.output_dims))
  perm = np.arange(width)
  taken: set[int] = set()
  for dims in blocks:
    if taken & set(dims):  # blocks that overlap are not tracr's: leave the rest to the readers to refuse
      continue
    taken |= set(dims)
    perm[sorted(dims)] = dims
  return perm


def permute(model: CompiledModel, perm: np.ndarray) -> CompiledModel:
  """The same model with residual dim `perm[i]` moved to position i (a function-preserving change)."""
  if np.array_equal(perm, np.arange(len(perm))):
    return model
  new_of = np.empty_like(perm)
  new_of[perm] = np.arange(len(perm))
  params: dict[str, dict[str, np.ndarray]] = {}
  for module, ps in model.params.items():
    part = module.rsplit("/", 1)[-1]
    moved = {}
    for name, value in ps.items():
      if module in (layout.TOKEN_EMBED, layout.POS_EMBED) or (part in _WRITERS and name in ("w", "b")):
        value = value[..., perm]
      elif part in _READERS and name == "w":
        value = value[perm]
      moved[name] = np.ascontiguousarray(value)
    params[module] = moved
  labels = [model.residual_labels[i] for i in perm] if len(model.residual_labels) == len(perm) else []
  return dataclasses.replace(model, params=params, residual_labels=labels,
                             output_dims=[int(new_of[d]) for d in model.output_dims])


# Entries at most SNAP of their matrix's largest are read as zero, and a whole matrix or bias at most SNAP of its
# kind's largest weight (an empty sublayer or a zero bias, plus noise). Only for weights that cannot be read
# exactly (loading/transformerlens.py): clean tracr weights can hold ratios below it (a numerical MLP at
# mlp_exactness 1000 beside a categorical one: 1.0 beside 1,500). Reading only: the oracle and weight identity
# use the weights as given, so a misread model is never verified, at worst not decompiled.
SNAP = 1e-3
EMPTY_KIND = 1e-5  # a whole matrix at most this of the model's largest weight is empty, whatever its kind


def snap(params: dict[str, dict[str, np.ndarray]], rel: float = SNAP) -> dict[str, dict[str, np.ndarray]] | None:
  """The parameters with near-zero entries read as zero (see SNAP); None when there are none."""
  kind = lambda module: module.split("/", 2)[-1] if module.startswith("transformer/") else module
  scale: dict[str, float] = {}
  for module, ps in params.items():
    for name in ("w", "embeddings"):
      if name in ps:
        scale[kind(module)] = max(scale.get(kind(module), 0.0), float(np.abs(ps[name]).max(initial=0.0)))
  overall = max(scale.values(), default=0.0)
  out: dict[str, dict[str, np.ndarray]] = {}
  changed = False
  for module, ps in params.items():
    out[module] = {}
    for name, value in ps.items():
      top = float(np.abs(value).max(initial=0.0))
      # A sublayer that is empty in every layer (a program with no attention) has only noise for its kind's
      # largest weight: it is compared with the whole model's, at a far smaller ratio than a kind's own.
      empty = top <= rel * scale.get(kind(module), 0.0) or top <= EMPTY_KIND * overall
      cut = top if empty else rel * top
      small = (np.abs(value) <= cut) & (value != 0)
      if small.any():
        value, changed = np.where(small, np.zeros((), value.dtype), value), True
      out[module][name] = value
  return out if changed else None


def snapped(model: CompiledModel) -> CompiledModel:
  """`model` read with near-zero entries as zero (`params`), the weights as given kept in `given_params`."""
  read = snap(model.params)
  return model if read is None else dataclasses.replace(model, params=read, given_params=model.params)


def to_tracr_frame(model: CompiledModel) -> CompiledModel:
  """`model` with its labelled blocks in tracr's order (see module doc); the same function."""
  return permute(model, order(model))
