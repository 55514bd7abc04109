"""The metrics, each defined once (GUIDE §4) and used by every report.

exact        canonical texts are equal (names and independent-line order fixed by structure)
compilable   the program passes tracr's validation and compiles
functional   same outputs on every input (all of them when there are at most
             MAX_EXHAUSTIVE, else a fixed sample over all lengths); None only equals
             None; numbers within 1e-3
weight_identical  recompiling gives the reference weights up to a permutation of
             residual blocks and hidden units (equal weight graphs)
line_accuracy  fraction of reference lines present in the prediction (as canonical lines)
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.compiling import checking, compiler
from tracr_decompiler.decompiling import verify
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import evaluate, ir, source


def exact(pred: ir.Program, truth: ir.Program) -> bool:
  return source.to_source(ir.canonicalize(pred)) == source.to_source(ir.canonicalize(truth))


def compilable(pred: ir.Program, settings: compiler.CompileSettings) -> bool:
  try:
    compiler.compile_program(pred, settings)
    return True
  except compiler.CompileError:
    return False


def outputs(program: ir.Program, inputs: list[tuple]) -> list[list] | None:
  """Outputs on `inputs`, or None if the program cannot be evaluated on them."""
  try:
    return evaluate.evaluate(program, inputs)
  except (evaluate.EvaluationError, TypeError, ValueError):
    return None


def _arrays(program: ir.Program, batches) -> dict | None:
  try:
    return {n: evaluate.evaluate_batch(program, b).data for n, b in batches.items()}
  except (evaluate.EvaluationError, TypeError, ValueError):
    return None


def functional(pred: ir.Program, truth: ir.Program, settings: compiler.CompileSettings,
               inputs: list[tuple] | None = None) -> bool:
  inputs = inputs if inputs is not None else verify.check_inputs(settings)[0]
  try:  # numeric vocab: compare float arrays (NaN = None), much faster than Python lists
    batches = evaluate.length_batches(inputs)
  except (TypeError, ValueError):
    want, got = outputs(truth, inputs), outputs(pred, inputs)
    return want is not None and got is not None and evaluate.same_outputs(want, got)
  want, got = _arrays(truth, batches), _arrays(pred, batches)
  return want is not None and got is not None and all(checking.same_arrays(got[n], want[n]) for n in batches)


def weight_identical(pred: ir.Program, truth_model: compiler.CompiledModel) -> bool:
  try:
    other = weights.encode_model(compiler.compile_program(pred, truth_model.settings))
  except (compiler.CompileError, weights.NotTracrError):
    return False
  ref = weights.encode_model(truth_model)
  return (other.features.shape == ref.features.shape and np.allclose(other.features, ref.features, atol=1e-4)
          and np.array_equal(other.relations, ref.relations))


def _line_keys(program: ir.Program) -> list[str]:
  canon = ir.canonicalize(program)
  return [source.line_to_source(line) for line in canon.lines]


def line_accuracy(pred: ir.Program, truth: ir.Program) -> float:
  want, got = _line_keys(truth), set(_line_keys(pred))
  return sum(k in got for k in want) / len(want)
