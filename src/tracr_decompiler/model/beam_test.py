"""The grammar-constrained AR beam (beam.py) on a deterministic fake language model.

Each test knows the right answer, runs in milliseconds and fails if the search,
its ordering or its constraints change. The grammar used as the reference here
is written from the vocabularies, not taken from beam.py.
"""

import numpy as np
import pytest
import torch

from tracr_decompiler.encoding import programs
from tracr_decompiler.model.beam import ar_beam
from tracr_decompiler.program import ir, ops

OPS, ENCS, FNS = programs.OPS, programs.ENCODINGS, programs.FNS
T = programs.TOKENS_PER_LINE


# --- AR: grammar-constrained beam -----------------------------------------------------------------------


class _FakeLM:
  """A deterministic language model: the next-token logits are a fixed random function of the prefix."""

  def __init__(self, seed: int, scale: float = 3.0, bias: dict[int, float] | None = None):
    self.seed, self.scale, self.bias = seed, scale, bias or {}
    self.calls = 0

  def next_logits(self, prefix: list[int]) -> np.ndarray:
    row = self.scale * np.random.default_rng([self.seed, *prefix]).normal(size=len(programs.AR_VOCAB))
    for t, b in self.bias.items():
      row[t] += b
    return row

  def ar_logits(self, memory, mask, tokens):
    self.calls += 1
    assert memory.shape[0] == mask.shape[0] == tokens.shape[0]
    out = torch.zeros(tokens.shape[0], tokens.shape[1], len(programs.AR_VOCAB))
    for b, row in enumerate(tokens.tolist()):
      out[b, -1] = torch.from_numpy(self.next_logits(row)).float()
    return out


_MEMORY, _MASK = torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)


def _grammar(pos: int, op: str | None) -> list[int]:
  """The reference grammar: the token ids allowed at `pos`, given the line's op."""
  field, node = pos % T, 2 + pos // T
  if field == 0:
    return [programs.AR_INDEX[f"op:{o}"] for o in OPS]
  if field == 1:
    return [programs.AR_INDEX[f"enc:{e}"] for e in ENCS]
  assert op is not None
  if field == 2:
    return [programs.AR_INDEX[f"fn:{n}"] for n in ops.SPECS[op].names]
  if field - 3 >= ops.SPECS[op].arity:
    return [programs.NONE]
  return [programs.AR_INDEX[f"ref:{j}"] for j in range(node)]


def _log_softmax(row: np.ndarray) -> np.ndarray:
  return torch.log_softmax(torch.from_numpy(row).float(), -1).double().numpy()


def _greedy(lm: _FakeLM, s: int) -> tuple[float, ir.Program]:
  """Token by token, the most probable token the grammar allows."""
  toks, score, op = [programs.BOS], 0.0, None
  for pos in range(T * (s - 2)):
    row = _log_softmax(lm.next_logits(toks))
    t = max(_grammar(pos, op), key=lambda t: row[t])
    if pos % T == 0:
      op = programs.AR_VOCAB[t][3:]
    toks.append(t)
    score += float(row[t])
  return score, programs.program_from_ar(toks[1:] + [programs.EOS])


def _all_sequences(s: int) -> list[list[int]]:
  """Every token sequence the grammar allows for s nodes (small s only)."""
  seqs: list[tuple[list[int], str | None]] = [([], None)]
  for pos in range(T * (s - 2)):
    seqs = [(toks + [t], programs.AR_VOCAB[t][3:] if pos % T == 0 else op)
            for toks, op in seqs for t in _grammar(pos, op)]
  return [toks for toks, _ in seqs]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("s", [3, 5])
def test_ar_beam_one_is_greedy(seed, s):
  lm = _FakeLM(seed)
  [(score, program)] = ar_beam(lm, _MEMORY, _MASK, s, beam=1)
  want_score, want = _greedy(lm, s)
  assert program == want
  assert score == pytest.approx(want_score, abs=1e-4)
  assert len(program) <= s - 2
  assert lm.calls == T * (s - 2)  # one model call per token, whatever the beam


@pytest.mark.parametrize("beam", [2, 4, 16])
def test_ar_beam_size_is_respected_and_best_first(beam):
  lm = _FakeLM(7)
  out = ar_beam(lm, _MEMORY, _MASK, 5, beam=beam)
  assert len(out) == beam  # every beam parses: the grammar admits only well-formed lines
  scores = [sc for sc, _ in out]
  assert scores == sorted(scores, reverse=True)


def test_ar_grammar_overrides_a_model_that_prefers_ill_formed_tokens():
  """A model that always wants EOS, PAD, a forward reference and a comparison still yields programs."""
  bias = {programs.EOS: 60.0, programs.PAD: 60.0, programs.AR_INDEX["ref:31"]: 50.0,
          programs.AR_INDEX["fn:LT"]: 40.0, programs.NONE: 30.0}
  lm = _FakeLM(3, bias=bias)
  out = ar_beam(lm, _MEMORY, _MASK, 6, beam=4)
  assert len(out) == 4
  for _, program in out:
    for line in program.lines:
      line.validate()
  # Where a reference is the only legal one (nodes 2+, past the op's arity), <none> is forced.
  assert ar_beam(lm, _MEMORY, _MASK, 6, beam=1)[0][1] == _greedy(lm, 6)[1]


def test_ar_exhaustive_beam_finds_every_grammatical_program_and_the_best():
  """With a beam wider than the language, nothing is pruned: all sequences, best first, best = argmax."""
  s = 3
  seqs = _all_sequences(s)
  lm = _FakeLM(11)
  out = ar_beam(lm, _MEMORY, _MASK, s, beam=len(seqs) + 10)
  assert len(out) == len(seqs)

  def seq_score(toks: list[int]) -> float:
    prefix, total = [programs.BOS], 0.0
    for t in toks:
      total += float(_log_softmax(lm.next_logits(prefix))[t])
      prefix.append(t)
    return total

  scored = sorted(((seq_score(t), t) for t in seqs), key=lambda x: -x[0])
  assert out[0][0] == pytest.approx(scored[0][0], abs=1e-4)
  assert out[0][1] == programs.program_from_ar(scored[0][1] + [programs.EOS])
  assert [sc for sc, _ in out] == pytest.approx([sc for sc, _ in scored], abs=1e-4)



