"""Decoding on synthetic logits: the k-best NAR search and the grammar-constrained AR beam.

The model is replaced by hand-made logits (NAR) or a deterministic fake language
model (AR), so each test knows the right answer, runs in milliseconds and fails
if the search, its ordering or its constraints change. The grammar used as the
reference here is written from the vocabularies, not taken from decode.py.
"""

import itertools

import numpy as np
import pytest
import torch

from tracr_decompiler.encoding import programs
from tracr_decompiler.model import decode
from tracr_decompiler.program import ir, ops

OPS, ENCS, FNS = programs.OPS, programs.ENCODINGS, programs.FNS
T = programs.TOKENS_PER_LINE
L = ir.Line


# --- NAR: k-best candidates ---------------------------------------------------------------------------


def _nar_logits(s: int, seed: int = 0, scale: float = 1.0, width: int = programs.MAX_NODES) -> dict:
  """Random NAR logits for s nodes, shaped like the model's heads ([1, S, classes]; args [1, S, A, width])."""
  g = torch.Generator().manual_seed(seed)
  r = lambda *shape: scale * torch.randn(*shape, generator=g)
  return {"op": r(1, s, len(OPS)), "enc": r(1, s, len(ENCS)), "fn": r(1, s, len(FNS)),
          "args": r(1, s, programs.MAX_ARGS, width)}


def _set_line(logits: dict, i: int, op: str, enc: str, fn: str, args: tuple[int, ...], margin: float = 12.0):
  """Makes node i's line the clear favourite: `margin` added to each chosen field."""
  logits["op"][0, i, OPS.index(op)] += margin
  logits["enc"][0, i, ENCS.index(enc)] += margin
  logits["fn"][0, i, FNS.index(fn)] += margin
  for a, j in enumerate(args):
    logits["args"][0, i, a, j] += margin


def _score(logits: dict, i: int, op: str, enc: str, fn: str, args: tuple[int, ...], *, s: int) -> float:
  """Log-probability of one node's line under the factorised NAR distribution (pointers over s nodes)."""
  lp = lambda k, c: float(torch.log_softmax(logits[k][0, i], -1)[c])
  total = lp("op", OPS.index(op)) + lp("enc", ENCS.index(enc)) + lp("fn", FNS.index(fn))
  return total + sum(float(torch.log_softmax(logits["args"][0, i, a, :s], -1)[j]) for a, j in enumerate(args))


# A two-line program: n2 = Map(mod2, tokens); n3 = SequenceMap(add, n2, indices).
_LINES: list[tuple[int, str, str, str, tuple[int, ...]]] = [(2, "map", "categorical", "mod2", (0,)), (3, "sequence_map", "categorical", "add", (2, 1))]
_PROGRAM = ir.canonicalize(ir.make_program([
    L("map", "categorical", "mod2", ("tokens",), "a"),
    L("sequence_map", "categorical", "add", ("a", "indices"), "b")]))


def _clear_logits(seed: int = 0) -> dict:
  logits = _nar_logits(4, seed)
  for i, op, enc, fn, args in _LINES:
    _set_line(logits, i, op, enc, fn, args)
  return logits


def test_nar_top1_is_the_favourite_with_its_log_probability():
  logits = _clear_logits()
  [(score, program)] = decode.nar_candidates(logits, 4, k=1)
  assert program == _PROGRAM
  assert score == pytest.approx(sum(_score(logits, *line, s=4) for line in _LINES), abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_nar_k_best_are_distinct_well_formed_and_best_first(seed):
  logits = _nar_logits(5, seed, scale=2.0)
  for i in range(5):  # like a trained model, mostly (not always) pointing backwards
    logits["args"][0, i, :, :i] += 3.0
  cands = decode.nar_candidates(logits, 5, k=12)
  assert 1 <= len(cands) <= 12
  scores = [c[0] for c in cands]
  assert scores == sorted(scores, reverse=True)
  texts = [repr(p.lines) for _, p in cands]
  assert len(set(texts)) == len(texts), "the same program twice"
  for _, p in cands:
    assert isinstance(p, ir.Program) and p == ir.canonicalize(p)
    for line in p.lines:
      line.validate()  # op, encoding, a function valid for the op, arity
  # The search is deterministic, so a smaller k gives a prefix of a larger k's list; it may be shorter,
  # as the number of combinations tried (50 k + 100) scales with k.
  small = [repr(p.lines) for _, p in decode.nar_candidates(logits, 5, k=4)]
  assert 1 <= len(small) <= 4 and small == texts[:len(small)]


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_nar_returns_exactly_k_when_there_are_enough(k):
  cands = decode.nar_candidates(_clear_logits(1), 4, k=k)
  assert len(cands) == k
  assert cands[0][1] == _PROGRAM


def test_nar_second_best_differs_in_the_least_confident_field():
  """Lowering one field's margin makes its runner-up the second candidate."""
  logits = _clear_logits()
  logits["enc"][0, 3, ENCS.index("numerical")] = logits["enc"][0, 3, ENCS.index("categorical")] - 0.5
  (s1, p1), (s2, p2) = decode.nar_candidates(logits, 4, k=2)
  assert p1 == _PROGRAM
  assert p2 == ir.canonicalize(ir.make_program([
      L("map", "categorical", "mod2", ("tokens",), "a"),
      L("sequence_map", "numerical", "add", ("a", "indices"), "b")]))
  assert s1 - s2 == pytest.approx(0.5, abs=1e-3)


def test_nar_pointers_only_to_earlier_nodes():
  """The favourite pointers (itself, a later node, a slot beyond the graph) are never used."""
  logits = _clear_logits()
  logits["args"][0, 2, 0, 0] -= 12.0  # the map's argument: tokens is no longer favoured ...
  logits["args"][0, 2, 0, 2] += 20.0  # ... itself,
  logits["args"][0, 2, 0, 10] += 40.0  # a slot beyond the 4 nodes (sliced away),
  logits["args"][0, 2, 0, 1] += 5.0  # then indices: the best legal pointer
  [(_, program)] = decode.nar_candidates(logits, 4, k=1)
  assert program == ir.canonicalize(ir.make_program([
      L("map", "categorical", "mod2", ("indices",), "a"),
      L("sequence_map", "categorical", "add", ("a", "indices"), "b")]))


def test_nar_no_candidate_when_every_considered_pointer_is_illegal():
  """Only the two best pointers per slot are tried: if both point forward, nothing well-formed is left."""
  logits = _clear_logits()
  logits["args"][0, 2, 0, :4] = torch.tensor([-30.0, -30.0, 10.0, 10.0])  # itself and node 3
  assert decode.nar_candidates(logits, 4, k=5) == []


def test_nar_function_and_arity_follow_the_op():
  """A comparison name favoured for a Map is not taken; slots past the op's arity are ignored."""
  logits = _clear_logits()
  logits["op"][0, 2, OPS.index("sequence_map")] += 6.0  # the runner-up op has no comparisons either
  logits["fn"][0, 2, FNS.index("LT")] += 50.0  # a Select comparison, not a Map function
  logits["args"][0, 2, 1, 3] += 50.0  # second slot of a one-argument op: a forward pointer, unused
  [(_, program)] = decode.nar_candidates(logits, 4, k=1)
  assert program == _PROGRAM


def test_nar_symmetric_arguments_give_one_candidate():
  """add(x, y) and add(y, x) are one canonical program: k-best lists it once."""
  logits = _clear_logits()
  logits["args"][0, 3, 0, :4] = torch.tensor([-20.0, 13.9, 14.0, -20.0])  # n2, else indices
  logits["args"][0, 3, 1, :4] = torch.tensor([-20.0, 14.0, 13.9, -20.0])  # indices, else n2
  # Pointer pairs for n3, best first: (n2, indices), then (n2, n2) and (indices, indices) 0.1 lower,
  # then (indices, n2) 0.2 lower, the same program as the first; everything else is ~12 lower.
  cands = decode.nar_candidates(logits, 4, k=4)
  a = L("map", "categorical", "mod2", ("tokens",), "a")
  same_twice = lambda x, y: ir.canonicalize(ir.make_program([a, L("sequence_map", "categorical", "add", (x, y), "b")]))
  assert cands[0][1] == _PROGRAM
  assert {repr(cands[1][1]), repr(cands[2][1])} == {repr(same_twice("a", "a")), repr(same_twice("indices", "indices"))}
  assert cands[3][0] < cands[0][0] - 5  # (indices, n2) was not listed again


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
  [(score, program)] = decode.ar_beam(lm, _MEMORY, _MASK, s, beam=1)
  want_score, want = _greedy(lm, s)
  assert program == want
  assert score == pytest.approx(want_score, abs=1e-4)
  assert len(program) <= s - 2
  assert lm.calls == T * (s - 2)  # one model call per token, whatever the beam


@pytest.mark.parametrize("beam", [2, 4, 16])
def test_ar_beam_size_is_respected_and_best_first(beam):
  lm = _FakeLM(7)
  out = decode.ar_beam(lm, _MEMORY, _MASK, 5, beam=beam)
  assert len(out) == beam  # every beam parses: the grammar admits only well-formed lines
  scores = [sc for sc, _ in out]
  assert scores == sorted(scores, reverse=True)


def test_ar_grammar_overrides_a_model_that_prefers_ill_formed_tokens():
  """A model that always wants EOS, PAD, a forward reference and a comparison still yields programs."""
  bias = {programs.EOS: 60.0, programs.PAD: 60.0, programs.AR_INDEX["ref:31"]: 50.0,
          programs.AR_INDEX["fn:LT"]: 40.0, programs.NONE: 30.0}
  lm = _FakeLM(3, bias=bias)
  out = decode.ar_beam(lm, _MEMORY, _MASK, 6, beam=4)
  assert len(out) == 4
  for _, program in out:
    for line in program.lines:
      line.validate()
  # Where a reference is the only legal one (nodes 2+, past the op's arity), <none> is forced.
  assert decode.ar_beam(lm, _MEMORY, _MASK, 6, beam=1)[0][1] == _greedy(lm, 6)[1]


def test_ar_exhaustive_beam_finds_every_grammatical_program_and_the_best():
  """With a beam wider than the language, nothing is pruned: all sequences, best first, best = argmax."""
  s = 3
  seqs = _all_sequences(s)
  lm = _FakeLM(11)
  out = decode.ar_beam(lm, _MEMORY, _MASK, s, beam=len(seqs) + 10)
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



# --- NAR with the weights' wiring ---------------------------------------------------------------------


def _wired_graph():
  from tracr_decompiler.compiling import compiler
  from tracr_decompiler.encoding import weights
  truth = ir.make_program([L("map", "categorical", "mod2", ("tokens",), "a"),
                           L("sequence_map", "categorical", "add", ("a", "indices"), "b"),
                           L("aggregate", "categorical", "EQ", ("indices", "tokens", "b"), "c")])
  return ir.canonicalize(truth), weights.encode_model(compiler.compile_program(truth))


def test_wiring_names_each_nodes_op_kind_and_the_nodes_it_reads():
  _, graph = _wired_graph()
  kinds = [n.kind for n in graph.nodes]
  assert kinds == ["tokens", "indices", "mlp", "mlp", "head"]
  assert decode.wiring(graph, 2) == [(OPS.index("map"), [[0]])]
  sm = decode.wiring(graph, 3)
  assert (OPS.index("sequence_map"), [[1, 2], [2, 1]]) in sm and all(len(a) == 2 for _, a in sm)
  assert decode.wiring(graph, 4) == [(OPS.index("aggregate"), [[1, 0, 3]])]  # key, query, value


def test_wired_candidates_take_the_arguments_from_the_weights_where_the_decoder_points_wrong():
  truth, graph = _wired_graph()
  logits = _nar_logits(5, seed=3)
  _set_line(logits, 2, "map", "categorical", "mod2", (0,))
  _set_line(logits, 3, "sequence_map", "categorical", "add", (2, 1))
  _set_line(logits, 4, "aggregate", "categorical", "EQ", (1, 2, 3))  # query: the Map, not tokens
  free = decode.nar_candidates(logits, 5, k=4)
  assert all(p != truth for _, p in free)
  wired = decode.nar_candidates(logits, 5, k=4, graph=graph)
  assert wired[0][1] == truth
