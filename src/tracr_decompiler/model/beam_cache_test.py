"""The cached (incremental) AR beam equals the uncached full-prefix beam on the shipped model."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from tracr_decompiler import test_cases
from tracr_decompiler.compiling.compiler import compile_program
from tracr_decompiler.decompiling.decompile import load_decompiler
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.generation import heldout
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.generation.sampler import sample_program
from tracr_decompiler.model.beam import ar_beam
from tracr_decompiler.model.batch import inference_batch

_SAMPLE_SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=None)
def _compiled(case: str):
  if case.startswith("sampled:"):
    return sample_program(GenerationConfig(), np.random.default_rng(int(case[8:])), heldout.blocklist()).model
  return compile_program(test_cases.PROGRAMS[case])


@pytest.mark.parametrize("beam", [1, 16])
@pytest.mark.parametrize("case", [*test_cases.PROGRAMS, *(f"sampled:{s}" for s in _SAMPLE_SEEDS)])
def test_cached_ar_beam_matches_the_full_prefix_beam(case, beam):
  model = load_decompiler()
  assert not model.training
  compiled = _compiled(case)
  graph = weights.encode_model(compiled)
  s = len(graph.nodes)
  with torch.no_grad():
    memory, mask = model.encode(inference_batch(compiled.params, graph, model.cfg))
  full = ar_beam(model, memory, mask, s, beam=beam, cache=False)
  cached = ar_beam(model, memory, mask, s, beam=beam, cache=True)
  assert full, "the beam produced candidates"
  assert [p for _, p in cached] == [p for _, p in full]
  np.testing.assert_allclose([c for c, _ in cached], [c for c, _ in full], rtol=1e-5, atol=1e-5)


def test_ar_step_logits_match_ar_logits_for_reordered_beams():
  """Row by row, ar_step's logits equal ar_logits over each row's whole prefix, after beam reordering."""
  model = load_decompiler()
  compiled = _compiled("mixed")
  graph = weights.encode_model(compiled)
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    memory, mask = model.encode(inference_batch(compiled.params, graph, model.cfg))
    state = model.ar_start(memory, mask)
    prefixes = [[programs.BOS]]
    model.ar_step(state, torch.tensor([programs.BOS]), torch.tensor([0]))
    for _ in range(6):
      parents = torch.randint(len(prefixes), (4,), generator=gen)
      new = torch.randint(model.cfg.ar_vocab, (4,), generator=gen)
      prefixes = [prefixes[p] + [t] for p, t in zip(parents.tolist(), new.tolist())]
      step = model.ar_step(state, new, parents)
      full = model.ar_logits(memory.expand(4, -1, -1), mask.expand(4, -1), torch.tensor(prefixes))[:, -1]
      torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-4)
