"""The weight graph: one node per op, identical under any SOp naming, bad weights rejected."""

import numpy as np
import pytest
from tracr.rasp import rasp

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig

NAMINGS = [
    lambda i: f"aa{i}",  # sorts before `indices`
    lambda i: f"zz_{97 - i}",  # after `tokens`, reversed order
    lambda i: f"m{i * 7 % 5}x{i}",  # interleaved with `one`
]


def _programs(n=12):
  rng = np.random.default_rng(5)
  return list(test_cases.PROGRAMS.values()) + [sampler.sample_program(GenerationConfig(), rng).program
                                               for _ in range(n)]


@pytest.mark.parametrize("program", _programs(), ids=lambda p: f"{len(p)}ops")
def test_graph_is_naming_invariant(program):
  base = weights.encode_model(compiler.compile_program(program))
  for naming in NAMINGS:
    [rasp.Map(lambda x: x, rasp.tokens) for _ in range(13)]  # move tracr's label counter too
    names = {line.out: naming(i) for i, line in enumerate(program.lines)}
    other = weights.encode_model(compiler.compile_program(program, names=names))
    assert np.array_equal(base.features, other.features)
    assert np.array_equal(base.relations, other.relations)
    assert np.array_equal(base.kinds, other.kinds)


def _mixed_samples(n=10):
  rng = np.random.default_rng(8)
  return [sampler.sample_program(GenerationConfig(mixed_settings=True, max_sops=6), rng) for _ in range(n)]


@pytest.mark.parametrize("sample", _mixed_samples(), ids=lambda s: f"vocab{len(s.model.settings.vocab)}-len"
                         f"{s.model.settings.max_seq_len}{'-causal' if s.model.settings.causal else ''}")
def test_graph_is_naming_invariant_at_any_compile_settings(sample):
  # Letters, gapped ints, other BOS/PAD names, causal models, lengths 2-12: still bit-identical.
  settings = sample.model.settings
  base = weights.encode_model(compiler.compile_program(sample.program, settings))
  for naming in NAMINGS:
    names = {line.out: naming(i) for i, line in enumerate(sample.program.lines)}
    other = weights.encode_model(compiler.compile_program(sample.program, settings, names=names))
    assert np.array_equal(base.features, other.features) and np.array_equal(base.relations, other.relations)


def test_nodes_align_with_lines():
  aligned = 0
  progs = _programs(10)
  for program in progs:
    model = compiler.compile_program(program)
    graph = weights.encode_model(model)
    try:
      t = programs.targets(graph, program, model.residual_labels)
    except programs.AlignmentError:
      continue
    aligned += 1
    assert programs.program_from_fields(t["op"], t["enc"], t["fn"], t["args"]) == \
        __import__("tracr_decompiler.program.ir", fromlist=["ir"]).canonicalize(program)
  assert aligned >= 0.9 * len(progs)


def test_non_tracr_weights_are_rejected():
  model = compiler.compile_program(test_cases.PROGRAMS["frac_prevs"])
  model.params["token_embed"]["embeddings"] = np.random.default_rng(0).normal(
      size=model.params["token_embed"]["embeddings"].shape).astype(np.float32)
  with pytest.raises(weights.NotTracrError):
    weights.encode_model(model)
