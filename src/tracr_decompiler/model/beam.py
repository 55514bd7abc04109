"""Grammar-constrained AR beam search on the torch decoder (model.py's ar_logits / ar_start / ar_step).

AR decoding is constrained by the line grammar (op, encoding, a function valid
for the op, then arguments that are earlier nodes or <none> by arity), so every
decoded sequence parses; the model still chooses every token.
"""

from __future__ import annotations

import torch

from tracr_decompiler.encoding import programs
from tracr_decompiler.model.decode import FN_IDS
from tracr_decompiler.program import ir, ops


def _allowed(position: int, node: int, op: int | None) -> list[int]:
  """Token ids the grammar allows at `position` of node `node`'s line."""
  field = position % programs.TOKENS_PER_LINE
  if field == 0:
    return [programs.AR_INDEX[f"op:{o}"] for o in programs.OPS]
  if field == 1:
    return [programs.AR_INDEX[f"enc:{e}"] for e in programs.ENCODINGS]
  assert op is not None, "the line's op token comes first"
  if field == 2:
    return [programs.AR_INDEX[f"fn:{programs.FNS[f]}"] for f in FN_IDS[programs.OPS[op]]]
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
