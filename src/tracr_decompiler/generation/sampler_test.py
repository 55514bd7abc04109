"""The generator's output: valid, diverse, within its settings, never a held-out program."""

import collections

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from tracr_decompiler.compiling import checking
from tracr_decompiler.compiling.compiled import CompileSettings
from tracr_decompiler.generation import heldout, sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate, source


@pytest.fixture(scope="module")
def samples():
  rng = np.random.default_rng(123)
  return [sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()) for _ in range(40)]


def test_lengths_cover_the_configured_range(samples):
  lengths = collections.Counter(len(s.program) for s in samples)
  assert set(lengths) <= set(range(2, 9))
  assert len(lengths) >= 5  # roughly uniform over 2..8


def test_every_op_kind_appears(samples):
  kinds = collections.Counter((l.op, l.encoding) for s in samples for l in s.program.lines)
  for kind in [("map", "categorical"), ("map", "numerical"), ("sequence_map", "categorical"),
               ("linear_sequence_map", "numerical"), ("aggregate", "categorical"),
               ("aggregate", "numerical"), ("selector_width", "categorical")]:
    assert kinds[kind] > 0, kind


def test_samples_are_valid(samples):
  inputs = evaluate.all_inputs(range(5), 5)
  for s in samples[:15]:
    outs = evaluate.evaluate(s.program, inputs)
    assert checking.compiled_matches(s.model, inputs, outs)
    flat = [v for o in outs for v in o]
    assert len({v for v in flat if v is not None}) > 1  # not constant
    assert sum(v is None for v in flat) <= len(flat) / 2
    assert len(s.program.used()) == len(s.program)  # every SOp reaches the output


def test_op_weights_are_respected():
  cfg = GenerationConfig(op_weights={"map": 1.0}, min_sops=2, max_sops=3)
  rng = np.random.default_rng(0)
  for _ in range(5):
    assert {l.op for l in sampler.sample_program(cfg, rng).program.lines} == {"map"}


def test_blocklisted_programs_are_never_returned():
  cfg = GenerationConfig(op_weights={"selector_width": 1.0}, min_sops=1, max_sops=1)
  rng = np.random.default_rng(0)
  block = heldout.blocklist()
  for _ in range(20):
    assert source.to_source(sampler.sample_program(cfg, rng, block).program) not in block


def test_impossible_settings_are_rejected():
  with pytest.raises(ValueError):
    GenerationConfig(min_sops=5, max_sops=2)
  with pytest.raises(ValueError):
    GenerationConfig(op_weights={"teleport": 1.0})


def test_settings_that_admit_no_program_fail_with_one_clear_error():
  # One token and length 1: every SOp is constant, so no candidate is ever valid.
  cfg = GenerationConfig(settings=CompileSettings(vocab=(0,), max_seq_len=1), max_attempts=30, redraw_after=7)
  with pytest.raises(sampler.GenerationError, match="no valid program in 30 attempts"):
    sampler.sample_program(cfg, np.random.default_rng(0))


def test_time_budget_draws_a_new_length_instead_of_stalling():
  cfg = GenerationConfig(max_program_seconds=0.0, max_sops=4)  # every attempt is over time
  sample = sampler.sample_program(cfg, np.random.default_rng(0))
  assert sample.time_budget_hits == sample.attempts  # every attempt found its time spent and redrew
  assert len(sample.program.used()) == len(sample.program)


def test_refills_keep_the_length_distribution_and_cut_rejections():
  rng = np.random.default_rng(4)
  samples = [sampler.sample_program(GenerationConfig(), rng) for _ in range(30)]
  assert np.mean([s.attempts for s in samples]) < 8  # it was ~16 when dangling SOps meant a new attempt
  assert len({len(s.program) for s in samples}) >= 5


@pytest.mark.parametrize("settings", [
    CompileSettings(vocab=("a", "b", "c"), max_seq_len=3, compiler_bos="BOS", compiler_pad="PAD"),
    CompileSettings(vocab=(1, 4, 7), max_seq_len=4, causal=True, mlp_exactness=1000),
    CompileSettings(vocab=(0, 1, "x"), max_seq_len=3, causal=True),
], ids=["letters", "int-gaps-causal", "mixed-causal"])
def test_other_settings_give_programs_that_plain_tracr_computes(settings):
  # Through the user's door: each sample compiled by tracr's compile_rasp_to_model and run by its own forward.
  from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs
  from tracr_decompiler.loading import tracr_model
  cfg = GenerationConfig(settings=settings, max_sops=4)
  rng = np.random.default_rng(3)
  inputs = inputs_lib.input_set(settings.vocab, settings.max_seq_len)
  for _ in range(3):
    sample = sampler.sample_program(cfg, rng)
    assert sample.model.settings == settings and sample.checked_inputs == len(inputs)
    model = compiler.tracr_compile(sample.program, settings)
    dims = tracr_model.from_tracr(model).output_dims
    result = outputs.compare(outputs.tracr_outputs(model, inputs, dims), sample.program, inputs, settings.causal)
    assert result.equal, result.describe()


def test_mixed_settings_vary_per_program_and_travel_with_the_model():
  from tracr_decompiler.generation import settings as settings_lib
  cfg = GenerationConfig(mixed_settings=True, max_sops=3)
  rng = np.random.default_rng(1)
  drawn = [sampler.sample_program(cfg, rng).model.settings for _ in range(6)]
  assert len({(s.vocab, s.max_seq_len) for s in drawn}) >= 4
  for s in drawn:
    assert settings_lib.VOCAB_SIZES[0] <= len(s.vocab) <= settings_lib.VOCAB_SIZES[1]
    assert settings_lib.MAX_SEQ_LENS[0] <= s.max_seq_len <= settings_lib.MAX_SEQ_LENS[1]


def test_table_functions_are_drawn_and_plain_tracr_computes_them():
  # Issue 10: random lookup / truth tables over the inputs' whole value sets, checked like the rest.
  from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs
  from tracr_decompiler.loading import tracr_model
  from tracr_decompiler.program import tables
  cfg = GenerationConfig(table_fraction=0.7, max_sops=4)
  rng = np.random.default_rng(6)
  inputs = inputs_lib.input_set(cfg.settings.vocab, cfg.settings.max_seq_len)
  drawn = set()
  for _ in range(6):
    sample = sampler.sample_program(cfg, rng)
    drawn |= {tables.parse(line.fn).form for line in sample.program.lines if tables.parse(line.fn)}
    model = compiler.tracr_compile(sample.program, cfg.settings)
    result = outputs.compare(outputs.tracr_outputs(model, inputs, tracr_model.from_tracr(model).output_dims),
                             sample.program, inputs)
    assert result.equal, result.describe()
  assert len(drawn) >= 2, drawn  # lookup and truth tables both appear


def test_a_line_whose_tracr_value_set_would_explode_is_never_added():
  # tracr's basis inference enumerates a SequenceMap's input product: chained LinearSequenceMaps over
  # numerical SOps made one candidate compile for minutes. The builder knows every set and refuses first.
  from tracr_decompiler.program import ir
  cfg = GenerationConfig()
  rng = np.random.default_rng(0)
  probe, _ = sampler._input_sets(cfg.settings, rng)
  b = sampler._Builder(cfg, rng, probe, cfg.settings)
  assert b.try_add(ir.Line(op="linear_sequence_map", encoding="numerical", fn="lin_1_1", args=("tokens", "indices"),
                           out="x0"))
  assert b.vars[-1].domain == frozenset(range(9))  # tracr's set: every sum, not only those the probe saw
  x1 = ir.Line(op="linear_sequence_map", encoding="numerical", fn="lin_1_m1", args=("x0", "tokens"), out="x1")
  env = {v.name: v for v in b.vars}
  assert b._domain(x1, env) == frozenset(range(-4, 9))
  b.vars[-1].domain = frozenset(range(sampler.MAX_DOMAIN_PRODUCT // 4))  # as if x0 took 2^14 values
  assert b._domain(x1, env) is None  # 2^14 x 5 pairs: more than MAX_DOMAIN_PRODUCT
  assert not b.try_add(x1) and [line.out for line in b.lines] == ["x0"]


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.floats(0.0, 0.5))
def test_one_value_check_is_max_equals_min(seed, n_values, none_fraction):
  """The bit-mask check says what tracr needs: every query's selected values have one max and min (None fails)."""
  rng = np.random.default_rng(seed)
  n, length = 6, int(rng.integers(1, 9))
  data = rng.integers(0, n_values, size=(n, length)).astype(float)
  data[rng.random(data.shape) < none_fraction] = np.nan
  sel = rng.random((n, length, length)) < rng.uniform(0.05, 0.6)
  valid = rng.random((n, length)) < 0.9
  vals = np.broadcast_to(data[:, None, :], sel.shape)
  hi, lo = np.where(sel, vals, -np.inf).max(-1), np.where(sel, vals, np.inf).min(-1)
  want = not (sel.any(-1) & (hi != lo) & valid).any()
  assert sampler._one_value_per_query(sel, evaluate.Values(data, "int"), valid) == want


def test_grown_output_values_are_the_canonical_programs():
  """sample_program checks the compiled model against the grown program's values: canonicalizing keeps them."""
  from tracr_decompiler.generation import settings as settings_lib
  from tracr_decompiler.program import ir
  cfg, rng, compared = GenerationConfig(mixed_settings=True, table_fraction=0.3), np.random.default_rng(3), 0
  for _ in range(40):
    settings = settings_lib.draw(rng)
    probe, _ = sampler._input_sets(settings, rng)
    grown = sampler._grow(cfg, rng, probe, int(rng.integers(1, 9)), settings)
    if grown is None:
      continue
    again = sampler._outputs(ir.canonicalize(grown[0]), probe, settings.causal)
    assert again is not None and again.labels == grown[1].labels
    np.testing.assert_array_equal(again.data, grown[1].data)
    compared += 1
  assert compared >= 20
