"""Model files in and out: our safetensors format (tracr objects are read by tracr_model.py).

File format (written by `tracr-decompiler compile`): a safetensors file whose
tensors are tracr's parameters ("transformer/layer_0/attn/query/w", ...) and
whose metadata holds one JSON document under "tracr_decompiler":
    {"format_version": 1, "settings": {...}, "num_layers": .., "num_heads": ..,
     "key_size": .., "input_encoding": [[token, row], ...], "output_values": [...],
     "categorical_output": true, "output_dims": [...], "residual_labels": [...]}
Nothing in the file is executed. Loading checks the header and the metadata
first, derives every tensor's shape from the metadata (within LIMITS), and
reads tensors only when the file's claims agree with each other and with its
real size; so a hostile file costs at most its own size in memory. Bad files
raise ModelFileError with one line.
"""

from __future__ import annotations

import json
import math

import numpy as np

from tracr_decompiler import files, limits
from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel, CompileSettings
from tracr_decompiler.loading import frame
from tracr_decompiler.errors import FileError


FORMAT_VERSION = 1
META_KEY = "tracr_decompiler"
# Header (names, metadata) + float64 tensors at most: any larger file is refused before it is opened.
MAX_FILE_BYTES = 8 + files.MAX_HEADER_BYTES + 2 * limits.MAX_MODEL_BYTES
_SETTING_KEYS = {"vocab", "max_seq_len", "compiler_bos", "compiler_pad", "mlp_exactness", "causal"}


class ModelFileError(FileError):
  """A model file that is missing, special, truncated, foreign or malformed (also a ValueError)."""


def save_model(model: CompiledModel, path: str) -> str:
  """Writes `model` atomically (temp file + rename); returns the path written (symlinks resolved).

  Raises:
    FileError: `path` is a folder or a special file, or the write fails.
  """
  from safetensors.numpy import save_file
  tensors = {f"{m}/{p}": np.ascontiguousarray(v) for m, ps in model.params.items() for p, v in ps.items()}
  meta = {"format_version": FORMAT_VERSION, "settings": model.settings.to_json(), "num_layers": model.num_layers,
          "num_heads": model.num_heads, "key_size": model.key_size,
          "input_encoding": [[t, i] for t, i in model.input_encoding.items()],
          "output_values": model.output_values, "categorical_output": model.categorical_output,
          "output_dims": model.output_dims, "residual_labels": model.residual_labels}
  return files.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta)}))


def _check(cond: bool, message: str) -> None:
  if not cond:
    raise ModelFileError(message)


def is_int(x, lo: int, hi: int) -> bool:
  """A JSON integer (not a bool or a float such as 5.0 or 1e309) within [lo, hi]."""
  return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def is_token(x) -> bool:
  """A vocabulary token: an integer, a finite float or a short string (no lists, dicts, bools, null)."""
  if isinstance(x, bool):
    return False
  if isinstance(x, int):
    return abs(x) < 2 ** 53
  if isinstance(x, float):
    return math.isfinite(x)
  return isinstance(x, str) and 0 < len(x) <= limits.MAX_TOKEN_CHARS


def _value(x) -> bool:
  """An output value of a categorical SOp: a number (ints, bools and finite floats)."""
  return isinstance(x, (int, float)) and math.isfinite(x) and abs(x) < 2 ** 53


def _settings(path: str, d) -> None:
  _check(isinstance(d, dict), f"{path}: metadata 'settings' is not an object")
  _check(set(d) <= _SETTING_KEYS and {"vocab", "max_seq_len"} <= set(d),
         f"{path}: metadata 'settings' has keys {sorted(map(str, d))[:8]}, expected {sorted(_SETTING_KEYS)}")
  vocab = d["vocab"]
  _check(isinstance(vocab, list) and 0 < len(vocab) <= limits.MAX_VOCAB and all(map(is_token, vocab)),
         f"{path}: vocab must be a list of 1..{limits.MAX_VOCAB} numbers or short strings")
  _check(len({(type(t) is str, t) for t in vocab}) == len(vocab), f"{path}: vocab lists a token twice")
  _check(is_int(d["max_seq_len"], 1, limits.MAX_SEQ_LEN), f"{path}: max_seq_len must be an integer in 1..{limits.MAX_SEQ_LEN}")
  for key in ("compiler_bos", "compiler_pad"):
    _check(key not in d or (isinstance(d[key], str) and is_token(d[key])), f"{path}: {key} must be a short string")
  _check(is_int(d.get("mlp_exactness", 100), 1, 10 ** 6), f"{path}: mlp_exactness must be an integer in 1..1000000")
  _check(isinstance(d.get("causal", False), bool), f"{path}: causal must be true or false")
  specials = [d.get("compiler_bos", "compiler_bos"), d.get("compiler_pad", "compiler_pad")]
  _check(specials[0] != specials[1] and not set(specials) & set(vocab),
         f"{path}: compiler_bos and compiler_pad must differ from each other and from the vocab")


def _compile_settings(path: str, d: dict) -> CompileSettings:
  try:
    return CompileSettings.from_json(d)
  except (TypeError, ValueError) as e:
    raise ModelFileError(f"{path}: bad settings ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None


def _expected_shapes(meta: dict, d: int, hidden: dict[int, int]) -> dict[str, tuple[int, ...]]:
  """Every tensor's shape, from the metadata (d = residual width, hidden = MLP width per layer)."""
  hk = meta["num_heads"] * meta["key_size"]
  shapes: dict[str, tuple[int, ...]] = {f"{layout.TOKEN_EMBED}/{layout.EMBEDDINGS}": (len(meta["input_encoding"]), d),
            f"{layout.POS_EMBED}/{layout.EMBEDDINGS}": (meta["settings"]["max_seq_len"] + 1, d)}
  for layer in range(meta["num_layers"]):
    for name in ("query", "key", "value"):
      shapes[layout.attn(layer, f"{name}/w")], shapes[layout.attn(layer, f"{name}/b")] = (d, hk), (hk,)
    shapes[layout.attn(layer, "linear/w")], shapes[layout.attn(layer, "linear/b")] = (hk, d), (d,)
    m = hidden[layer]
    shapes[layout.mlp(layer, "linear_1/w")], shapes[layout.mlp(layer, "linear_1/b")] = (d, m), (m,)
    shapes[layout.mlp(layer, "linear_2/w")], shapes[layout.mlp(layer, "linear_2/b")] = (m, d), (d,)
  return shapes


def _metadata(path: str, metadata: dict) -> tuple[dict, dict]:
  """Checks the metadata document; returns (meta, input encoding)."""
  text = metadata.get(META_KEY)
  if text is None:
    raise ModelFileError(f"{path} is not a tracr-decompiler model file (no '{META_KEY}' metadata)")
  _check(len(text) <= limits.MAX_METADATA_BYTES, f"{path}: metadata is larger than {limits.MAX_METADATA_BYTES} bytes")
  try:
    meta = json.loads(text)
  except (ValueError, RecursionError):
    raise ModelFileError(f"{path}: metadata is not valid JSON") from None
  _check(isinstance(meta, dict), f"{path}: metadata is not a JSON object")
  _check(meta.get("format_version") == FORMAT_VERSION and type(meta.get("format_version")) is int,
         f"{path}: unknown format version {str(meta.get('format_version'))[:20]!r} (expected {FORMAT_VERSION})")
  missing = {"settings", "num_layers", "num_heads", "key_size", "input_encoding", "output_values",
             "categorical_output", "output_dims", "residual_labels"} - set(meta)
  _check(not missing, f"{path}: metadata lacks {sorted(missing)}")
  _settings(path, meta["settings"])
  vocab, max_seq_len = meta["settings"]["vocab"], meta["settings"]["max_seq_len"]
  _check(is_int(meta["num_layers"], 1, limits.MAX_LAYERS), f"{path}: num_layers must be an integer in 1..{limits.MAX_LAYERS}")
  _check(is_int(meta["num_heads"], 1, limits.MAX_HEADS), f"{path}: num_heads must be an integer in 1..{limits.MAX_HEADS}")
  _check(is_int(meta["key_size"], 1, limits.MAX_KEY_SIZE), f"{path}: key_size must be an integer in 1..{limits.MAX_KEY_SIZE}")
  _check(meta["num_heads"] * meta["key_size"] <= limits.MAX_RESIDUAL, f"{path}: num_heads * key_size is implausibly large")
  labels = meta["residual_labels"]
  _check(isinstance(labels, list) and 0 < len(labels) <= limits.MAX_RESIDUAL
         and all(isinstance(x, str) and len(x) <= 1000 for x in labels),
         f"{path}: residual_labels must be a list of 1..{limits.MAX_RESIDUAL} strings")
  d = len(labels)
  pairs = meta["input_encoding"]
  tokens = set(vocab) | {meta["settings"].get("compiler_bos", "compiler_bos"),
                         meta["settings"].get("compiler_pad", "compiler_pad")}
  _check(isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and is_token(p[0]) and is_int(p[1], 0, 10 ** 6)
                                         for p in pairs), f"{path}: input_encoding must be a list of [token, row] pairs")
  encoding = {t: i for t, i in pairs}
  _check(len(encoding) == len(pairs) == len(tokens) and set(encoding) == tokens
         and sorted(encoding.values()) == list(range(len(pairs))),
         f"{path}: input_encoding does not map the vocab, BOS and PAD to rows 0..{len(tokens) - 1}")
  _check(d >= len(pairs) + max_seq_len, f"{path}: residual_labels are fewer than the token and index dimensions")
  dims = meta["output_dims"]
  _check(isinstance(dims, list) and 0 < len(dims) and all(is_int(x, 0, d - 1) for x in dims) and len(set(dims)) == len(dims),
         f"{path}: output_dims must be distinct residual dimensions in 0..{d - 1}")
  categorical, values = meta["categorical_output"], meta["output_values"]
  _check(isinstance(categorical, bool), f"{path}: categorical_output must be true or false")
  _check(isinstance(values, list) and all(map(_value, values)), f"{path}: output_values must be a list of numbers")
  if categorical:
    _check(len(values) == len(dims), f"{path}: output_values has {len(values)} values for {len(dims)} output_dims")
  else:
    _check(not values and len(dims) == 1, f"{path}: a numerical output has one output dim and no output_values")
  return meta, encoding


def load_model(path: str) -> CompiledModel:
  """Reads a model file written by `save_model`, validating everything before loading tensors.

  Raises:
    ModelFileError: one line naming the file, for any file that is not a model we wrote.
  """
  try:
    f, size = files.open_regular(path, MAX_FILE_BYTES, "compiled Tracr model")
  except ModelFileError:
    raise
  except FileError as e:
    raise ModelFileError(str(e)) from None
  with f:
    try:
      header, metadata, data_start = files.read_safetensors_header(f, size, path)
    except FileError as e:
      raise ModelFileError(str(e)) from None
    meta, encoding = _metadata(path, metadata)
    d = len(meta["residual_labels"])
    hidden = {}
    for layer in range(meta["num_layers"]):
      entry = header.get(layout.mlp(layer, "linear_1/w"))
      if entry is None or len(entry["shape"]) != 2:
        raise ModelFileError(f"{path}: {layout.mlp(layer, 'linear_1/w')} missing")
      hidden[layer] = entry["shape"][1]
      _check(hidden[layer] <= limits.MAX_MLP_HIDDEN, f"{path}: MLP width {hidden[layer]} exceeds {limits.MAX_MLP_HIDDEN}")
    shapes = _expected_shapes(meta, d, hidden)
    for name, entry in header.items():
      _check(name in shapes, f"{path}: unexpected tensor {name[:80]!r} for a {meta['num_layers']}-layer model")
      _check(tuple(entry["shape"]) == shapes[name],
             f"{path}: tensor {name} has shape {tuple(entry['shape'])}, the metadata implies {shapes[name]}")
      _check(entry["dtype"] in ("F16", "F32", "F64"), f"{path}: tensor {name} is {entry['dtype']}, not floating point")
    absent = [n for n in shapes if n not in header and not n.endswith("/b")]  # biases are zero in Tracr models
    _check(not absent, f"{path}: missing tensors {absent[:3]}")
    _check(sum(4 * math.prod(s) for s in shapes.values()) <= limits.MAX_MODEL_BYTES,
           f"{path}: a model of these sizes exceeds {limits.MAX_MODEL_BYTES >> 20} MiB")
    params: dict[str, dict[str, np.ndarray]] = {}
    for name in sorted(header, key=lambda n: math.prod(shapes[n])):  # small ones (embeddings) first
      value = files.read_tensor(f, header[name], data_start, path).astype(np.float32, copy=False)
      _check(bool(np.isfinite(value).all()), f"{path}: tensor {name} holds NaN or inf")
      module, p = name.rsplit("/", 1)
      params.setdefault(module, {})[p] = value
  for name, shape in shapes.items():
    module, p = name.rsplit("/", 1)
    if p == "b" and p not in params[module]:
      params[module]["b"] = np.zeros(shape, np.float32)
  settings = _compile_settings(path, meta["settings"])
  # output_dims lists the output block in value order; the readers expect it (and tracr's other blocks) in dim
  # order: a file that orders them otherwise is moved into tracr's frame, computing the same function.
  return frame.to_tracr_frame(CompiledModel(
      params=params, settings=settings, num_heads=meta["num_heads"], num_layers=meta["num_layers"],
      key_size=meta["key_size"], residual_labels=list(meta["residual_labels"]), input_encoding=encoding,
      output_values=list(meta["output_values"]), output_dims=list(meta["output_dims"]),
      categorical_output=meta["categorical_output"]))
