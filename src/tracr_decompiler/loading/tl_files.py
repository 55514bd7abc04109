"""TransformerLens models as files: a safetensors state dict plus a settings JSON, read and written.

`load` reads any layout of loading/tl_layouts.py from a safetensors file, checking names, shapes and sizes
from the header before any tensor is read; the settings JSON beside it (`model.json` for
`model.safetensors`, as `save` writes it) says what the weights do not (loading/transformerlens.py's
`Reading`). `save` writes the legacy layout with a real `W_U` and the settings, loadable by TransformerLens 4
(`TransformerBridge.boot_native` + `convert_tl_checkpoint`, numerical outputs included: TransformerLens' own
tracr converter refuses those) and by TransformerLens 2/3.

Nothing here imports TransformerLens or unpickles anything. Pickled TracrBench/InterpBench models are
unpickled by their user, with the TransformerLens version that wrote them, and handed to us as a state dict.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from tracr_decompiler import files, limits
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.loading import model_io, tl_layouts, tracr_model, transformerlens
from tracr_decompiler.loading.model_io import ModelFileError

SETTINGS_FORMAT = "tracr-decompiler/transformerlens-settings"
SETTINGS_VERSION = 1
MAX_FILE_BYTES = model_io.MAX_FILE_BYTES
MAX_SETTINGS_BYTES = 4 << 20


def settings_path_for(path: str | os.PathLike) -> str:
  """model.safetensors -> model.json (where `save` puts the settings and `load` looks first)."""
  root, ext = os.path.splitext(str(path))
  return (root if ext == ".safetensors" else str(path)) + ".json"


def _token_list(x) -> bool:
  return isinstance(x, list) and all(map(model_io.is_token, x))


def reading_from_json(d, where: str) -> transformerlens.Reading:
  """Validates a settings document (as written by `save`; every key optional)."""
  def check(cond, why):
    if not cond:
      raise ModelFileError(f"{where}: {why}")
  check(isinstance(d, dict), "settings must be a JSON object")
  known = {"format", "format_version", "vocab", "bos", "pad", "input_encoding", "max_seq_len", "causal", "output",
           "output_values", "n_heads", "mlp_exactness", "transformerlens_config"}
  check(set(d) <= known, f"unknown settings keys {sorted(set(map(str, d)) - known)[:5]}; expected some of {sorted(known)}")
  check(d.get("format", SETTINGS_FORMAT) == SETTINGS_FORMAT, f"format must be {SETTINGS_FORMAT!r}")
  cfg = d.get("transformerlens_config", {})
  check(isinstance(cfg, dict), "transformerlens_config must be an object")
  r = transformerlens.reading_from_config(cfg)
  vocab = d.get("vocab")
  check(vocab is None or (_token_list(vocab) and 0 < len(vocab) <= limits.MAX_VOCAB
                          and len({(type(t) is str, t) for t in vocab}) == len(vocab)),
        f"vocab must be a list of 1..{limits.MAX_VOCAB} distinct numbers or short strings")
  for key in ("bos", "pad"):
    check(key not in d or model_io.is_token(d[key]), f"{key} must be a number or a short string")
  pairs = d.get("input_encoding")
  check(pairs is None or (isinstance(pairs, list) and len(pairs) <= limits.MAX_VOCAB + 2 and all(
      isinstance(p, list) and len(p) == 2 and model_io.is_token(p[0]) and model_io.is_int(p[1], 0, limits.MAX_VOCAB + 1)
      for p in pairs)), "input_encoding must be a list of [token, row] pairs")
  check(pairs is None or len({p[0] for p in pairs}) == len(pairs), "input_encoding lists a token twice")
  check(d.get("max_seq_len") is None or model_io.is_int(d["max_seq_len"], 1, limits.MAX_SEQ_LEN),
        f"max_seq_len must be an integer in 1..{limits.MAX_SEQ_LEN}")
  check(isinstance(d.get("causal", False), bool), "causal must be true or false")
  check(d.get("output") in (None, "categorical", "numerical"), "output must be 'categorical' or 'numerical'")
  values = d.get("output_values")
  check(values is None or (isinstance(values, list) and len(values) <= limits.MAX_RESIDUAL
                           and all(model_io.is_token(v) or isinstance(v, bool) for v in values)),
        "output_values must be a list of numbers, booleans or short strings")
  check(d.get("n_heads") is None or model_io.is_int(d["n_heads"], 1, limits.MAX_HEADS), "n_heads out of range")
  check(d.get("mlp_exactness") is None or model_io.is_int(d["mlp_exactness"], 1, 10 ** 6), "mlp_exactness out of range")
  given = transformerlens.Reading(vocab=tuple(vocab) if vocab else None, bos=d.get("bos"), pad=d.get("pad"),
                  input_encoding={p[0]: p[1] for p in pairs} if pairs is not None else None,
                  max_seq_len=d.get("max_seq_len"), causal=d.get("causal"), output_kind=d.get("output"),
                  output_values=tuple(values) if values is not None else None, n_heads=d.get("n_heads"),
                  mlp_exactness=d.get("mlp_exactness"))
  return r.merged(given)


def sniff_layout(path: str | os.PathLike) -> str | None:
  """"ours", "legacy", "bridge", "native" or None, from a safetensors file's header (no tensor is read)."""
  f, size = files.open_regular(path, MAX_FILE_BYTES, "model file")
  with f:
    header, metadata, _ = files.read_safetensors_header(f, size, path)
  if model_io.META_KEY in metadata:
    return "ours"
  return tl_layouts.layout_of(header)


def load(path: str | os.PathLike, settings_path: str | os.PathLike | None = None,
         overrides: transformerlens.Reading = transformerlens.Reading()) -> CompiledModel:
  """A TransformerLens state dict saved as safetensors, plus its settings JSON -> CompiledModel.

  settings_path: default `settings_path_for(path)` when that file exists.
  overrides: settings given as flags (they win over the JSON).
  Raises:
    ModelFileError: for a file that is not a Tracr model in TransformerLens layout.
  """
  where = str(path)
  reading = transformerlens.Reading()
  if settings_path is None and os.path.exists(settings_path_for(path)):
    settings_path = settings_path_for(path)
  if settings_path is not None:
    try:
      doc = files.read_json(settings_path, MAX_SETTINGS_BYTES, "settings JSON")
    except ModelFileError:
      raise
    except files.FileError as e:
      raise ModelFileError(str(e)) from None
    reading = reading_from_json(doc, str(settings_path))
  reading = reading.merged(overrides)
  try:
    f, size = files.open_regular(path, MAX_FILE_BYTES, "TransformerLens model")
  except files.FileError as e:
    raise ModelFileError(str(e)) from None
  with f:
    try:
      header, _, data_start = files.read_safetensors_header(f, size, path)
    except files.FileError as e:
      raise ModelFileError(str(e)) from None
    layout = tl_layouts.layout_of(header)
    if layout is None:
      raise ModelFileError(f"{where}: not a TransformerLens state dict (no "
                           f"{' or '.join('/'.join(e) for e in tl_layouts.EMBEDDINGS.values())})")
    floats = ("F16", "BF16", "F32", "F64")
    for name, entry in header.items():
      if entry["dtype"] not in floats and not tl_layouts.is_extra(layout, name):  # the mask is BOOL; never read
        raise ModelFileError(f"{where}: tensor {name[:80]} is {entry['dtype']}, not F16/BF16/F32/F64")
    sizes = tl_layouts.plan(layout, {k: tuple(e["shape"]) for k, e in header.items()}, reading.n_heads, where)
    tensors: dict[str, np.ndarray] = {}
    unembed: list[np.ndarray | None] = [None, None]  # W_U, b_U: read only when they are small float tensors
    for name, entry in header.items():
      if name in tl_layouts.UNEMBED[layout]:
        if entry["dtype"] in floats and math.prod(entry["shape"]) <= sizes["d_model"] * (limits.MAX_RESIDUAL + 2):
          unembed[tl_layouts.UNEMBED[layout].index(name)] = files.read_tensor(f, entry, data_start, path)
      elif not tl_layouts.is_extra(layout, name):
        tensors[name] = files.read_tensor(f, entry, data_start, path).astype(np.float32, copy=False)
  return transformerlens.assemble(layout, tensors, sizes, reading, transformerlens.unembed(layout, *unembed), where)


def to_state_dict(model) -> tuple[dict[str, np.ndarray], dict]:
  """A CompiledModel or tracr model -> (legacy TransformerLens state dict, HookedTransformerConfig dict).

  Unlike TransformerLens' demo, `unembed.W_U` is the real projection onto the
  output block ([d_model, output values]; one column for a numerical output),
  so the HookedTransformer's logits argmax to output-encoder indices.
  """
  m = model if isinstance(model, CompiledModel) else tracr_model.from_tracr(model)
  p, h, k = m.params, m.num_heads, m.key_size
  d = p["token_embed"]["embeddings"].shape[1]
  sd = {"embed.W_E": p["token_embed"]["embeddings"], "pos_embed.W_pos": p["pos_embed"]["embeddings"]}
  for layer in range(m.num_layers):
    a, b = f"transformer/layer_{layer}/attn", f"blocks.{layer}"
    for tl, tr in (("Q", "query"), ("K", "key"), ("V", "value")):
      sd[f"{b}.attn.W_{tl}"] = p[f"{a}/{tr}"]["w"].reshape(d, h, k).transpose(1, 0, 2)
      sd[f"{b}.attn.b_{tl}"] = p[f"{a}/{tr}"]["b"].reshape(h, k)
    sd[f"{b}.attn.W_O"] = p[f"{a}/linear"]["w"].reshape(h, k, d)
    sd[f"{b}.attn.b_O"] = p[f"{a}/linear"]["b"]
    mlp = f"transformer/layer_{layer}/mlp"
    sd[f"{b}.mlp.W_in"], sd[f"{b}.mlp.b_in"] = p[f"{mlp}/linear_1"]["w"], p[f"{mlp}/linear_1"]["b"]
    sd[f"{b}.mlp.W_out"], sd[f"{b}.mlp.b_out"] = p[f"{mlp}/linear_2"]["w"], p[f"{mlp}/linear_2"]["b"]
  w_u = np.zeros((d, len(m.output_dims)), np.float32)
  w_u[m.output_dims, np.arange(len(m.output_dims))] = 1
  sd["unembed.W_U"], sd["unembed.b_U"] = w_u, np.zeros(len(m.output_dims), np.float32)
  widths = {p[f"transformer/layer_{l}/mlp/linear_1"]["w"].shape[1] for l in range(m.num_layers)}
  if len(widths) != 1:
    raise ModelFileError(f"MLP widths differ between layers ({sorted(widths)}); TransformerLens has one d_mlp")
  cfg = {"n_layers": m.num_layers, "d_model": d, "d_head": k, "n_heads": h, "d_mlp": widths.pop(),
         "n_ctx": m.settings.max_seq_len + 1, "d_vocab": len(m.input_encoding), "d_vocab_out": len(m.output_dims),
         "act_fn": "relu", "attention_dir": "causal" if m.settings.causal else "bidirectional",
         "normalization_type": None}
  return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}, cfg


def settings_document(model) -> dict:
  """The settings JSON `load` reads back: everything the weights do not say, and the TransformerLens config."""
  m = model if isinstance(model, CompiledModel) else tracr_model.from_tracr(model)
  _, cfg = to_state_dict(m)
  s = m.settings
  return {"format": SETTINGS_FORMAT, "format_version": SETTINGS_VERSION, "vocab": list(s.vocab),
          "bos": s.compiler_bos, "pad": s.compiler_pad,
          "input_encoding": [[t, i] for t, i in sorted(m.input_encoding.items(), key=lambda kv: kv[1])],
          "max_seq_len": s.max_seq_len, "causal": s.causal,
          "output": "categorical" if m.categorical_output else "numerical",
          "output_values": list(m.output_values) if m.categorical_output else None,
          "n_heads": m.num_heads, "mlp_exactness": s.mlp_exactness, "transformerlens_config": cfg}


def save(model, path: str | os.PathLike, settings_path: str | os.PathLike | None = None) -> tuple[str, str]:
  """Writes the legacy TransformerLens state dict (safetensors) and its settings JSON, atomically.

  Load it in TransformerLens 4 with
    cfg = TransformerBridgeConfig(**settings["transformerlens_config"])
    bridge = TransformerBridge.boot_native(cfg)
    sd = {k: torch.tensor(v) for k, v in safetensors.numpy.load_file(path).items()}
    bridge.load_state_dict(convert_tl_checkpoint(sd, cfg), strict=True)
  (numerical outputs included), or in TransformerLens 2/3 with
    HookedTransformer(HookedTransformerConfig(**settings["transformerlens_config"])).load_state_dict(sd, strict=False).
  Returns (model path, settings path) as written.
  """
  from safetensors.numpy import save_file
  sd, _ = to_state_dict(model)
  doc = settings_document(model)
  if doc["output_values"] is None:
    del doc["output_values"]
  settings_path = settings_path or settings_path_for(path)
  written = files.atomic_write(path, lambda tmp: save_file(sd, tmp))
  return written, files.atomic_write_text(settings_path, json.dumps(doc, indent=1) + "\n")
