"""Checks candidate programs against the model they were read from.

The oracle is the model we were given, run and decoded as its own library runs
it: a tracr AssembledTransformerModel through its own forward pass (causal
masking included), a model file through our NumPy forward pass (which is what
the file means). A candidate's RASP outputs, evaluated causally for a causal
model, must equal the model's at every position of every input tried
(compiling/outputs.py). Two extra checks:

  reading    for a tracr model, every input is run through its own parameters by
             our NumPy forward pass (milliseconds), and that reading must
             reproduce the model's own (JAX) forward pass on a cross-check
             sample: up to CROSS_CHECK inputs of the longest length, which
             exercise every position and mask, in one compile instead of one
             per length (seconds). If it does not, what we read is not what
             runs, and nothing is verified; the check says how much was
             cross-checked;
  weights    recompiling the candidate with the model's settings gives the same
             parameters up to renaming (identity.py): the model *is* the
             candidate's compile, a proof that does not depend on how many
             inputs were tried.

Statuses, strongest first:
  proved      outputs match and the weights are identical up to renaming;
  verified    outputs match on every valid input (exhaustive);
  sampled     outputs match on a sample of inputs only: not a promise;
  different   outputs differ (the first difference is reported);
  untrusted   our reading of the model disagrees with its own forward pass.
Only "proved" and "verified" count as verified.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Literal

import numpy as np

from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs
from tracr_decompiler.loading import reading, tracr_model
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.decompiling import identity
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import ir

Status = Literal["proved", "verified", "sampled", "different", "untrusted"]


@dataclasses.dataclass
class Check:
  status: Status
  comparison: outputs.Comparison
  inputs: int  # how many inputs were compared
  exhaustive: bool
  weights_identical: bool | None  # None: not checked
  reason: str = ""
  cross_checked: str = ""  # a tracr model: how much its own forward pass confirmed our reading of it

  @property
  def functional(self) -> bool:
    """Outputs matched on every input tried (exhaustive or not)."""
    return self.comparison.equal

  @property
  def verified(self) -> bool:
    return self.status in ("proved", "verified")

  def describe(self) -> str:
    scope = f"{'all' if self.exhaustive else ''} {self.inputs}{'' if self.exhaustive else ' sampled'} inputs".strip()
    if self.status == "untrusted":
      return f"not verified: {self.reason}"
    if self.status == "different":
      return f"outputs differ from the model's: {self.comparison.describe()}"
    text = f"same outputs as the model on {scope}"
    if self.status == "proved":
      text += "; recompiles to identical weights (up to renaming)"
    elif self.status == "sampled":
      text += " (not exhaustive, weights not identical: not a proof)"
    if self.cross_checked:
      text += f" ({self.cross_checked})"
    return text


def _agree(a: outputs.Outputs, b: outputs.Outputs) -> tuple[int, int]:
  """(positions, disagreements) between two readings of one model."""
  positions = bad = 0
  for n in a.decoded:
    if a.categorical != b.categorical:
      return 1, 1
    if a.categorical:  # in an empty block the argmax is float noise (~1e-8): compare only where a value is held
      same = (a.none[n] == b.none[n]) & ((a.decoded[n] == b.decoded[n]) | a.none[n])
    else:
      same = np.abs(a.decoded[n] - b.decoded[n]) <= outputs.TOLERANCE
    positions += same.size
    bad += int((~same).sum())
  return positions, bad


CROSS_CHECK = 1024  # inputs of the longest length run through a tracr model's own forward pass


def cross_check_inputs(inputs: inputs_lib.InputSet, seed: int = 0) -> inputs_lib.InputSet:
  """Up to CROSS_CHECK inputs of the longest length (all of them when there are fewer): one shape, one compile."""
  rows = [inputs.inputs[i] for i in inputs.index[max(inputs.index)]]
  if len(rows) > CROSS_CHECK:
    rows = [rows[i] for i in sorted(np.random.default_rng(seed).choice(len(rows), CROSS_CHECK, replace=False))]
  return inputs_lib.from_inputs(rows, exhaustive=False)


class Verifier:
  """Runs the given model once, then checks any number of candidates against it.

  A tracr model's own forward pass (the cross-check, mostly one XLA compile: 0.3-0.5 s) runs in a thread
  from the moment the Verifier is made, so it overlaps whatever the caller does before its first `check`
  (decoding, reading functions); `check` waits for it, so no status is given before it is known.
  """

  def __init__(self, model, compiled: CompiledModel | None = None, seed: int = 0):
    self.compiled = compiled if compiled is not None else reading.as_compiled(model)
    s = self.compiled.settings
    self.inputs = inputs_lib.input_set(s.vocab, s.max_seq_len, seed)
    self.untrusted = ""
    self.cross_checked = ""  # for a tracr model: what its own forward pass confirmed, in words
    self._canonical_form: dict[str, np.ndarray] | None = None
    self._canonical_tried = False
    self._cross_checking: concurrent.futures.Future | None = None
    try:
      self.expected = outputs.model_outputs(self.compiled, self.inputs)
    except (ValueError, IndexError, KeyError) as e:
      self.untrusted = f"our reading of the weights cannot run ({e})"
      self.expected = outputs.Outputs(False, [], {}, {})
      return
    if tracr_model.is_tracr_model(model):
      runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tracr-cross-check")
      self._cross_checking = runner.submit(self._cross_check, model, seed)
      runner.shutdown(wait=False)  # the thread ends with its one task

  def _settle(self) -> None:
    """Waits for the cross-check, if it is still running (its errors are raised here)."""
    if self._cross_checking is not None:
      self.untrusted = self._cross_checking.result()
      self._cross_checking = None

  def _cross_check(self, model, seed: int) -> str:
    """Why our reading of a tracr model cannot be trusted ("" when it can), from its own forward pass."""
    if not self.compiled.output_dims:
      return "the output SOp's block could not be found in the residual stream"
    sample = cross_check_inputs(self.inputs, seed)
    theirs = outputs.tracr_outputs(model, sample, self.compiled.output_dims)
    ours = outputs.model_outputs(self.compiled, sample)
    if theirs.categorical and [outputs.evaluate.value_key(v) for v in ours.table] != [
        outputs.evaluate.value_key(v) for v in theirs.table[:len(ours.table)]]:
      return "the output encoder's values do not match the output block"
    positions, bad = _agree(ours, theirs)
    if bad:
      return (f"our reading of the weights disagrees with the model's own forward pass at {bad} of "
              f"{positions} output positions")
    self.cross_checked = (f"the model's own forward pass agreed with its weights as read on "
                          f"{len(sample)} inputs of length {max(sample.index)}")
    return ""

  def check(self, program: ir.Program, weights_check: bool = True) -> Check:
    self._settle()
    s = self.compiled.settings
    cmp = outputs.compare(self.expected, program, self.inputs, causal=s.causal)
    ident = self.weights_identical(program) if (weights_check and cmp.equal and not self.untrusted) else None
    if self.untrusted:
      status: Status = "untrusted"
    elif not cmp.equal:
      status = "different"
    elif ident:
      status = "proved"
    else:
      status = "verified" if self.inputs.exhaustive else "sampled"
    return Check(status, cmp, len(self.inputs), self.inputs.exhaustive, ident, self.untrusted, self.cross_checked)

  def weights_identical(self, program: ir.Program) -> bool:
    """Recompiled with the model's settings (either usual mlp_exactness), identical up to renaming?"""
    base = self.compiled.settings
    for exactness in dict.fromkeys((base.mlp_exactness, 100, 1000)):
      try:
        other = compiler.compile_program(program, dataclasses.replace(base, mlp_exactness=exactness))
      except (compiler.CompileError, weights.NotTracrError, ValueError):
        return False
      if identity.same_weights(self.compiled, other, self._canonical()):
        return True
    return False

  def _canonical(self) -> dict[str, np.ndarray] | None:
    """The given model in identity.py's canonical frame, computed once for all candidates."""
    if not self._canonical_tried:
      self._canonical_tried = True
      try:
        self._canonical_form = identity.canonical(self.compiled)
      except (weights.NotTracrError, KeyError, IndexError, ValueError):
        pass  # same_weights will say "not identical"
    return self._canonical_form
