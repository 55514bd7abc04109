"""The generator's output: valid, diverse, within its settings, never a held-out program."""

import collections

import numpy as np
import pytest

from tracr_decompiler.compiling import checking
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
