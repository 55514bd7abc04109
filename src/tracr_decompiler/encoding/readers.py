"""Functions read exactly from the weights: an MLP node's table, an attention head's predicate.

The weight graph (weights.py) finds each node and its input and output
blocks; these readers turn a node into the function it computes, in the
coordinates the weights hold: a categorical value is its index in its block
(tracr sorts a block by value), a numerical value is the number itself.

  read_mlp        a Map / SequenceMap MLP: output for each input value (or
                  pair). A categorical input is probed with each of its values;
                  a numerical one (tracr's discretising MLP) at the probe points
                  weights.probe_mlp finds, one inside each interval between
                  thresholds, so probe i stands for the i-th input value.
  read_linear     a LinearSequenceMap MLP: its two factors, the output for a 1
                  in one input and 0 in the other (tracr's MLP is exactly linear).
  read_predicate  a head's QK circuit: predicate(key, query) for each (query
                  value, key value): tracr gives a true pair the logit
                  `softmax_coldness` and a false one 0.

What the weights cannot say: the value *labels* of intermediate categorical
blocks (only their order), so a table's entries are indices; a block with one
value is one dimension, which reads like a numerical SOp; and a predicate that
is false everywhere reads no query or key block at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import nodes as nodes_lib, weights
from tracr_decompiler.encoding.weights import WeightGraph

EMPTY = 0.5  # a categorical output block whose largest entry is below this holds no value (outputs.EMPTY)
_NO_LIMIT = 1 << 30  # probe every value, not only the first weights.MAX_BLOCK the encoder keeps


@dataclasses.dataclass
class MlpTable:
  """What an MLP node computes, on every value of its inputs."""
  outputs: np.ndarray  # [Px] (Map) or [Px, Py] (SequenceMap): output index in its block (-1: none) or number
  categorical_output: bool
  probe_x: np.ndarray  # a numerical first input's probe points; empty when categorical (probe i = value i)
  probe_y: np.ndarray  # the same for the second input (SequenceMap only)


def _special(model: CompiledModel) -> dict:
  return nodes_lib.embedding_nodes(model.params, model.input_encoding, model.settings)[1]


def read_mlp(model: CompiledModel, graph: WeightGraph, i: int) -> MlpTable:
  """The table of MLP node i of `graph` (the weight graph of `model`)."""
  n = graph.nodes[i]
  if n.kind != "mlp" or not n.units:
    raise ValueError(f"node {i} is a {n.kind} node, not an MLP")
  out, px, py = weights.probe_mlp(n, graph.nodes, model.params, _special(model)["one"], limit=_NO_LIMIT,
                                  exact=True)
  if len(n.inputs.get("mlp", [])) < 2:
    out = out[:, 0]  # a Map: drop the second input's single probe
  categorical = len(n.writes) > 1
  if categorical:
    outputs = np.where(out.max(-1) >= EMPTY, out.argmax(-1), -1)
  else:
    outputs = out[..., 0].astype(np.float64)
  return MlpTable(outputs, categorical, px.astype(np.float64), py.astype(np.float64))


def read_linear(model: CompiledModel, graph: WeightGraph, i: int) -> tuple[float, float]:
  """(a, b) with MLP node i computing a * first + b * second, its inputs in node order.

  ValueError when node i does not read two one-dimensional (numerical) inputs into a
  one-dimensional output, or is not linear on a few test points.
  """
  n = graph.nodes[i]
  ins = n.inputs.get("mlp", [])
  if n.kind != "mlp" or not n.units or len(ins) != 2 or len(n.writes) != 1 or any(
      len(graph.nodes[j].writes) != 1 for j in ins):
    raise ValueError(f"node {i} is not a LinearSequenceMap of two numerical SOps")
  one = _special(model)["one"]
  w1 = np.asarray(model.params[layout.mlp(n.layer, "linear_1")]["w"], np.float64)[:, n.units]
  w2 = np.asarray(model.params[layout.mlp(n.layer, "linear_2")]["w"], np.float64)[n.units][:, n.writes]
  dx, dy = graph.nodes[ins[0]].writes[0], graph.nodes[ins[1]].writes[0]

  def f(x: float, y: float) -> float:
    v = np.zeros(w1.shape[0])
    v[dx], v[dy] = x, y
    if one is not None:
      v[one] = 1.0
    return float((np.maximum(v @ w1, 0) @ w2)[0])

  zero = f(0, 0)
  a, b = f(1, 0) - zero, f(0, 1) - zero
  if any(abs(f(x, y) - (a * x + b * y + zero)) > 1e-3 * (1 + abs(x) + abs(y)) for x, y in ((-3, 2), (2.5, -1.5))):
    raise ValueError(f"node {i} is not linear in its inputs")
  return a, b


def read_predicate(model: CompiledModel, graph: WeightGraph, i: int) -> np.ndarray:
  """Truth table [Q, K] of head (or selector-width) node i: entry [q, k] is predicate(key k, query q).

  Q and K are the sizes of the query and key SOps' blocks, values in block order.
  """
  n = graph.nodes[i]
  if n.head is None:
    raise ValueError(f"node {i} is a {n.kind} node, not an attention head")
  special = _special(model)
  cols = layout.head_columns(n.head, model.key_size)
  wq, wk = (np.asarray(model.params[layout.attn(n.layer, m)]["w"])[:, cols] for m in ("query", "key"))
  qk = wq @ wk.T  # [D, D]: query dim x key dim
  q_in, k_in = n.inputs.get("query", []), n.inputs.get("key", [])
  if not q_in or not k_in:  # false everywhere: nothing but `one` x BOS is left to read
    return np.zeros((0, 0), bool)
  q_dims, k_dims = graph.nodes[q_in[0]].writes, graph.nodes[k_in[0]].writes
  # `one` x BOS is 0.5 (1 for SelectorWidth) times the coldness; a true pair is 1 times it.
  scale = abs(qk[special["one"], special["bos"]]) if special["one"] is not None else np.abs(qk).max()
  return qk[np.ix_(q_dims, k_dims)] > 0.25 * scale
