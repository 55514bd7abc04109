"""The metrics, each defined once and used by every report.

exact        canonical texts are equal (names and independent-line order fixed by structure)
compilable   the program passes tracr's validation and compiles
functional   same outputs on every input of compiling/inputs.py's policy (all of them
             when there are at most MAX_EXHAUSTIVE, else a fixed sample over all
             lengths), compared by compiling/outputs.py: None only equals None;
             numbers within 1e-3
weight_identical  recompiling gives the reference weights up to renaming of residual
             blocks, heads and hidden units (decompiling/identity.py)
line_accuracy  fraction of reference lines present in the prediction (as canonical lines)
"""

from __future__ import annotations

from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs as model_outputs
from tracr_decompiler.decompiling import identity
from tracr_decompiler.program import evaluate, ir, registry, source


def exact(pred: ir.Program, truth: ir.Program, inputs: list[tuple] | None = None, causal: bool = False) -> bool:
  """The same canonical source.

  With `inputs`, functions written out (tables, formulas) in either program are
  first named alike on the values they receive there (registry name, else
  shortest formula, else table: evaluate.with_canonical_aliases), so a formula
  read from the weights matches the truth's table of the same function.
  """
  if inputs is not None and any(registry.written(line.fn) for p in (pred, truth) for line in p.lines):
    try:
      pred, truth = (evaluate.with_canonical_aliases(p, inputs, causal, search_formulas=True) for p in (pred, truth))
    except (evaluate.EvaluationError, TypeError, ValueError):
      pass  # a program that fails on these inputs is compared as written
  return source.to_source(ir.canonicalize(pred)) == source.to_source(ir.canonicalize(truth))


def compilable(pred: ir.Program, settings: compiler.CompileSettings) -> bool:
  try:
    compiler.compile_program(pred, settings)
    return True
  except compiler.CompileError:
    return False


def outputs(program: ir.Program, inputs: list[tuple]) -> list[list] | None:
  """Outputs on `inputs` as Python lists, or None if the program cannot be evaluated on them."""
  try:
    return evaluate.evaluate(program, inputs)
  except (evaluate.EvaluationError, TypeError, ValueError):
    return None


def functional(pred: ir.Program, truth: ir.Program, settings: compiler.CompileSettings,
               inputs: inputs_lib.InputSet | None = None) -> bool:
  """Same outputs as `truth` on every input of the input policy (compiling/inputs.py)."""
  inputs = inputs if inputs is not None else inputs_lib.input_set(settings.vocab, settings.max_seq_len)
  try:
    want = model_outputs.program_outputs(truth, inputs, settings.causal)
  except (evaluate.EvaluationError, TypeError, ValueError):
    return False
  return model_outputs.compare(want, pred, inputs, settings.causal).equal


def weight_identical(pred: ir.Program, truth_model: compiler.CompiledModel) -> bool:
  try:
    other = compiler.compile_program(pred, truth_model.settings)
  except compiler.CompileError:
    return False
  return identity.same_weights(truth_model, other)


def _line_keys(program: ir.Program) -> list[str]:
  canon = ir.canonicalize(program)
  return [source.line_to_source(line) for line in canon.lines]


def line_accuracy(pred: ir.Program, truth: ir.Program) -> float:
  want, got = _line_keys(truth), set(_line_keys(pred))
  return sum(k in got for k in want) / len(want)
