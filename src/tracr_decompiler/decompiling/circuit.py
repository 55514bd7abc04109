"""The model's circuit as the decompiled program implies it: which component computes which SOp, which reads which.

Circuit-discovery methods (ACDC, auto-circuit, Edge Pruning) are scored against hand-written circuits of a
few tracr models. A decompiled program knows every model's circuit. Components are TransformerLens'
granularity: the embeddings, each attention head, each layer's MLP, the output. An edge runs from a
component that writes a residual dim to a later component that reads it, and says which input it feeds
(a head's Q, K or V, an MLP's input, the output) and which SOps the dims it carries hold (`one` and `BOS`:
tracr's constant directions, e.g. a selector's always-attend-to-BOS term or an MLP's bias). Edges are read
from the given weights (a dim is read where a weight on it is non-zero); the SOp names and line numbers come
from the program's lines matched to the weight nodes. For a proved result the weights are the program's
compile, so the circuit is exactly the program's.

Names for other tools: `tl_hook` gives ACDC's TransformerLens hook names (`blocks.0.hook_resid_pre`,
`blocks.L.attn.hook_result[H]`, `blocks.L.hook_q_input[H]`, `blocks.L.hook_mlp_in`, `blocks.L.hook_mlp_out`,
`blocks.{n-1}.hook_resid_post`), `auto_circuit` auto-circuit's edge names (`Resid Start->A3.0.Q`,
`MLP 1->MLP 2`, `A3.0->Resid End`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import nodes as nodes_lib, weights
from tracr_decompiler.program import ir

FORMAT = "tracr-decompiler/circuit"
VERSION = 1
Input = Literal["q", "k", "v", "mlp", "out"]

# Which weight node kind computes each op, and the attention roles of its arguments in line order.
KIND_OF_OP = {"map": "mlp", "sequence_map": "mlp", "linear_sequence_map": "mlp", "aggregate": "head",
              "selector_width": "selector_width"}
ROLES_OF_OP = {"aggregate": ("key", "query", "value"), "selector_width": ("key", "query")}


def match_lines(program: ir.Program, graph: weights.WeightGraph) -> dict[str, int]:
  """Line name -> index of the weight node it is (tokens -> 0, indices -> 1); unmatched lines are absent."""
  at = {"tokens": 0, "indices": 1}
  taken = {0, 1}
  for line in program.lines:
    if any(a not in at for a in line.args):
      continue
    kind = KIND_OF_OP[line.op]
    if kind == "mlp":
      want = {"mlp": sorted({at[a] for a in line.args})}
    else:
      want = {role: [at[a]] for role, a in zip(ROLES_OF_OP[line.op], line.args)}
    for i, n in enumerate(graph.nodes):
      if i in taken or n.kind != kind:
        continue
      if all(sorted(set(n.inputs.get(role, []))) == idx for role, idx in want.items()):
        at[line.out] = i
        taken.add(i)
        break
  return at


@dataclasses.dataclass(frozen=True)
class Component:
  name: str  # "embed", "pos_embed", "A{layer}.{head}", "MLP {layer}", "output"
  layer: int  # -1 for the embeddings; n_layers for the output
  head: int | None
  sops: tuple[str, ...]  # the program's SOps this component computes (several for a layer's MLP)
  lines: tuple[int, ...]  # their 1-based line numbers in the decompiled source's `vN = ...` lines


@dataclasses.dataclass(frozen=True)
class Edge:
  src: str
  dst: str
  input: Input  # which input of dst it feeds
  carries: tuple[str, ...]  # SOps (or "one", "BOS") whose dims dst reads from src


@dataclasses.dataclass
class Circuit:
  components: list[Component]
  edges: list[Edge]
  n_layers: int
  exact: bool  # the program was proved: the weights are its compile, the circuit is exactly its

  def tl_hook(self, edge: Edge) -> tuple[str, str]:
    """(source hook, destination hook) in ACDC's TransformerLens naming."""
    by = {c.name: c for c in self.components}
    s, d = by[edge.src], by[edge.dst]
    src = ("blocks.0.hook_resid_pre" if s.layer < 0 else f"blocks.{s.layer}.attn.hook_result[{s.head}]"
           if s.head is not None else f"blocks.{s.layer}.hook_mlp_out")
    if edge.input == "out":
      dst = f"blocks.{self.n_layers - 1}.hook_resid_post"
    elif edge.input == "mlp":
      dst = f"blocks.{d.layer}.hook_mlp_in"
    else:
      dst = f"blocks.{d.layer}.hook_{edge.input}_input[{d.head}]"
    return src, dst

  def auto_circuit(self, edge: Edge) -> str:
    """The edge in auto-circuit's naming, e.g. "Resid Start->A3.0.Q"."""
    src = "Resid Start" if edge.src in ("embed", "pos_embed") else edge.src
    dst = {"out": "Resid End", "mlp": edge.dst}.get(edge.input, f"{edge.dst}.{edge.input.upper()}")
    return f"{src}->{dst}"

  def to_json(self) -> dict:
    return {"format": FORMAT, "format_version": VERSION, "exact": self.exact, "n_layers": self.n_layers,
            "components": [dataclasses.asdict(c) for c in self.components],
            "edges": [{**dataclasses.asdict(e), "tl_hook": list(self.tl_hook(e)), "auto_circuit": self.auto_circuit(e)}
                      for e in self.edges]}

  def dumps(self) -> str:
    return json.dumps(self.to_json(), indent=1) + "\n"


def _nz_rows(w: np.ndarray) -> set[int]:
  return set(nodes_lib.nz_rows(np.asarray(w)))


def _nz_cols(w: np.ndarray) -> set[int]:
  return set(nodes_lib.nz_cols(np.asarray(w)))


def read_circuit(model: CompiledModel, program: ir.Program, exact: bool,
                 graph: weights.WeightGraph | None = None) -> Circuit:
  """The circuit of `model` (in tracr's frame, as loading gives it) labelled by `program`'s lines."""
  graph = graph if graph is not None else weights.encode_model(model)
  p, k = model.params, model.key_size
  _, special = nodes_lib.embedding_nodes(p, model.input_encoding, model.settings)
  # Which SOp each residual dim holds.
  at = match_lines(program, graph)
  name_of_node = {i: name for name, i in at.items()}
  holds: dict[int, str] = {}
  for i, n in enumerate(graph.nodes):
    name = name_of_node.get(i, f"node {i}")
    for d in n.writes:
      holds[d] = name
    for d in n.reads.get("scratch", []):
      holds.setdefault(d, f"{name} (scratch)")
  for key, label in (("one", "one"), ("bos", "BOS")):
    if special[key] is not None:
      holds[special[key]] = label
  number = {line.out: i for i, line in enumerate(program.lines, 1)}
  # Components in the order they run, each with what it writes and reads (role -> dims).
  comps: list[tuple[Component, set[int], dict[str, set[int]]]] = []
  sops_of: dict[str, list[str]] = {}
  for i, n in enumerate(graph.nodes):
    if i not in name_of_node or n.layer < 0:
      continue
    if n.kind in ("head", "selector_width"):
      sops_of.setdefault(f"A{n.layer}.{n.head}", []).append(name_of_node[i])
    if n.kind in ("mlp", "selector_width"):
      sops_of.setdefault(f"MLP {n.layer}", []).append(name_of_node[i])
  comp = lambda name, layer, head=None: Component(name, layer, head, tuple(sops_of.get(name, ())),
                                                  tuple(number[s] for s in sops_of.get(name, ()) if s in number))
  tok = p[layout.TOKEN_EMBED][layout.EMBEDDINGS]
  comps.append((Component("embed", -1, None, ("tokens",), ()), _nz_cols(tok), {}))
  comps.append((Component("pos_embed", -1, None, ("indices",), ()), _nz_cols(p[layout.POS_EMBED][layout.EMBEDDINGS]), {}))
  for layer in range(model.num_layers):
    a, m = layout.attn(layer), layout.mlp(layer)
    for h in range(model.num_heads):
      cols = layout.head_columns(h, k)
      writes = _nz_cols(p[f"{a}/linear"]["w"][cols])
      if writes:
        reads = {r: _nz_rows(p[f"{a}/{part}"]["w"][:, cols]) for r, part in (("q", "query"), ("k", "key"), ("v", "value"))}
        comps.append((comp(f"A{layer}.{h}", layer, h), writes, reads))
    writes = _nz_cols(p[f"{m}/linear_2"]["w"])
    if writes:
      comps.append((comp(f"MLP {layer}", layer), writes, {"mlp": _nz_rows(p[f"{m}/linear_1"]["w"])}))
  out_sop = program.lines[-1].out if program.lines else "output"
  comps.append((Component("output", model.num_layers, None, (out_sop,), ()), set(), {"out": set(model.output_dims)}))
  edges = []
  for j, (dst, _, reads) in enumerate(comps):
    for role, dims in reads.items():
      for src, writes, _ in comps[:j]:  # in run order: a head never reads its own layer's heads
        if src.layer == dst.layer and src.head is not None and dst.head is not None:
          continue
        carried = sorted(writes & dims)
        if carried:
          edges.append(Edge(src.name, dst.name, role,  # type: ignore[arg-type]  # role is one of Input
                            tuple(dict.fromkeys(holds.get(d, f"dim {d}") for d in carried))))
  return Circuit([c for c, _, _ in comps], edges, model.num_layers, exact)
