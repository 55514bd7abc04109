"""One sample <-> one Parquet row (see schema.py for the columns)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from tracr_decompiler import limits
from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel, CompileSettings
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.program import ir, source, to_rasp


def program_id(text: str) -> str:
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_of(text: str, val_percent: int = 5, test_percent: int = 5) -> str:
  """Split from the hash of the canonical text: a program is in one split only."""
  bucket = int(hashlib.sha256(("split:" + text).encode()).hexdigest(), 16) % 100
  if bucket < test_percent:
    return "test"
  if bucket < test_percent + val_percent:
    return "val"
  return "train"


def _weights(model: CompiledModel) -> list[dict]:
  out = []
  for module, params in sorted(model.params.items()):
    layer = layout.layer_of(module)
    layer = -1 if layer is None else layer
    kind = layout.sublayer_of(module)
    for pname, array in sorted(params.items()):
      a = np.atleast_2d(array) if array.ndim == 1 else array
      rows, cols = np.nonzero(a)
      out.append({"name": f"{module}/{pname}", "layer": layer, "kind": kind, "shape": list(array.shape),
                  "rows": rows.astype(np.int32), "cols": cols.astype(np.int32),
                  "values": a[rows, cols].astype(np.float32)})
  return out


def _label_to_var(label: str) -> str:
  return label.rsplit("_", 1)[0]


def to_row(program: ir.Program, model: CompiledModel, split_percent=(5, 5)) -> dict:
  """program must be canonical and compiled with the default (line-order) names."""
  text = source.to_source(program)
  names = {to_rasp.default_label(i, len(program)): line.out for i, line in enumerate(program.lines, 1)}
  return {
      "id": program_id(text),
      "source": text,
      "lines": [{"op": l.op, "encoding": l.encoding, "fn": l.fn, "args": list(l.args), "out": l.out}
                for l in program.lines],
      "n_sops": len(program),
      "split": split_of(text, *split_percent),
      "settings": json.dumps(model.settings.to_json()),
      "num_layers": model.num_layers, "num_heads": model.num_heads, "key_size": model.key_size,
      "weights": _weights(model),
      "residual_labels": model.residual_labels,
      "allocation": [{"var": names.get(_label_to_var(label), label), "layer": layer, "sublayer": sub}
                     for label, (layer, sub) in sorted(model.allocation.items())],
      "input_encoding": json.dumps([[tok, i] for tok, i in model.input_encoding.items()]),
      "output_values": json.dumps(model.output_values),
      "categorical_output": model.categorical_output,
      "output_dims": model.output_dims,
  }


class RowError(TracrDecompilerError, ValueError):
  """A dataset row that is not one writer.py wrote: malformed, or sizes beyond limits.py's."""


_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError)


def program_from_row(row: dict) -> ir.Program:
  try:
    return ir.Program(tuple(ir.Line(l["op"], l["encoding"], l["fn"], tuple(l["args"]), l["out"])
                            for l in row["lines"]))
  except _MALFORMED as e:
    raise RowError(f"malformed program lines ({type(e).__name__}: {str(e)[:100]})") from None


def _int(x, lo: int, hi: int) -> bool:
  return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def _check_sizes(row: dict) -> None:
  """Every size a row states, bounded as a model file's are (limits.py), before anything is allocated."""
  def need(cond: bool, why: str) -> None:
    if not cond:
      raise RowError(why)
  need(_int(row.get("num_layers"), 1, limits.MAX_LAYERS), f"num_layers must be 1..{limits.MAX_LAYERS}")
  need(_int(row.get("num_heads"), 1, limits.MAX_HEADS), f"num_heads must be 1..{limits.MAX_HEADS}")
  need(_int(row.get("key_size"), 1, limits.MAX_KEY_SIZE), f"key_size must be 1..{limits.MAX_KEY_SIZE}")
  weights: list = row.get("weights")  # type: ignore[assignment]  # checked on the next line
  need(isinstance(weights, list) and len(weights) <= 8 * limits.MAX_LAYERS + 4, "weights must be a list of tensors")
  total = 0
  for w in weights:
    need(isinstance(w, dict), "each weight must be an object")
    shape = w.get("shape")
    need(isinstance(shape, list) and len(shape) in (1, 2) and all(_int(n, 1, 1 << 20) for n in shape),
         "a weight's shape must be 1 or 2 sizes of 1..2^20")
    size = math.prod(shape)
    total += size
    need(total * 4 <= limits.MAX_MODEL_BYTES, f"weights exceed {limits.MAX_MODEL_BYTES >> 20} MiB")
    lengths = {0 if w.get(k) is None else len(w[k]) for k in ("rows", "cols", "values")}  # lists or arrays
    need(len(lengths) == 1 and lengths.pop() <= size, "a weight's rows, cols and values must be as many, at most its size")
  layers = {layout.layer_of(str(w.get("name"))) for w in weights} - {None}
  need(layers == set(range(row["num_layers"])), "num_layers does not match the layers the weights hold")


def model_from_row(row: dict) -> CompiledModel:
  """The row's compiled model. Raises RowError (one line) for a row writer.py did not write."""
  _check_sizes(row)
  try:
    return _model_from_row(row)
  except _MALFORMED as e:
    raise RowError(f"malformed model ({type(e).__name__}: {str(e)[:100]})") from None


def _model_from_row(row: dict) -> CompiledModel:
  params: dict[str, dict[str, np.ndarray]] = {}
  for w in row["weights"]:
    module, pname = w["name"].rsplit("/", 1)
    shape = tuple(w["shape"])
    dense = np.zeros(shape if len(shape) == 2 else (1, shape[0]), np.float32)
    if min(min(w["rows"], default=0), min(w["cols"], default=0)) < 0:  # NumPy would wrap negative ones around
      raise ValueError(f"{w['name']}: a negative index")
    dense[np.asarray(w["rows"], dtype=np.int64), np.asarray(w["cols"], dtype=np.int64)] = w["values"]
    params.setdefault(module, {})[pname] = dense.reshape(shape)
  return CompiledModel(
      params=params, settings=CompileSettings.from_json(json.loads(row["settings"])),
      num_heads=row["num_heads"], num_layers=row["num_layers"], key_size=row["key_size"],
      residual_labels=list(row["residual_labels"]),
      input_encoding={tok: i for tok, i in json.loads(row["input_encoding"])},
      output_values=json.loads(row["output_values"]), output_dims=list(row["output_dims"]),
      categorical_output=bool(row["categorical_output"]),
      allocation={a["var"]: (a["layer"], a["sublayer"]) for a in row["allocation"]})
