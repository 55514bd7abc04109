"""NAR logits -> programs: the k most probable, optionally wired as the weights are.

Logits are NumPy arrays (numpy_nar.py at inference; training's validation
converts torch's), one batch row. AR decoding (grammar-constrained beam search
on the torch decoder) is beam.py.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from tracr_decompiler.encoding import programs
from tracr_decompiler.encoding.weights import WeightGraph
from tracr_decompiler.program import ir, ops

FN_IDS = {op: [programs.FNS.index(n) for n in ops.SPECS[op].names] for op in programs.OPS}


def log_softmax(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  shifted = x - x.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _nar_fields(logits: dict[str, np.ndarray], i: int, s: int):
  """Log-probabilities of node i's fields, restricted to well-formed choices."""
  lp = {k: log_softmax(logits[k][0, i]) for k in ("op", "enc", "fn")}
  args = log_softmax(logits["args"][0, i, :, :s])  # [A, S]
  return lp, args


def nar_candidates(logits: dict[str, np.ndarray], s: int, k: int = 1, per_node: int = 3,
                   graph: WeightGraph | None = None) -> list[tuple[float, ir.Program]]:
  """The k most probable distinct programs under the factorised NAR distribution.

  Each node's line choices are ranked (op x function x encoding x args); the
  best combinations across nodes are enumerated in order of total log-prob.
  With `graph`, each node's op kind and arguments are the ones its wiring in
  the weights allows (`wiring`), and the decoder only ranks what the wiring
  leaves open: functions, encodings, and the order of a SequenceMap's inputs.
  """
  options = []  # per node: list of (logp, op, enc, fn, args), best first
  for i in range(2, s):
    lp, args = _nar_fields(logits, i, s)
    wired = wiring(graph, i) if graph is not None else None
    if wired is None:
      best_args = [np.argsort(-args[a])[:2] for a in range(programs.MAX_ARGS)]
      wired = [(int(op), [[int(c) for c in choice] for choice in itertools.product(
          *[best_args[a] for a in range(ops.SPECS[programs.OPS[op]].arity)])])
               for op in np.argsort(-lp["op"])[:2]]
    node_opts = []
    for op, arg_choices in wired:
      fn_ids = FN_IDS[programs.OPS[op]]
      fns = sorted(fn_ids, key=lambda f: -lp["fn"][f])[:per_node]
      for fn, enc, choice in itertools.product(fns, range(len(programs.ENCODINGS)), arg_choices):
        score = lp["op"][op] + lp["fn"][fn] + lp["enc"][enc] + sum(args[a, c] for a, c in enumerate(choice))
        node_opts.append((float(score), op, enc, fn, choice))
    node_opts.sort(key=lambda o: -o[0])
    options.append(node_opts[:per_node * 3])
  return _k_best(options, k)


def wiring(graph: WeightGraph, i: int) -> list[tuple[int, list[list[int]]]] | None:
  """(op id, argument node lists) that node i's wiring allows, or None when it does not pin them down.

  A head reads exactly its key, query and value nodes (an Aggregate), a
  selector-width block its key and query; an MLP reads one node (a Map) or
  two (a SequenceMap either way round, or a LinearSequenceMap).
  """
  node = graph.nodes[i]
  op = programs.OPS.index
  if node.kind in ("head", "selector_width"):
    roles = ("key", "query", "value") if node.kind == "head" else ("key", "query")
    if any(len(node.inputs.get(role, [])) != 1 for role in roles):
      return None
    return [(op("aggregate" if node.kind == "head" else "selector_width"),
             [[int(node.inputs[role][0]) for role in roles]])]
  if node.kind == "mlp":
    reads = [int(j) for j in node.inputs.get("mlp", [])]
    if len(reads) == 1:  # (a SequenceMap of one SOp with itself, which tracr warns against, is left to the decoder)
      return [(op("map"), [reads])]
    if len(reads) == 2:
      both = [reads, reads[::-1]]
      return [(op("sequence_map"), both), (op("linear_sequence_map"), both)]
  return None


def _k_best(options, k: int) -> list[tuple[float, ir.Program]]:
  """Best-first search over per-node option lists (each sorted best first)."""
  start = tuple(0 for _ in options)
  score = lambda idx: sum(options[n][j][0] for n, j in enumerate(idx))
  heap, seen = [(-score(start), start)], {start}
  out: list[tuple[float, ir.Program]] = []
  texts: set[str] = set()  # printed lines of the programs in `out` (two index tuples can give one program)
  while heap and len(out) < k and len(seen) < 50 * k + 100:
    neg, idx = heapq.heappop(heap)
    chosen = [options[n][j] for n, j in enumerate(idx)]
    try:
      program = programs.program_from_fields(
          [0, 0] + [c[1] for c in chosen], [0, 0] + [c[2] for c in chosen],
          [0, 0] + [c[3] for c in chosen], [[], []] + [c[4] for c in chosen])
      text = repr(program.lines)
      if text not in texts:
        texts.add(text)
        out.append((-neg, program))
    except ir.ProgramError:
      pass
    for n in range(len(idx)):
      if idx[n] + 1 < len(options[n]):
        nxt = idx[:n] + (idx[n] + 1,) + idx[n + 1:]
        if nxt not in seen:
          seen.add(nxt)
          heapq.heappush(heap, (-score(nxt), nxt))
  return out
