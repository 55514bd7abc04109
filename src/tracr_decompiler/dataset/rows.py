"""One sample <-> one Parquet row (see schema.py for the columns)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiler import CompiledModel, CompileSettings
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


def program_from_row(row: dict) -> ir.Program:
  return ir.Program(tuple(ir.Line(l["op"], l["encoding"], l["fn"], tuple(l["args"]), l["out"])
                          for l in row["lines"]))


def model_from_row(row: dict) -> CompiledModel:
  params: dict[str, dict[str, np.ndarray]] = {}
  for w in row["weights"]:
    module, pname = w["name"].rsplit("/", 1)
    shape = tuple(w["shape"])
    dense = np.zeros(shape if len(shape) == 2 else (1, shape[0]), np.float32)
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
