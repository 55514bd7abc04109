"""The weight graph: one node per op, identical under any SOp naming, bad weights rejected, features pinned."""

import hashlib

import numpy as np
import pytest
from tracr.rasp import rasp

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import ir

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
  # Seed 9: since the generator tracks tracr's value sets, seed 8 draws a model with two maps whose
  # supports tile one input in one MLP layer, the splitter's one known limit (an xfail case in
  # nodes_test.py: its split then depends on hidden-unit names). This test pins the models it handles.
  rng = np.random.default_rng(9)
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
        ir.canonicalize(program)
  assert aligned >= 0.9 * len(progs)


def test_non_tracr_weights_are_rejected():
  model = compiler.compile_program(test_cases.PROGRAMS["frac_prevs"])
  model.params["token_embed"]["embeddings"] = np.random.default_rng(0).normal(
      size=model.params["token_embed"]["embeddings"].shape).astype(np.float32)
  with pytest.raises(weights.NotTracrError):
    weights.encode_model(model)


# --- features are pinned ----------------------------------------------------------------------------------

# A trained model ships with features computed by this code (FEATURE_VERSION): a change to the splitter
# that fixes models it could not split must leave every other model's encoding bit-identical. Programs drawn
# by sampler.sample_program(GenerationConfig(), np.random.default_rng(11)) (written out, so a change in the
# sampler does not move them), plus a numerical selector width and the shared test programs.
L = ir.Line
PINNED_PROGRAMS = {
    "sampled_0": [L("map", "numerical", "lt2", ("indices",), "v1"), L("map", "numerical", "lt3", ("tokens",), "v2"),
        L("sequence_map", "categorical", "max", ("indices", "tokens"), "v3"),
        L("aggregate", "numerical", "TRUE", ("v3", "v3", "v1"), "v4"),
        L("linear_sequence_map", "numerical", "lin_1_m1", ("v4", "v2"), "v5"),
        L("map", "categorical", "lthalf", ("v5",), "v6")],
    "sampled_2": [L("sequence_map", "categorical", "add", ("indices", "tokens"), "v1"),
        L("map", "categorical", "min2", ("v1",), "v2"), L("map", "categorical", "mod2", ("v2",), "v3"),
        L("selector_width", "categorical", "NEQ", ("v3", "v3"), "v4"), L("map", "numerical", "lt2", ("v4",), "v5"),
        L("map", "categorical", "double", ("v5",), "v6")],
    "sampled_4": [L("map", "categorical", "eq1", ("indices",), "v1"),
        L("sequence_map", "categorical", "ltxy", ("indices", "tokens"), "v2"),
        L("selector_width", "categorical", "LEQ", ("v1", "v1"), "v3"), L("map", "numerical", "eq1", ("v3",), "v4"),
        L("aggregate", "numerical", "LT", ("v2", "v2", "v4"), "v5")],
    "sampled_6": [L("sequence_map", "categorical", "eqxy", ("indices", "tokens"), "v1"),
        L("selector_width", "categorical", "TRUE", ("v1", "v1"), "v2"),
        L("sequence_map", "categorical", "ltxy", ("v2", "tokens"), "v3"),
        L("map", "numerical", "ident", ("v3",), "v4"),
        L("aggregate", "numerical", "GEQ", ("tokens", "v3", "v4"), "v5")],
    "sampled_8": [L("sequence_map", "categorical", "eqxy", ("indices", "tokens"), "v1"),
        L("selector_width", "categorical", "TRUE", ("v1", "v1"), "v2"),
        L("sequence_map", "categorical", "sub", ("v2", "indices"), "v3"),
        L("sequence_map", "categorical", "max", ("indices", "v3"), "v4"),
        L("sequence_map", "categorical", "max", ("v4", "tokens"), "v5"),
        L("map", "numerical", "even", ("v5",), "v6"),
        L("aggregate", "numerical", "LT", ("v3", "indices", "v6"), "v7")],
    "sampled_9": [L("map", "numerical", "eq3", ("indices",), "v1"),
        L("sequence_map", "categorical", "ltxy", ("indices", "tokens"), "v2"),
        L("selector_width", "categorical", "LT", ("tokens", "v2"), "v3"),
        L("sequence_map", "categorical", "add", ("indices", "v3"), "v4"),
        L("aggregate", "numerical", "GEQ", ("v4", "v4", "v1"), "v5"), L("map", "numerical", "lthalf", ("v5",), "v6"),
        L("map", "numerical", "double", ("v6",), "v7")],
    "sampled_11": [L("sequence_map", "categorical", "max", ("indices", "tokens"), "v1"),
        L("map", "numerical", "ident", ("v1",), "v2"), L("map", "categorical", "dec", ("v2",), "v3"),
        L("map", "numerical", "eq1", ("v3",), "v4"),
        L("sequence_map", "categorical", "eqxy", ("indices", "v3"), "v5"),
        L("map", "categorical", "eq0", ("v4",), "v6"), L("aggregate", "numerical", "EQ", ("v6", "v5", "v4"), "v7"),
        L("linear_sequence_map", "numerical", "lin_1_1", ("v7", "v2"), "v8")],
    "sampled_12": [L("sequence_map", "categorical", "ltxy", ("indices", "tokens"), "v1"),
        L("sequence_map", "categorical", "min", ("indices", "tokens"), "v2"),
        L("sequence_map", "categorical", "mul", ("v2", "tokens"), "v3"),
        L("selector_width", "categorical", "LEQ", ("v1", "v3"), "v4")],
    "sampled_13": [L("map", "categorical", "inc", ("tokens",), "v1"),
        L("map", "numerical", "eq0", ("indices",), "v2"),
        L("aggregate", "numerical", "TRUE", ("tokens", "v1", "v2"), "v3"),
        L("linear_sequence_map", "numerical", "lin_1_1", ("v3", "v2"), "v4"),
        L("map", "categorical", "lthalf", ("v4",), "v5"),
        L("aggregate", "categorical", "EQ", ("indices", "v5", "v1"), "v6"),
        L("map", "numerical", "lt3", ("v6",), "v7"), L("map", "categorical", "eq0", ("v7",), "v8")],
    "sampled_15": [L("selector_width", "categorical", "TRUE", ("tokens", "tokens"), "v1"),
        L("sequence_map", "categorical", "max", ("v1", "tokens"), "v2"),
        L("selector_width", "categorical", "NEQ", ("v2", "v2"), "v3"),
        L("aggregate", "categorical", "EQ", ("indices", "v3", "v3"), "v4")],
    "numerical_selector_width": [L("selector_width", "numerical", "LT", ("tokens", "tokens"), "a"),
        L("map", "numerical", "double", ("a",), "b")],
}
PINNED_DIGESTS = {  # sha256 of (rounded features, relations, kinds, layers, is_output), first 16 hex digits
    "sampled_0": "6521ee7f31cfd3f0",
    "sampled_2": "936e5a0b2ba4a328",
    "sampled_4": "1be834397b66c45d",
    "sampled_6": "a5aa48ee06d944b3",
    "sampled_8": "2f77c01334fc2d71",
    "sampled_9": "455e6ffe8fb23261",
    "sampled_11": "a69c3495656d10f6",
    "sampled_12": "0d7956e59b5616e5",
    "sampled_13": "3f409e371d55beea",
    "sampled_15": "158bbbacd9da697c",
    "frac_prevs": "1a474cb190cebbf8",
    "sort_unique": "1fdd77cdb8be3570",
    "mixed": "9918bf8d60f9753e",
    "linear": "a3e1b2c740da56ae",
    "numerical_selector_width": "85d8c5ce8e6c8b6c",
}


def _digest(model: compiler.CompiledModel) -> str:
  g = weights.encode_model(model)
  h = hashlib.sha256()
  # Features rounded to 4 decimals (+ 0.0 turns -0.0 into 0.0): float32 matmuls differ in the last bits between
  # CPUs (OpenBLAS picks its kernel by CPU), and 5 of these digests once changed with the machine alone.
  for a in (np.round(g.features, 4) + 0.0, g.relations, g.kinds, g.layers, g.is_output):
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()[:16]


@pytest.mark.parametrize("name", PINNED_DIGESTS)
def test_features_are_unchanged(name):
  program = test_cases.PROGRAMS[name] if name in test_cases.PROGRAMS else ir.make_program(PINNED_PROGRAMS[name])
  assert _digest(compiler.compile_program(program)) == PINNED_DIGESTS[name]
