"""Model outputs -> programs: greedy and k-best decoding, NAR and AR.

AR decoding is constrained by the line grammar (op, encoding, a function valid
for the op, then arguments that are earlier nodes or <none> by arity), so every
decoded sequence parses; the model still chooses every token.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import torch

from tracr_decompiler.encoding import programs
from tracr_decompiler.encoding.weights import WeightGraph
from tracr_decompiler.program import ir, ops

_FN_IDS = {op: [programs.FNS.index(n) for n in ops.SPECS[op].names] for op in programs.OPS}


def _nar_fields(logits, i: int, s: int):
  """Log-probabilities of node i's fields, restricted to well-formed choices."""
  lp = {k: torch.log_softmax(logits[k][0, i].float(), -1).cpu().numpy() for k in ("op", "enc", "fn")}
  args = torch.log_softmax(logits["args"][0, i, :, :s].float(), -1).cpu().numpy()  # [A, S]
  return lp, args


def nar_candidates(logits, s: int, k: int = 1, per_node: int = 3,
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
      fn_ids = _FN_IDS[programs.OPS[op]]
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


def _allowed(position: int, node: int, op: int | None) -> list[int]:
  """Token ids the grammar allows at `position` of node `node`'s line."""
  field = position % programs.TOKENS_PER_LINE
  if field == 0:
    return [programs.AR_INDEX[f"op:{o}"] for o in programs.OPS]
  if field == 1:
    return [programs.AR_INDEX[f"enc:{e}"] for e in programs.ENCODINGS]
  assert op is not None, "the line's op token comes first"
  if field == 2:
    return [programs.AR_INDEX[f"fn:{programs.FNS[f]}"] for f in _FN_IDS[programs.OPS[op]]]
  if field - 3 >= ops.SPECS[programs.OPS[op]].arity:
    return [programs.NONE]
  return [programs.AR_INDEX[f"ref:{j}"] for j in range(node)]


@torch.no_grad()
def ar_beam(model, memory, mask, s: int, beam: int = 1, cache: bool = True) -> list[tuple[float, ir.Program]]:
  """Grammar-constrained beam search; one line per op node (nodes 2..s-1).

  With `cache` (and a model that has `ar_start`/`ar_step`, in eval mode) each step feeds
  only the new tokens, reusing the decoder's cached keys/values; otherwise every step
  reruns the whole prefix through `ar_logits`. Both give the same beams.
  """
  length = programs.TOKENS_PER_LINE * (s - 2)
  beams: list[tuple[float, list[int], int | None, int]] = [(0.0, [programs.BOS], None, 0)]  # (logp, tokens, op, parent)
  incremental = cache and hasattr(model, "ar_step") and not getattr(model, "training", False)
  state = model.ar_start(memory, mask) if incremental else None
  device = memory.device  # the model's (a GPU during training's validation): new token indices go there
  for pos in range(length):
    if state is not None:
      logits = model.ar_step(state, torch.tensor([b[1][-1] for b in beams], device=device),
                             torch.tensor([b[3] for b in beams], device=device))
    else:
      tokens = torch.tensor([b[1] for b in beams], device=device)
      logits = model.ar_logits(memory.expand(len(beams), -1, -1), mask.expand(len(beams), -1), tokens)[:, -1]
    logp = torch.log_softmax(logits.float(), -1).cpu().numpy()
    node = 2 + pos // programs.TOKENS_PER_LINE
    grown = []
    for parent, ((score, toks, op, _), row) in enumerate(zip(beams, logp)):
      allowed = _allowed(pos, node, op)
      for t in sorted(allowed, key=lambda t: -row[t])[:beam]:
        new_op = programs.OPS.index(programs.AR_VOCAB[t][3:]) if pos % programs.TOKENS_PER_LINE == 0 else op
        grown.append((score + float(row[t]), toks + [t], new_op, parent))
    beams = sorted(grown, key=lambda b: -b[0])[:beam]
  out = []
  for score, toks, _, _ in beams:
    try:
      out.append((score, programs.program_from_ar(toks[1:] + [programs.EOS])))
    except ir.ProgramError:
      continue
  return out
