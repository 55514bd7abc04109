"""Compiled weights -> a small graph of computation nodes (the encoder's input).

Tracr weights are sparse and blocky: each SOp owns a block of residual
dimensions, written by exactly one attention head or one group of MLP hidden
units (a SelectorWidth by a head plus the MLP that cleans up its scratch
dimension). So instead of flattening millions of mostly-zero floats we read
the weights as a graph:

  nodes  "tokens", "indices" (the embeddings) and one node per writer group,
         i.e. one node per SOp of the program;
  edges  which node reads which node's block, and in which role (query, key,
         value, first/second MLP input);
  features  the node's own weights in *local* coordinates (rows and columns
         restricted to its input and output blocks, each block in value order):
         for a head its QK and OV circuits; for an MLP the table of what it
         computes, found by probing it with each input value (one-hot values
         of categorical inputs; for numerical inputs, points between the
         thresholds of its discretising units).

Naming invariance: a user's SOp names permute whole blocks (and heads and MLP
unit groups), never the order inside one. Local coordinates undo those
permutations, and nodes are ordered by (layer, sublayer, a structural hash of
their weights and inputs), which is computed from the weights alone. So the
same program compiled under any names gives identical encoder input
(`weights_test.py` checks this).

Shapes: K = MAX_BLOCK (values per block kept; larger blocks are truncated).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tracr_decompiler.compiling import layout

from tracr_decompiler.encoding import nodes as nodes_lib
from tracr_decompiler.encoding.nodes import Node, NotTracrError

FEATURE_VERSION = 6  # bump when features change: cached training examples are keyed by it
MAX_BLOCK = 16  # values per SOp block kept (more are truncated)
MAX_HIDDEN = 128  # scale for the hidden-unit count feature
KINDS = ("tokens", "indices", "head", "mlp", "selector_width")
# Edge roles, from reader to the node it reads; REVERSE_OFFSET + role for the other direction.
ROLES = ("query", "key", "value", "first", "second")
NUM_RELATIONS = 2 * len(ROLES) + 1  # + "self"
_K, _H = MAX_BLOCK, MAX_HIDDEN
FEATURE_LAYOUT = {  # name -> shape, concatenated in this order
    "table": (_K, _K, _K),  # MLP probed on its inputs: [first input value, second input value, output dim]
    "probe_x": (_K,),  # probe points of a numerical first input (its value set, read from thresholds)
    "probe_y": (_K,),  # same for the second input
    "qk": (_K + 1, _K + 1),  # query rows (+ `one`) x key cols (+ BOS)
    "ov": (_K + 1, _K),  # value rows (+ BOS) x output cols
    "meta": (8,),
    "out_values": (_K,),  # the model's output values, on the output node only
}
FEATURE_DIM = sum(int(np.prod(s)) for s in FEATURE_LAYOUT.values())


@dataclasses.dataclass
class WeightGraph:
  """Encoder input for one compiled model."""
  features: np.ndarray  # [S, FEATURE_DIM] float32
  kinds: np.ndarray  # [S] index into KINDS
  layers: np.ndarray  # [S] layer (-1 for embeddings)
  relations: np.ndarray  # [S, S, NUM_RELATIONS] 0/1: relation of node i to node j
  is_output: np.ndarray  # [S] 1 for the node writing the model's output
  nodes: list[Node]  # analysis only (dims for aligning training targets)


def _hash(*parts) -> str:
  return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _pad(a: np.ndarray, shape) -> np.ndarray:
  out = np.zeros(shape, np.float32)
  a = a[tuple(slice(0, n) for n in shape)]
  out[tuple(slice(0, n) for n in a.shape)] = a
  return out


def _probes(w1: np.ndarray, dims: list[int], one: list[int], limit: int = _K,
            exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Residual vectors to probe an MLP input with, and their numerical values.

  A categorical input is probed with each of its one-hot values. A numerical
  input (a single dimension) is probed between the thresholds where its hidden
  units switch (tracr's discretising MLPs put them between consecutive input
  values), which recovers one probe per input value. At most `limit` probes.
  Features cluster unit crossings less than 0.02 apart into one threshold (the
  shipped model was trained so); `exact` (the function readers) pairs them as
  tracr made them (_thresholds), so dense value sets (fractions k/n up to
  n = 12) keep one probe per value.
  """
  d = w1.shape[0]
  if not dims:
    return np.zeros((1, d), np.float32), np.zeros(0, np.float32)
  if len(dims) > 1:
    xs = np.zeros((min(len(dims), limit), d), np.float32)
    xs[np.arange(len(xs)), dims[:limit]] = 1
    return xs, np.zeros(0, np.float32)
  w = w1[dims[0]]
  c = w1[one[0]] if one else np.zeros_like(w)
  paired = _thresholds(w.astype(np.float64), c.astype(np.float64)) if exact else None
  if paired is not None:
    step = 1 / abs(w[w != 0][0])
    lower = np.concatenate([[paired[0] - step - 1.0], paired])  # region k: above threshold k-1 ...
    upper = np.concatenate([paired - step, [paired[-1] + 1.0]])  # ... and below threshold k's ramp
    pts = np.where(upper > lower, (lower + upper) / 2, lower)[:limit]  # no clean point: the previous one's end
  else:
    t = np.sort(-c[w != 0] / w[w != 0])
    clusters = [x for i, x in enumerate(t) if i == len(t) - 1 or t[i + 1] - x > 0.02]  # pairs of units 1/L apart
    pts = (np.array([clusters[0] - 0.5] + [(a + b) / 2 for a, b in zip(clusters, clusters[1:])]
                    + [clusters[-1] + 0.5]) if clusters else np.array([0.0]))[:limit]
  xs = np.zeros((len(pts), d), np.float32)
  xs[:, dims[0]] = pts
  return xs, pts.astype(np.float32)


def _thresholds(w: np.ndarray, c: np.ndarray) -> np.ndarray | None:
  """A discretising MLP's thresholds t_k, ascending, from its units' weights w and biases c on `one`.

  tracr gives each threshold two units with the same weight L, crossing zero at
  t_k - 1/L and t_k. The largest crossing left is always some pair's upper end,
  so pairs are peeled off from the top. None when the units are not such pairs.
  """
  nz = w != 0
  if not nz.any() or nz.sum() % 2 or not np.allclose(w[nz], w[nz][0]):
    return None
  step = 1 / abs(w[nz][0])
  left = sorted((-c[nz] / w[nz]).tolist())
  found = []
  while left:
    t = left.pop()
    partner = int(np.argmin([abs(x - (t - step)) for x in left]))
    if abs(left[partner] - (t - step)) > 1e-3 * step:
      return None
    left.pop(partner)
    found.append(t)
  return np.array(found[::-1])


def probe_mlp(n: Node, nodes: list[Node], params, one_dim: int | None,
              limit: int = _K, exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """An MLP node run on each value of its inputs (see _probes): what it computes, as a table.

  Returns (out [Px, Py, W], probe_x [Px], probe_y [Py]): out[i, j] is the node's
  output block (its first `limit` dims) for the i-th value of its first input and
  the j-th of its second (Py = 1 without one); probe_x / probe_y are the points a
  numerical input was probed at (empty for a categorical input: probe i is its
  i-th value, in block order).
  """
  one = [one_dim] if one_dim is not None else []
  w1 = np.asarray(params[layout.mlp(n.layer, "linear_1")]["w"])[:, n.units]  # [D, U]
  w2 = np.asarray(params[layout.mlp(n.layer, "linear_2")]["w"])[n.units][:, n.writes[:limit]]  # [U, <=limit]
  ins = n.inputs.get("mlp", [])
  xs, px = _probes(w1, nodes[ins[0]].writes if ins else [], one, limit, exact)
  ys, py = _probes(w1, nodes[ins[1]].writes if len(ins) > 1 else [], one, limit, exact)
  bias = np.zeros(w1.shape[0], np.float32)
  if one:
    bias[one[0]] = 1.0  # tracr sets `one` at every position
  hidden = np.maximum((xs[:, None] + ys[None] + bias) @ w1, 0)  # [Px, Py, U]
  return hidden @ w2, px, py


def _features(n: Node, nodes: list[Node], params, special, key_size: int) -> np.ndarray:
  """The node's weights in local coordinates (see FEATURE_LAYOUT)."""
  f = {name: np.zeros(shape, np.float32) for name, shape in FEATURE_LAYOUT.items()}
  one = [special["one"]] if special["one"] is not None else []
  if n.units and n.kind == "mlp":
    out, px, py = probe_mlp(n, nodes, params, special["one"])
    f["table"] = _pad(np.arcsinh(out), FEATURE_LAYOUT["table"])
    f["probe_x"] = _pad(np.arcsinh(px), (_K,))
    f["probe_y"] = _pad(np.arcsinh(py), (_K,))
  if n.head is not None:
    cols = layout.head_columns(n.head, key_size)
    wq, wk, wv = (np.asarray(params[layout.attn(n.layer, m)]["w"]) for m in ("query", "key", "value"))
    wo = np.asarray(params[layout.attn(n.layer, "linear")]["w"])[cols]
    qk = wq[:, cols] @ wk[:, cols].T  # [D, D] bilinear form query-dim x key-dim
    ov = wv[:, cols] @ wo  # [D, D] value-dim -> output-dim
    q_in, k_in, v_in = (n.inputs.get(r, []) for r in ("query", "key", "value"))
    q_dims = (nodes[q_in[0]].writes[:_K] if q_in else [])
    k_dims = (nodes[k_in[0]].writes[:_K] if k_in else [])
    v_dims = (nodes[v_in[0]].writes[:_K] if v_in else [])
    q_rows = _pad(qk[q_dims], (_K, qk.shape[1]))
    q_rows = np.concatenate([q_rows, qk[one] if one else np.zeros((1, qk.shape[1]), np.float32)])
    f["qk"] = np.arcsinh(np.concatenate([_pad(q_rows[:, k_dims], (_K + 1, _K)), q_rows[:, [special["bos"]]]], 1))
    out_dims = n.reads["scratch"] if n.kind == "selector_width" else n.writes
    v_rows = np.concatenate([_pad(ov[v_dims], (_K, ov.shape[1])), ov[[special["bos"]]]])
    f["ov"] = np.arcsinh(_pad(v_rows[:, out_dims[:_K]], FEATURE_LAYOUT["ov"]))
  kind_idx = KINDS.index(n.kind)
  f["meta"][:] = [n.layer / 10.0, kind_idx == 2, kind_idx == 3, kind_idx == 4, len(n.writes) / _K,
                  len(n.units) / _H, len(n.inputs.get("mlp", [])), len(n.writes) == 1]
  return np.concatenate([a.ravel() for a in f.values()]).astype(np.float32)


_RANK = {"tokens": 0, "indices": 1, "head": 2, "selector_width": 2, "mlp": 3}


def _embedding_features(n: Node, special) -> np.ndarray:
  """tokens / indices nodes: their values, which anchor every value downstream."""
  f = {name: np.zeros(shape, np.float32) for name, shape in FEATURE_LAYOUT.items()}
  values = special["token_values"] if n.kind == "tokens" else list(range(len(n.writes)))
  f["probe_x"] = _pad(np.arcsinh(np.array([float(v) if isinstance(v, (int, float, np.number)) else 0.0
                                           for v in values], np.float32)), (_K,))
  return np.concatenate([a.ravel() for a in f.values()])


def _place(stage: list[Node], ordered: list[Node], feats: list, writer: dict, params, special,
           key_size: int) -> None:
  """Appends one stage's nodes in canonical order (by a hash of their local weights and inputs)."""
  placed = []
  for n in stage:
    n.inputs = {role: sorted({writer[d] for d in dims if d in writer})
                for role, dims in n.reads.items() if role != "scratch"}
    feat = (_features(n, ordered, params, special, key_size) if n.layer >= 0
            else _embedding_features(n, special))
    input_keys = {role: [ordered[i].key for i in idx] for role, idx in n.inputs.items()}
    n.key = _hash(_RANK[n.kind], n.kind, n.layer, len(n.writes), input_keys, np.round(feat, 4).tobytes())
    placed.append((n, feat))
  for n, feat in sorted(placed, key=lambda x: (_RANK[x[0].kind], x[0].key)):
    for d in n.writes:
      writer[d] = len(ordered)
    ordered.append(n)
    feats.append(feat)


def _ordered_nodes(params, input_encoding, settings, num_layers, num_heads, key_size):
  """All nodes in canonical order, with their features.

  Canonical order: embeddings, then per layer its heads (selector-width nodes
  included) then its MLP ops, each stage sorted by a structural hash. A node's
  inputs are always placed before it, so its local features, and its hash, are
  known when it is ordered; nothing depends on SOp names.
  """
  try:
    layers = layout.layers_in(params)
    if layers != list(range(num_layers)):
      raise NotTracrError("layers are not numbered 0..n-1")
    if np.asarray(params[layout.attn(0, "query")]["w"]).shape[1] != num_heads * key_size:
      raise NotTracrError("attention shapes do not match num_heads * key_size")
    embeddings, special = nodes_lib.embedding_nodes(params, input_encoding, settings)
    all_heads = [nodes_lib.head_nodes(params, layer, num_heads, key_size) for layer in range(num_layers)]
    numerical = nodes_lib.numerical_values(sum(all_heads, []))  # later layers' heads say how a block is read
    ordered, feats, writer = [], [], {}
    for n in embeddings:
      _place([n], ordered, feats, writer, params, special, key_size)
    for layer in range(num_layers):
      heads = all_heads[layer]
      # Provisional block ids for this layer's heads: the MLP may read them.
      tmp_writer, blocks = dict(writer), {i: n.writes for i, n in enumerate(ordered)}
      for k, h in enumerate(heads):
        blocks[len(ordered) + k] = h.writes
        tmp_writer.update({d: len(ordered) + k for d in h.writes})
      mlps, sws = nodes_lib.mlp_nodes(params, layer, tmp_writer, blocks, special, heads, numerical)
      _place(heads + sws, ordered, feats, writer, params, special, key_size)
      _place(mlps, ordered, feats, writer, params, special, key_size)
  except KeyError as e:
    raise NotTracrError(f"missing parameter {e}") from None
  except (IndexError, ValueError) as e:
    if isinstance(e, NotTracrError):
      raise
    raise NotTracrError(f"unexpected weight structure: {e}") from None
  return ordered, feats, special


def encode_weights(params, input_encoding, settings, num_layers, num_heads, key_size,
                   output_values=None, output_dims=None) -> WeightGraph:
  """Reads a compiled model's parameters into the encoder's graph input.

  Args:
    params: tracr's parameter dict (module -> {"w", "b"}), NumPy or JAX arrays.
    input_encoding: token -> row of the token embedding (tracr's input encoder map).
    settings: CompileSettings (BOS/PAD names).
    output_values: the values of the model's output SOp (tracr's output
      encoder), when known; categorical outputs only.
    output_dims: the output SOp's residual dims, when known.
  Raises:
    NotTracrError: if the weights do not have Tracr's structure.
  """
  ordered, feats, special = _ordered_nodes(params, input_encoding, settings, num_layers, num_heads, key_size)
  s = len(ordered)
  relations = np.zeros((s, s, NUM_RELATIONS), np.float32)
  for i, n in enumerate(ordered):
    relations[i, i, -1] = 1
    roles = dict(n.inputs)
    mlp_inputs = roles.pop("mlp", [])
    if n.kind == "selector_width":
      mlp_inputs = []
    for r, idx in [("first", mlp_inputs[:1]), ("second", mlp_inputs[1:2])] + [
        (r, roles.get(r, [])) for r in ("query", "key", "value")]:
      for j in idx:
        relations[i, j, ROLES.index(r)] = 1
        relations[j, i, len(ROLES) + ROLES.index(r)] = 1
  # The output is the node writing the output block. In a model tracr compiled,
  # every SOp reaches the output, so that is the unique deepest op, the last
  # node in our order; that is also the fallback when the block is unknown.
  out = s - 1
  if output_dims:
    out = next((i for i, n in enumerate(ordered) if sorted(n.writes) == sorted(output_dims)), s - 1)
  is_output = np.zeros(s, np.float32)
  is_output[out] = 1
  features = np.stack(feats)
  if output_values:  # the model's output encoder: the values of the output SOp
    vals = np.array([float(v) if isinstance(v, (int, float, bool, np.number)) else 0.0
                     for v in output_values[:_K]], np.float32)
    features[out, -_K:][:len(vals)] = np.tanh(vals / 4.0) + 0.01  # 0 means "no value"
  if not any(n.layer >= 0 for n in ordered):
    raise NotTracrError("no attention head or MLP writes anything")
  return WeightGraph(features=features, kinds=np.array([KINDS.index(n.kind) for n in ordered]),
                     layers=np.array([n.layer for n in ordered]), relations=relations,
                     is_output=is_output, nodes=ordered)


def encode_model(model) -> WeightGraph:
  """encode_weights for a CompiledModel."""
  return encode_weights(model.params, model.input_encoding, model.settings, model.num_layers,
                        model.num_heads, model.key_size, model.output_values, model.output_dims)
