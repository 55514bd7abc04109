"""Model files in and out: our safetensors format (tracr objects are read by tracr_model.py).

File format (written by `tracr-decompiler compile`): a safetensors file whose
tensors are tracr's parameters ("transformer/layer_0/attn/query/w", ...) and
whose metadata holds one JSON document under "tracr_decompiler":
    {"format_version": 1, "settings": {...}, "num_layers": .., "num_heads": ..,
     "key_size": .., "input_encoding": [[token, row], ...], "output_values": [...],
     "categorical_output": true, "residual_labels": [...]}
Nothing in the file is executed; bad files raise ModelFileError with one line.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tracr_decompiler.compiling.compiler import CompiledModel, CompileSettings

FORMAT_VERSION = 1
META_KEY = "tracr_decompiler"
MAX_FILE_BYTES = 2 << 30


class ModelFileError(ValueError):
  """A model file that is missing, truncated, foreign or malformed."""


def save_model(model: CompiledModel, path: str) -> None:
  from safetensors.numpy import save_file
  tensors = {f"{m}/{p}": np.ascontiguousarray(v) for m, ps in model.params.items() for p, v in ps.items()}
  meta = {"format_version": FORMAT_VERSION, "settings": model.settings.to_json(), "num_layers": model.num_layers,
          "num_heads": model.num_heads, "key_size": model.key_size,
          "input_encoding": [[t, i] for t, i in model.input_encoding.items()],
          "output_values": model.output_values, "categorical_output": model.categorical_output,
          "output_dims": model.output_dims, "residual_labels": model.residual_labels}
  save_file(tensors, path, metadata={META_KEY: json.dumps(meta)})


def _check(cond: bool, message: str) -> None:
  if not cond:
    raise ModelFileError(message)


def load_model(path: str) -> CompiledModel:
  """Reads a model file written by `save_model`, validating everything it uses."""
  from safetensors import SafetensorError, safe_open
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise ModelFileError(f"cannot read {path}: {e.strerror}") from None
  _check(size <= MAX_FILE_BYTES, f"{path} is too large to be a compiled Tracr model")
  try:
    with safe_open(path, framework="numpy") as f:
      meta_text = (f.metadata() or {}).get(META_KEY)
      _check(meta_text is not None, f"{path} is not a tracr-decompiler model file (no metadata)")
      tensors = {k: f.get_tensor(k) for k in f.keys()}
  except ModelFileError:
    raise
  except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
    raise ModelFileError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:80]})") from None
  try:
    meta = json.loads(meta_text)
  except ValueError:
    raise ModelFileError(f"{path}: metadata is not valid JSON") from None
  _check(isinstance(meta, dict), f"{path}: metadata is not a JSON object")
  _check(meta.get("format_version") == FORMAT_VERSION,
         f"{path}: unknown format version {meta.get('format_version')!r} (expected {FORMAT_VERSION})")
  try:
    settings = CompileSettings.from_json(meta["settings"])
    num_layers, num_heads, key_size = (int(meta[k]) for k in ("num_layers", "num_heads", "key_size"))
    encoding = {(t if not isinstance(t, list) else tuple(t)): int(i) for t, i in meta["input_encoding"]}
    output_values = list(meta.get("output_values", []))
    categorical = bool(meta.get("categorical_output", True))
  except (KeyError, TypeError, ValueError) as e:
    raise ModelFileError(f"{path}: malformed metadata ({type(e).__name__}: {e})") from None
  _check(0 < num_layers <= 256 and 0 < num_heads <= 256 and 0 < key_size <= 4096, f"{path}: implausible model sizes")
  params: dict[str, dict[str, np.ndarray]] = {}
  for name, value in tensors.items():
    _check("/" in name, f"{path}: unexpected tensor name {name!r}")
    module, p = name.rsplit("/", 1)
    _check(value.dtype.kind == "f", f"{path}: tensor {name} is not floating point")
    _check(bool(np.all(np.isfinite(value))), f"{path}: tensor {name} holds NaN or inf")
    params.setdefault(module, {})[p] = value.astype(np.float32)
  _check("token_embed" in params and "pos_embed" in params, f"{path}: missing embeddings")
  d = params["token_embed"].get("embeddings", np.zeros((0, 0))).shape
  _check(len(d) == 2 and d[0] == len(encoding), f"{path}: token embedding does not match the input encoding")
  for layer in range(num_layers):
    for m, shape in ((f"transformer/layer_{layer}/attn/query", (d[1], num_heads * key_size)),
                     (f"transformer/layer_{layer}/attn/key", (d[1], num_heads * key_size)),
                     (f"transformer/layer_{layer}/attn/value", (d[1], num_heads * key_size)),
                     (f"transformer/layer_{layer}/attn/linear", (num_heads * key_size, d[1]))):
      _check(m in params and params[m].get("w") is not None and params[m]["w"].shape == shape,
             f"{path}: {m} missing or with wrong shape")
    for m in (f"transformer/layer_{layer}/mlp/linear_1", f"transformer/layer_{layer}/mlp/linear_2"):
      _check(m in params and params[m].get("w") is not None and params[m]["w"].ndim == 2, f"{path}: {m} missing")
    _check(params[f"transformer/layer_{layer}/mlp/linear_1"]["w"].shape[0] == d[1]
           and params[f"transformer/layer_{layer}/mlp/linear_2"]["w"].shape[1] == d[1]
           and params[f"transformer/layer_{layer}/mlp/linear_1"]["w"].shape[1]
           == params[f"transformer/layer_{layer}/mlp/linear_2"]["w"].shape[0], f"{path}: MLP shapes disagree")
  _check(params["pos_embed"]["embeddings"].shape == (settings.max_seq_len + 1, d[1]),
         f"{path}: position embedding does not match max_seq_len")
  for ps in params.values():  # biases are zero in Tracr models; tolerate files without them
    if "w" in ps and "b" not in ps:
      ps["b"] = np.zeros(ps["w"].shape[1], np.float32)
  return CompiledModel(params=params, settings=settings, num_heads=num_heads, num_layers=num_layers,
                       key_size=key_size, residual_labels=list(meta.get("residual_labels", [])),
                       input_encoding=encoding, output_values=output_values,
                       output_dims=list(meta.get("output_dims", [])), categorical_output=categorical)
