"""NAR decoding on synthetic logits: the k-best search, free and wired as the weights are.

The model is replaced by hand-made logits, so each test knows the right answer,
runs in milliseconds and fails if the search, its ordering or its constraints
change. (The AR beam: beam_test.py.)
"""

import itertools

import numpy as np
import pytest

from tracr_decompiler.encoding import programs
from tracr_decompiler.model import decode
from tracr_decompiler.program import ir, ops

OPS, ENCS, FNS = programs.OPS, programs.ENCODINGS, programs.FNS
T = programs.TOKENS_PER_LINE
L = ir.Line


# --- NAR: k-best candidates ---------------------------------------------------------------------------


def _nar_logits(s: int, seed: int = 0, scale: float = 1.0, width: int = programs.MAX_NODES) -> dict:
  """Random NAR logits for s nodes, shaped like the model's heads ([1, S, classes]; args [1, S, A, width])."""
  g = np.random.default_rng(seed)
  r = lambda *shape: np.asarray(scale * g.standard_normal(shape), np.float32)
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
  log_softmax = lambda x: x - np.log(np.exp(x - x.max()).sum()) - x.max()
  lp = lambda k, c: float(log_softmax(logits[k][0, i].astype(np.float64))[c])
  total = lp("op", OPS.index(op)) + lp("enc", ENCS.index(enc)) + lp("fn", FNS.index(fn))
  return total + sum(float(log_softmax(logits["args"][0, i, a, :s].astype(np.float64))[j])
                     for a, j in enumerate(args))


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
  logits["args"][0, 2, 0, :4] = np.array([-30.0, -30.0, 10.0, 10.0])  # itself and node 3
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
  logits["args"][0, 3, 0, :4] = np.array([-20.0, 13.9, 14.0, -20.0])  # n2, else indices
  logits["args"][0, 3, 1, :4] = np.array([-20.0, 14.0, 13.9, -20.0])  # indices, else n2
  # Pointer pairs for n3, best first: (n2, indices), then (n2, n2) and (indices, indices) 0.1 lower,
  # then (indices, n2) 0.2 lower, the same program as the first; everything else is ~12 lower.
  cands = decode.nar_candidates(logits, 4, k=4)
  a = L("map", "categorical", "mod2", ("tokens",), "a")
  same_twice = lambda x, y: ir.canonicalize(ir.make_program([a, L("sequence_map", "categorical", "add", (x, y), "b")]))
  assert cands[0][1] == _PROGRAM
  assert {repr(cands[1][1]), repr(cands[2][1])} == {repr(same_twice("a", "a")), repr(same_twice("indices", "indices"))}
  assert cands[3][0] < cands[0][0] - 5  # (indices, n2) was not listed again


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
