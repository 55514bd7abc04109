"""Padded batches (all lengths in one array) evaluate exactly as one batch per length."""

import numpy as np
import pytest

from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate


@pytest.fixture(scope="module")
def programs():
  rng = np.random.default_rng(5)
  return [sampler.sample_program(GenerationConfig(), rng).program for _ in range(25)]


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_padded_batch_equals_one_batch_per_length(programs, causal):
  inputs = evaluate.all_inputs(range(5), 4)
  tokens, valid = evaluate.padded_batch(inputs)
  lengths = valid.sum(1)
  compared = 0
  for program in programs:
    try:
      per_length = {n: evaluate.evaluate_batch(program, b, causal=causal).data
                    for n, b in evaluate.length_batches(inputs).items()}
    except evaluate.EvaluationError:
      with pytest.raises(evaluate.EvaluationError):  # the padded batch fails where the real inputs do
        evaluate.evaluate_batch(program, tokens, causal=causal, valid=valid)
      continue
    padded = evaluate.evaluate_batch(program, tokens, causal=causal, valid=valid).data
    for n, want in per_length.items():
      np.testing.assert_array_equal(padded[lengths == n][:, :n], want)
    compared += 1
  assert compared >= 20


def test_padding_holds_a_real_value_so_functions_never_see_new_ones():
  tokens, valid = evaluate.padded_batch([(3,), (1, 2)])
  assert tokens.tolist() == [[3, 3], [1, 2]] and valid.tolist() == [[True, False], [True, True]]


def test_canonical_aliases_on_letter_vocabularies_and_causal_models():
  # Training featurises every row this way; letters used to crash it (float conversion of 'a').
  from tracr_decompiler.compiling.compiled import CompileSettings
  settings = CompileSettings(vocab=("a", "b", "c"), max_seq_len=3, causal=True)
  rng = np.random.default_rng(2)
  for _ in range(3):
    program = sampler.sample_program(GenerationConfig(settings=settings, max_sops=4), rng).program
    inputs = evaluate.all_inputs(settings.vocab, settings.max_seq_len)
    assert evaluate.with_canonical_aliases(program, inputs, causal=True) == program  # the generator's form already


def test_means_add_left_to_right_as_tracrs_evaluator():
  """tracr averages selected values with Python's sum (left to right); NumPy's pairwise sum differs at 8+."""
  from tracr.rasp import rasp

  from tracr_decompiler.program import source
  program = source.parse_source(
      "x = rasp.numerical(rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE), "
      "rasp.tokens, default=0))")
  inputs = [(0.1,) * n for n in range(1, 13)] + [(0.1, 0.3, 0.1, 0.7, 0.1, 0.1, 0.9, 0.1, 0.1, 0.3)]
  ours = evaluate.evaluate(program, inputs)
  from tracr_decompiler.program import to_rasp
  theirs = [rasp.evaluate(to_rasp.to_rasp(program), list(xs)) for xs in inputs]
  assert ours == theirs  # bit for bit
  assert sum([0.1] * 10) / 10 != np.mean([0.1] * 10)  # the case that tells the two orders apart is in here
