"""Checks a candidate program against the compiled model it was read from.

Two checks, both against the given model itself:
  functional  run the given weights and the candidate program on the same
              inputs (every input when there are at most MAX_EXHAUSTIVE, else
              a fixed random sample) and compare outputs;
  weights     recompile the candidate and compare both models' weight graphs,
              which equal each other exactly when the weights are identical up
              to a permutation of residual blocks and hidden units.
A candidate is *verified* only if the functional check passed on every input
tried; nothing is labelled verified without running it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.compiling import checking, compiler, forward
from tracr_decompiler.compiling.compiler import CompiledModel
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import evaluate, ir

MAX_EXHAUSTIVE = 5000
SAMPLED_INPUTS = 2000


@dataclasses.dataclass
class Check:
  functional: bool
  inputs: int  # how many inputs were compared
  exhaustive: bool
  weights_identical: bool | None  # None: not checked
  reason: str = ""


def check_inputs(settings: compiler.CompileSettings, seed: int = 0) -> tuple[list[tuple], bool]:
  count = sum(len(settings.vocab) ** n for n in range(1, settings.max_seq_len + 1))
  if count <= MAX_EXHAUSTIVE:
    return evaluate.all_inputs(settings.vocab, settings.max_seq_len), True
  return evaluate.sample_inputs(settings.vocab, settings.max_seq_len, SAMPLED_INPUTS, np.random.default_rng(seed)), False


class Verifier:
  """Runs the given model once, then checks any number of candidates against it."""

  def __init__(self, model: CompiledModel):
    self.model = model
    self.inputs, self.exhaustive = check_inputs(model.settings)
    self.batches = {}
    try:  # numeric vocab: compare arrays (fast); otherwise Python lists
      self.batches = evaluate.length_batches(self.inputs)
      self.expected_arrays = forward.run_arrays(model, self.batches)
    except (TypeError, ValueError):
      self.expected_arrays = None
    self.expected = forward.run(model, self.inputs) if self.expected_arrays is None else None
    self._graph = None

  @property
  def graph(self) -> weights.WeightGraph:
    if self._graph is None:
      self._graph = weights.encode_model(self.model)
    return self._graph

  def check(self, program: ir.Program, weights_check: bool = True) -> Check:
    try:
      if self.expected_arrays is not None:
        same = all(checking.same_arrays(evaluate.evaluate_batch(program, b).data, self.expected_arrays[n])
                   for n, b in self.batches.items())
      else:
        same = evaluate.same_outputs(self.expected, evaluate.evaluate(program, self.inputs))
    except (evaluate.EvaluationError, TypeError, ValueError) as e:
      return Check(False, 0, self.exhaustive, None, f"cannot evaluate: {e}")
    ident = self.weights_identical(program) if (weights_check and same) else None
    return Check(same, len(self.inputs), self.exhaustive, ident, "" if same else "outputs differ")

  def weights_identical(self, program: ir.Program) -> bool:
    try:
      other = compiler.compile_program(program, self.model.settings)
      g = weights.encode_model(other)
    except (compiler.CompileError, weights.NotTracrError):
      return False
    mine = self.graph
    return (g.features.shape == mine.features.shape and np.allclose(g.features, mine.features, atol=1e-4)
            and np.array_equal(g.relations, mine.relations))
