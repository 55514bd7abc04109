"""What a model or a program outputs, and the one comparison between them.

The oracle for a decompiled program is the model we were given, decoded as
its own library decodes it: a categorical output is the argmax over the output
block, looked up in the output encoder; a numerical output is the value of its
one dimension. tracr cannot output None: where a program says None, its
compiled model leaves the output block empty (all below 0.5; 0 for a numerical
output), so None matches exactly those positions.

Three producers, one `Outputs` type, one `compare`:
  tracr_outputs    a tracr AssembledTransformerModel run by its own forward pass;
  model_outputs    our CompiledModel run by forward.py (files, fast compiles);
  program_outputs  a program's RASP evaluation (e.g. the ground truth in metrics).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracr_decompiler.compiling import forward
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.compiling.inputs import InputSet
from tracr_decompiler.program import evaluate, ir

TOLERANCE = 1e-3  # numerical outputs: tracr's numerical MLPs are approximations (mlp_exactness)
EMPTY = 0.5  # a categorical output block whose largest entry is below this holds no value
_CHUNK = 2048  # rows per forward call: bounds memory for wide models


@dataclasses.dataclass
class Outputs:
  """Outputs on an InputSet, per length batch (rows in InputSet.index order)."""
  categorical: bool
  table: list  # categorical: the value of each code
  decoded: dict[int, np.ndarray]  # categorical: int codes [N, L], -1 = none; numerical: float [N, L]
  none: dict[int, np.ndarray]  # bool [N, L]: the position holds no value

  def value(self, n: int, row: int, pos: int):
    if self.categorical:
      code = int(self.decoded[n][row, pos])
      return None if code < 0 else self.table[code]
    v = float(self.decoded[n][row, pos])
    return None if np.isnan(v) else v


@dataclasses.dataclass
class Comparison:
  equal: bool
  positions: int  # output positions compared
  mismatches: int
  first: tuple | None = None  # (input, position, expected, got) of the first mismatch
  reason: str = ""

  def describe(self) -> str:
    if self.reason:
      return self.reason
    if self.equal:
      return f"same outputs at all {self.positions} positions"
    assert self.first is not None, "a comparison that differs without a reason records its first mismatch"
    inp, pos, want, got = self.first
    return (f"{self.mismatches} of {self.positions} output positions differ; first: input {list(inp)} "
            f"position {pos}: model {want!r}, program {got!r}")


def _token_ids(encoding: dict, bos, inputs: InputSet, n: int) -> np.ndarray:
  """Token ids [N, n + 1] (BOS first) for the length-n batch, as the input encoder maps them."""
  return np.array([[encoding[bos]] + [encoding[t] for t in inputs.inputs[i]] for i in inputs.index[n]])


def model_outputs(model: CompiledModel, inputs: InputSet) -> Outputs:
  """Our NumPy forward pass of a CompiledModel (its stored output block), on its weights as given."""
  if not model.output_dims:
    raise ValueError("the model's output block is unknown")
  model = model.as_given
  decoded, none = {}, {}
  for n in inputs.index:
    ids = _token_ids(model.input_encoding, model.settings.compiler_bos, inputs, n)
    block = np.concatenate([forward.residual_stream(model, ids[i:i + _CHUNK])[:, 1:, model.output_dims]
                            for i in range(0, len(ids), _CHUNK)])
    if model.categorical_output:
      decoded[n] = block.argmax(-1)
      none[n] = block.max(-1) < EMPTY
    else:
      decoded[n] = block[..., 0].astype(float)
      none[n] = np.abs(decoded[n]) <= TOLERANCE
  table = list(model.output_values) if model.categorical_output else []
  return Outputs(model.categorical_output, table, decoded, none)


def tracr_outputs(model, inputs: InputSet, output_dims: list[int]) -> Outputs:
  """A tracr AssembledTransformerModel run by its own (JAX) forward pass and decoded as `apply` does.

  output_dims: the output block in the residual stream, used only to tell where
  the model holds no value (an empty block); without it no position is "none".
  """
  import jax  # only reached with a tracr model in hand, so JAX is installed
  import jax.numpy as jnp
  # The model's own forward pass, one XLA compile per input length (eager JAX is
  # ~3x slower). Inputs are never padded: tracr's assembled model does not mask
  # PAD keys, so padding would change what it computes. Backend optimisation is
  # off because compiling, not running, is the cost here (~1.7x less).
  run = jax.jit(model.forward, compiler_options={"xla_backend_optimization_level": "0"})
  enc = model.input_encoder
  out_enc = model.output_encoder
  decoded, none = {}, {}
  categorical = None
  for n in inputs.index:
    ids = _token_ids(enc.encoding_map, enc.bos_token, inputs, n)
    chunk = -(-len(ids) // -(-len(ids) // _CHUNK))  # equal chunks, so one shape (one compile) per length
    rows = np.concatenate([ids, np.repeat(ids[:1], (-len(ids)) % chunk, axis=0)])
    unembedded, residual = [], []
    for i in range(0, len(rows), chunk):
      out = run(model.params, jnp.asarray(rows[i:i + chunk]))
      unembedded.append(np.asarray(out.unembedded_output)[:, 1:])
      residual.append(np.asarray(out.transformer_output.output)[:, 1:][..., output_dims])
    u, block = np.concatenate(unembedded)[:len(ids)], np.concatenate(residual)[:len(ids)]
    categorical = np.issubdtype(u.dtype, np.integer)  # tracr unembeds categorical outputs by argmax
    if categorical:
      decoded[n] = u.astype(np.int64)
      none[n] = (block.max(-1) < EMPTY) if output_dims else np.zeros(u.shape, bool)
    else:
      decoded[n] = u.astype(float)
      none[n] = np.abs(decoded[n]) <= TOLERANCE
  table: list = []
  if categorical:
    if out_enc is not None and hasattr(out_enc, "encoding_map"):
      by_index = {int(i): v for v, i in out_enc.encoding_map.items()}
      top = max(max(by_index, default=-1), max((int(d.max()) for d in decoded.values()), default=-1))
      table = [by_index.get(i) for i in range(top + 1)]  # tracr's decode fails on unknown indices
    else:  # no output encoder: `apply` returns the raw argmax indices
      table = list(range(max((int(d.max()) for d in decoded.values()), default=0) + 1))
  return Outputs(bool(categorical), table, decoded, none)


def program_outputs(program: ir.Program, inputs: InputSet, causal: bool = False) -> Outputs:
  """A program's RASP outputs (raises evaluate.EvaluationError where tracr's evaluator would)."""
  values = {n: evaluate.evaluate_batch(program, b, labels=inputs.labels, causal=causal)
            for n, b in inputs.batches.items()}
  categorical = program.output.encoding == "categorical"
  none = {n: np.isnan(v.data) for n, v in values.items()}
  if not categorical:
    if any(v.labels is not None for v in values.values()):
      raise evaluate.EvaluationError("a numerical output that is not a number")
    return Outputs(False, [], {n: v.data.astype(float) for n, v in values.items()}, none)
  table: list = []
  codes: dict = {}
  decoded = {}
  for n, v in values.items():
    d = np.full(v.data.shape, -1, np.int64)
    for x in np.unique(v.data[~none[n]]):
      py = evaluate.py_value(x, v.kind, v.labels)
      key = evaluate.value_key(py)
      if key not in codes:
        codes[key] = len(table)
        table.append(py)
      d[v.data == x] = codes[key]
    decoded[n] = d
  return Outputs(True, table, decoded, none)


def compare(expected: Outputs, program: ir.Program, inputs: InputSet, causal: bool = False,
            tol: float = TOLERANCE) -> Comparison:
  """Whether `program` outputs what `expected` holds at every position of every input.

  A position matches when both hold no value, or when the program's value
  equals the expected decoded value (numbers within `tol`; bools and strings
  are not numbers).
  """
  try:
    got = program_outputs(program, inputs, causal)
  except (evaluate.EvaluationError, TypeError, ValueError) as e:
    return Comparison(False, 0, 0, None, f"cannot evaluate the program: {e}")
  positions = mismatches = 0
  first = None
  key_to_code = {evaluate.value_key(v): i for i, v in enumerate(expected.table) if v is not None}
  for n in inputs.index:
    got_none = got.none[n]
    if expected.categorical:
      remap = np.array([key_to_code.get(evaluate.value_key(v), -2) for v in got.table] + [-2], np.int64)
      got_codes = remap[np.where(got.decoded[n] >= 0, got.decoded[n], len(got.table))] if got.categorical \
          else _codes_of_numbers(got.decoded[n], key_to_code)
      same = np.where(got_none, expected.none[n], got_codes == expected.decoded[n])
    else:
      values = (np.array([_as_float(v) for v in got.table] + [np.nan])[
          np.where(got.decoded[n] >= 0, got.decoded[n], len(got.table))] if got.categorical
          else got.decoded[n])
      with np.errstate(invalid="ignore"):
        same = np.where(got_none, expected.none[n], np.abs(values - expected.decoded[n]) <= tol)
    positions += same.size
    bad = np.argwhere(~same)
    mismatches += len(bad)
    if len(bad) and first is None:
      row, pos = (int(x) for x in bad[0])
      first = (inputs.inputs[inputs.index[n][row]], pos, expected.value(n, row, pos), got.value(n, row, pos))
  return Comparison(mismatches == 0, positions, mismatches, first)


def _as_float(v) -> float:
  return float(v) if evaluate.is_number(v) else np.nan


def _codes_of_numbers(values: np.ndarray, key_to_code: dict) -> np.ndarray:
  """Numerical program values as codes into a categorical table (-2: not in it)."""
  out = np.full(values.shape, -2, np.int64)
  for x in np.unique(values[~np.isnan(values)]):
    out[values == x] = key_to_code.get(evaluate.value_key(float(x)), -2)
  return out
