"""Finds the computation nodes of a compiled model: who writes which residual block.

A node is an attention head, a group of MLP hidden units that implements one
op, or both (SelectorWidth). Nodes are found layer by layer, so when an MLP
layer is split into ops, the blocks of everything it reads are already known.

Splitting an MLP layer: tracr concatenates the hidden units of all ops of a
layer, each op's units contiguous. Units that write a common residual
dimension belong to one op. What remains are lookup units (categorical maps:
one unit per output value, `x -> f(x)` in the first layer, identity in the
second; categorical->numerical maps: a single unit). A run of consecutive
lookup units reading one input block, with disjoint supports that together
cover that block exactly once, is one categorical map (f is total); any other
lookup unit is an op of its own.

One unit may serve several ops: every SelectorWidth's MLP has a unit that
reads BOS and subtracts, at the BOS position, what the op wrote there (its
head's scratch dimension and, for a categorical output, its value 0). tracr
names that unit `_hidden_clean_bos_` for every SelectorWidth, and merging a
layer's MLPs merges units by name, so two SelectorWidths in one layer share one
clean-up unit that writes both scratch dimensions. It is left out while the
layer is split, then given to each SelectorWidth it cleans.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.compiling import layout

from tracr_decompiler.errors import TracrDecompilerError


class NotTracrError(TracrDecompilerError, ValueError):
  """The parameters do not have the structure of a Tracr-compiled model."""


@dataclasses.dataclass
class Node:
  kind: str  # one of weights.KINDS
  layer: int  # -1 for the embeddings
  writes: list[int]  # residual dims of this node's block (value order)
  reads: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # role -> dims
  units: list[int] = dataclasses.field(default_factory=list)  # MLP hidden units
  head: int | None = None
  key: str = ""  # structural hash, for ordering
  inputs: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # role -> node indices


def nz_rows(w: np.ndarray) -> list[int]:
  return [int(i) for i in np.flatnonzero(np.abs(w).sum(1) > 0)]


def nz_cols(w: np.ndarray) -> list[int]:
  return [int(i) for i in np.flatnonzero(np.abs(w).sum(0) > 0)]


ONE_TOLERANCE = 1e-3  # fp16 rounding, small noise


def one_columns(tok: np.ndarray) -> list[int]:
  """Candidates for tracr's `one`: token-embedding columns that every row writes as 1 (within ONE_TOLERANCE)."""
  if tok.ndim != 2 or not tok.shape[0]:
    return []
  return [int(j) for j in np.flatnonzero(np.all(np.abs(tok - 1) <= ONE_TOLERANCE, axis=0))]


def embedding_nodes(params, input_encoding, settings) -> tuple[list[Node], dict]:
  """The tokens and indices nodes, and the special dims {"one", "bos", "pad"}."""
  tok = np.asarray(params[layout.TOKEN_EMBED][layout.EMBEDDINGS])
  pos = np.asarray(params[layout.POS_EMBED][layout.EMBEDDINGS])
  if tok.ndim != 2 or pos.ndim != 2 or tok.shape[1] != pos.shape[1]:
    raise NotTracrError("embeddings have inconsistent shapes")
  ones = one_columns(tok)
  one = ones[0] if ones else None
  row_dim = {}
  for token, row in input_encoding.items():
    if not isinstance(row, int) or not 0 <= row < tok.shape[0]:
      raise NotTracrError("input encoding does not match the token embedding")
    cols = [j for j in np.flatnonzero(tok[row]) if j != one]
    if len(cols) != 1:
      raise NotTracrError("token embedding rows are not one-hot")
    row_dim[token] = int(cols[0])
  bos = row_dim.get(settings.compiler_bos)
  if bos is None:
    raise NotTracrError("no BOS token in the input encoding")
  vocab_dims = sorted(d for t, d in row_dim.items() if t not in (settings.compiler_bos, settings.compiler_pad))
  index_dims = []
  for i in range(1, pos.shape[0]):
    nz = np.flatnonzero(pos[i])
    if len(nz) != 1:
      raise NotTracrError("position embedding rows are not one-hot")
    index_dims.append(int(nz[0]))
  tokens_by_dim = sorted((d, t) for t, d in row_dim.items() if t not in (settings.compiler_bos, settings.compiler_pad))
  special = {"one": one, "bos": bos, "pad": row_dim.get(settings.compiler_pad),
             "token_values": [t for _, t in tokens_by_dim]}
  return [Node("tokens", -1, vocab_dims), Node("indices", -1, index_dims)], special


def head_nodes(params, layer: int, num_heads: int, key_size: int) -> list[Node]:
  p = layout.attn(layer)
  q, k, v, o = (np.asarray(params[f"{p}/{n}"]["w"]) for n in ("query", "key", "value", "linear"))
  heads = []
  for h in range(num_heads):
    cols = layout.head_columns(h, key_size)
    writes = nz_cols(o[cols])
    if writes:
      heads.append(Node("head", layer, writes, head=h, reads={
          "query": nz_rows(q[:, cols]), "key": nz_rows(k[:, cols]), "value": nz_rows(v[:, cols])}))
  return heads


def _atoms(w1: np.ndarray, w2: np.ndarray, one: int | None) -> list[list[int]]:
  """Groups of units that must belong to one op, in unit order (union-find).

  Units that write a common dimension are joined. A unit that writes nothing
  (some of a discretising MLP's units do, when neighbouring input values map
  to the same output) joins the group that reads the most of the same inputs.
  One that reads no input either is a discretising MLP's `start` unit (it
  reads only `one` and writes f of the smallest input value, here 0). tracr
  sorts a layer's hidden units by name, and the op's threshold units
  ("_hidden_<label>_", (k, i)) sort right before it ("_hidden_<label>_start"),
  so it joins the unit before it; the nearest writer may be the next op's.
  """
  active = [u for u in range(w1.shape[1]) if np.any(w1[:, u]) or np.any(w2[u])]
  parent = {u: u for u in active}

  def find(u):
    while parent[u] != u:
      parent[u] = parent[parent[u]]
      u = parent[u]
    return u

  first_writer: dict[int, int] = {}
  silent = []
  for u in active:
    outs = [int(d) for d in np.flatnonzero(w2[u])]
    if not outs:
      silent.append(u)
    for d in outs:
      if d in first_writer:
        parent[find(u)] = find(first_writer[d])
      else:
        first_writer[d] = u
  writers = [u for u in active if u not in set(silent)]
  reads = {u: {int(d) for d in np.flatnonzero(w1[:, u]) if d != one} for u in active}
  for u in silent:
    if not writers:
      break
    before = [v for v in active if v < u]
    if not reads[u] and before:
      parent[find(u)] = find(before[-1])
      continue
    best = max(writers, key=lambda v: (len(reads[u] & reads[v]), -abs(u - v)))
    parent[find(u)] = find(best)
  groups: dict[int, list[int]] = {}
  for u in active:
    groups.setdefault(find(u), []).append(u)
  return sorted(groups.values())


def _shared_cleanup_units(w1: np.ndarray, w2: np.ndarray, bos: int, head_dims) -> list[int]:
  """Units that read only BOS and clean the scratch dims of two or more SelectorWidths (see module doc).

  A lone SelectorWidth's clean-up unit cleans one scratch dim and is split as any other unit.
  """
  return [u for u in range(w1.shape[1])
          if nz_rows(w1[:, [u]]) == [bos] and sum(d in head_dims for d in nz_cols(w2[[u]])) >= 2]


def numerical_values(heads: list[Node]) -> set[int]:
  """Dims some head reads alone as its value: each is a numerical SOp of its own.

  A categorical Aggregate reads its SOp's whole block; a numerical one reads one
  dim. So a dim read alone, inside what looks like one categorical block, marks
  numerical SOps (see mlp_nodes).
  """
  return {h.reads["value"][0] for h in heads if len(h.reads["value"]) == 1}


def mlp_nodes(params, layer: int, writer: dict[int, int], blocks: dict[int, list[int]], special,
              heads: list[Node], numerical: frozenset[int] | set[int] = frozenset()) -> tuple[list[Node], list[Node]]:
  """Splits the layer's MLP into op nodes; returns (mlp nodes, selector-width nodes).

  numerical: dims known to be numerical SOps (numerical_values), never merged into a table.
  """
  p = layout.mlp(layer)
  w1, w2 = np.asarray(params[f"{p}/linear_1"]["w"]), np.asarray(params[f"{p}/linear_2"]["w"])
  b1 = np.asarray(params[f"{p}/linear_1"]["b"])
  one = special["one"]
  head_dims = {d: h for h in heads for d in h.writes}
  shared = _shared_cleanup_units(w1, w2, special["bos"], head_dims)
  if shared:  # split the layer without them (they would join all their SelectorWidths into one atom)
    w1_own, w2_own = w1.copy(), w2.copy()
    w1_own[:, shared], w2_own[shared] = 0, 0
    atoms = _atoms(w1_own, w2_own, one)
  else:
    atoms = _atoms(w1, w2, one)

  def signature(atom: list[int]) -> tuple[tuple[int, ...], bool, set[tuple[int, ...]] | None]:
    """(blocks read, reads `one`, cover items) of an atom; items None if not a table."""
    reads = [int(d) for d in np.flatnonzero(np.abs(w1[:, atom]).sum(1))]
    blocks_read = tuple(sorted({writer.get(d, -1) for d in reads if d != one}))
    items: set[tuple[int, ...]] = set()  # input values (lookup units) or value pairs (pair units)
    for u in atom:
      dims = [int(d) for d in np.flatnonzero(w1[:, u]) if d != one]
      by_block: dict[int, list[int]] = {}
      for d in dims:
        by_block.setdefault(writer.get(d, -1), []).append(d)
      if -1 in by_block or not by_block:
        return blocks_read, one in reads, None
      if len(by_block) == 1:  # lookup unit: each input value it reads is one item
        items |= {(d,) for d in dims}
      elif all(len(v) == 1 for v in by_block.values()):  # pair unit (x, y)
        items.add(tuple(by_block[b][0] for b in sorted(by_block)))
      else:
        return blocks_read, one in reads, None
    return blocks_read, one in reads, items

  # A categorical map or sequence map covers its input table exactly once, so
  # a run of atoms with the same inputs is one op when together they cover it. Unless they write
  # numerical SOps: two numerical Maps of tokens (`x == "("`, `x == ")"`) cover a 2-token vocabulary
  # just as one categorical Map to two values does; what reads them tells them apart.
  sigs = [signature(a) for a in atoms]
  sigs = [(b, o, None if set(nz_cols(w2[a])) & numerical else i) for a, (b, o, i) in zip(atoms, sigs)]
  # A unit that reads nothing and has no bias never fires (ReLU(0)). tracr leaves such
  # units for output values a categorical MLP can never produce: SequenceMap(f, x, x)
  # is compiled as Map(f(x, x)) over the value set of f on all pairs. They belong to
  # the op they sit among (hidden units of one op are contiguous): the op after them
  # when they lead, else the one before.
  dead = [not np.any(w1[:, a]) and not np.any(b1[a]) for a in atoms]
  groups: list[list[int]] = []
  i = 0
  while i < len(atoms):
    start = i
    while i < len(atoms) - 1 and dead[i]:
      i += 1
    blocks_read, uses_one, items = sigs[i]
    end = i + 1
    if items is not None and -1 not in blocks_read:
      full = 1
      for b in blocks_read:
        full *= len(blocks[b])
      covered: set = set()
      for j in range(i, len(atoms)):
        if dead[j]:
          continue
        more = sigs[j][2]
        if sigs[j][:2] != (blocks_read, uses_one) or more is None or more & covered:
          break
        covered |= more
        if len(covered) == full:
          end = j + 1
          break
    while end < len(atoms) and dead[end]:
      end += 1
    groups.append(sum(atoms[start:end], []))
    i = end

  mlps, sws = [], []
  for own in groups:
    units, writes = own, nz_cols(w2[own])
    scratch = [d for d in writes if d in head_dims]
    if shared:
      # The shared unit writes the other SelectorWidths' blocks too, so only the scratch dims this group's
      # own units read (its SelectorWidth's) say which it belongs to, and only its own units say the block.
      read_scratch = {d for d in nz_rows(w1[:, own]) if d in head_dims}
      cleanup = [u for u in shared if read_scratch & set(nz_cols(w2[[u]]))]
      units = sorted(own + cleanup)
      scratch = [d for d in nz_cols(w2[cleanup]) if d in read_scratch]
    node = Node("mlp", layer, [d for d in writes if d not in head_dims], units=units,
                reads={"mlp": nz_rows(w1[:, units])})
    if scratch:  # SelectorWidth: this MLP cleans the dimension its head wrote
      head = head_dims[scratch[0]]
      node = Node("selector_width", layer, node.writes, units=units, head=head.head, reads={
          "query": head.reads["query"], "key": head.reads["key"], "value": head.reads["value"],
          "mlp": node.reads["mlp"], "scratch": head.writes})
      heads.remove(head)
      sws.append(node)
    else:
      mlps.append(node)
  return mlps, sws
