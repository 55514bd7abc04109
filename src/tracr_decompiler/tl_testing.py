"""TransformerLens state dicts of tracr models, built here by the documented layouts (loading/tl_layouts.py),
for tests and benchmarks that run without TransformerLens installed.

`demo_state_dict` is what TransformerLens' Tracr demo (and TracrBench) loads into a HookedTransformer, its
`W_U = eye(d_model, d_vocab_out)` included; `native_state_dict` the raw module names of TransformerLens 4's
tracr converter. The tests that matter for users also run the real library (loading/transformerlens4_test.py).
"""

import types

import numpy as np
import torch

from tracr_decompiler.encoding import weights


def demo_state_dict(model) -> dict:
  """What TransformerLens' Tracr demo loads into a HookedTransformer (einops rearranges spelled as reshapes)."""
  p, cfg = model.params, model.model_config
  h, k = cfg.num_heads, cfg.key_size
  v, d = np.asarray(p["token_embed"]["embeddings"]).shape
  sd = {"pos_embed.W_pos": p["pos_embed"]["embeddings"], "embed.W_E": p["token_embed"]["embeddings"],
        "unembed.W_U": np.eye(d, v - 2)}  # the demo's unembedding: right only if the output sorts first
  for l in range(cfg.num_layers):
    a = f"transformer/layer_{l}/attn"
    for name, module in (("Q", "query"), ("K", "key"), ("V", "value")):
      # "d_model (n_heads d_head) -> n_heads d_model d_head"
      sd[f"blocks.{l}.attn.W_{name}"] = np.asarray(p[f"{a}/{module}"]["w"]).reshape(d, h, k).transpose(1, 0, 2)
      sd[f"blocks.{l}.attn.b_{name}"] = np.asarray(p[f"{a}/{module}"]["b"]).reshape(h, k)
    sd[f"blocks.{l}.attn.W_O"] = np.asarray(p[f"{a}/linear"]["w"]).reshape(h, k, d)  # "(n_heads d_head) d_model"
    sd[f"blocks.{l}.attn.b_O"] = p[f"{a}/linear"]["b"]
    m = f"transformer/layer_{l}/mlp"
    sd[f"blocks.{l}.mlp.W_in"], sd[f"blocks.{l}.mlp.b_in"] = p[f"{m}/linear_1"]["w"], p[f"{m}/linear_1"]["b"]
    sd[f"blocks.{l}.mlp.W_out"], sd[f"blocks.{l}.mlp.b_out"] = p[f"{m}/linear_2"]["w"], p[f"{m}/linear_2"]["b"]
    n_ctx = np.asarray(p["pos_embed"]["embeddings"]).shape[0]
    sd[f"blocks.{l}.attn.mask"] = np.tril(np.ones((n_ctx, n_ctx)))  # TransformerLens' buffers come along too
    sd[f"blocks.{l}.attn.IGNORE"] = np.array(-1e5)
  # Contiguous, as a HookedTransformer's parameters are (torch.tensor keeps a transposed view's strides,
  # and safetensors.numpy would then write the memory, not the values).
  return {name: torch.tensor(np.ascontiguousarray(x, dtype=bool if name.endswith(".mask") else np.float32))
          for name, x in sd.items()}


def native_state_dict(model) -> dict:
  """The native names TransformerLens 4's own tracr converter returns: PyTorch Linear layout (out x in)."""
  p, cfg = model.params, model.model_config
  sd = {"tok_embed.weight": p["token_embed"]["embeddings"], "pos.weight": p["pos_embed"]["embeddings"]}
  for l in range(cfg.num_layers):
    for short, module in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "linear")):
      sd[f"layers.{l}.attn.{short}.weight"] = np.asarray(p[f"transformer/layer_{l}/attn/{module}"]["w"]).T
      sd[f"layers.{l}.attn.{short}.bias"] = p[f"transformer/layer_{l}/attn/{module}"]["b"]
    for short, module in (("fc_in", "linear_1"), ("fc_out", "linear_2")):
      sd[f"layers.{l}.mlp.{short}.weight"] = np.asarray(p[f"transformer/layer_{l}/mlp/{module}"]["w"]).T
      sd[f"layers.{l}.mlp.{short}.bias"] = p[f"transformer/layer_{l}/mlp/{module}"]["b"]
  return {name: torch.tensor(np.ascontiguousarray(x, dtype=np.float32)) for name, x in sd.items()}


class FakeHookedTransformer:
  """Duck-types what we read of a HookedTransformer: `state_dict()` and `cfg`."""

  def __init__(self, model):
    self._sd = demo_state_dict(model)
    c = model.model_config
    self.cfg = types.SimpleNamespace(n_layers=c.num_layers, n_heads=c.num_heads, d_head=c.key_size,
                                     n_ctx=self._sd["pos_embed.W_pos"].shape[0], act_fn="relu",
                                     attention_dir="causal" if c.causal else "bidirectional",
                                     normalization_type=None)

  def state_dict(self):
    return dict(self._sd)


def same_encoder_input(a, b) -> bool:
  ga, gb = weights.encode_model(a), weights.encode_model(b)
  return all(np.array_equal(getattr(ga, f), getattr(gb, f)) for f in ("features", "kinds", "layers", "relations",
                                                                       "is_output"))


def bridge_by_tl_converter(model, output_label: str):
  """A TransformerLens 4 bridge built by TransformerLens' own tracr converter; None for a numerical output,
  which that converter refuses (NotImplementedError)."""
  from transformer_lens.model_bridge import TransformerBridge
  from transformer_lens.utilities import tracr as tl_tracr
  if not hasattr(model.output_encoder, "encoding_map"):
    return None
  bridge = getattr(TransformerBridge, "boot_native")(tl_tracr.make_tracr_transformer_bridge_config(model))  # set at import
  # TransformerLens 4.3's converter writes the native `mlp.fc_in` names, which its own strict load reports
  # as missing under `mlp.in`: loaded non-strictly (tests check the bridge then runs like the tracr model).
  bridge.load_state_dict(tl_tracr.make_tracr_transformer_bridge_state_dict(model, output_label=output_label),
                         strict=False)
  return bridge


def bridge_by_our_export(model, folder):
  """docs/usage.md's TransformerLens 4 recipe on the files `compile --format transformerlens` writes."""
  import json
  from safetensors.torch import load_file
  from transformer_lens.config import TransformerBridgeConfig
  from transformer_lens.model_bridge import TransformerBridge
  from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

  from tracr_decompiler.loading import tl_files
  path, settings_path = tl_files.save(model, f"{folder}/export.safetensors")
  with open(settings_path) as f:
    cfg = TransformerBridgeConfig(**json.load(f)["transformerlens_config"])
  bridge = getattr(TransformerBridge, "boot_native")(cfg)  # attached at import: invisible to mypy
  bridge.load_state_dict(convert_tl_checkpoint(load_file(path), cfg), strict=True)
  return bridge


def same_model(a, b) -> bool:
  """Two CompiledModels read from one model the same way: settings, encodings, output block and every parameter
  equal (so `decompile`, which is deterministic, gives both the same answer)."""
  same_params = a.params.keys() == b.params.keys() and all(
      a.params[m].keys() == b.params[m].keys() and all(np.array_equal(a.params[m][p], b.params[m][p]) for p in a.params[m])
      for m in a.params)
  return same_params and (a.settings, a.input_encoding, a.output_values, a.output_dims, a.categorical_output) == (
      b.settings, b.input_encoding, b.output_values, b.output_dims, b.categorical_output)


def tl_forward(sd: dict, cfg: dict, ids: np.ndarray) -> np.ndarray:
  """Logits [N, T, d_out] of the legacy TransformerLens model a state dict describes, computed as TransformerLens
  computes it (float64): embeddings, per layer softmax attention scaled by 1/sqrt(d_head) (causal masking by
  cfg["attention_dir"]) then a ReLU MLP, both added to the residual stream, then W_U and b_U. Written apart from
  loading/ and compiling/forward.py: the oracle the decompiler's own reading is checked against."""
  x = sd["embed.W_E"][ids] + sd["pos_embed.W_pos"][: ids.shape[1]]
  t = ids.shape[1]
  for layer in range(cfg["n_layers"]):
    b = f"blocks.{layer}."
    q, k, v = (np.einsum("ntd,hdk->nthk", x, sd[b + f"attn.W_{n}"]) + sd[b + f"attn.b_{n}"] for n in "QKV")
    scores = np.einsum("nqhk,nshk->nhqs", q, k) / np.sqrt(q.shape[-1])
    if cfg["attention_dir"] == "causal":
      scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    pattern = scores / scores.sum(-1, keepdims=True)
    z = np.einsum("nhqs,nshk->nqhk", pattern, v)
    x = x + np.einsum("nqhk,hkd->nqd", z, sd[b + "attn.W_O"]) + sd[b + "attn.b_O"]
    hidden = np.maximum(x @ sd[b + "mlp.W_in"] + sd[b + "mlp.b_in"], 0)
    x = x + hidden @ sd[b + "mlp.W_out"] + sd[b + "mlp.b_out"]
  return x @ sd["unembed.W_U"] + sd["unembed.b_U"]


def tl_outputs(sd: dict, cfg: dict, model, inputs):
  """What the TransformerLens model outputs on an InputSet, decoded as tracr decodes (argmax -> the output
  encoder of the tracr `model` it came from; a numerical output is its one logit)."""
  from tracr_decompiler.compiling import outputs
  enc, out_enc = model.input_encoder, model.output_encoder
  categorical = out_enc is not None and hasattr(out_enc, "encoding_map")
  decoded, none = {}, {}
  for n in inputs.index:
    ids = np.array([[enc.encoding_map[enc.bos_token]] + [enc.encoding_map[x] for x in inputs.inputs[i]]
                    for i in inputs.index[n]])
    logits = tl_forward(sd, cfg, ids)[:, 1:]
    if categorical:
      decoded[n], none[n] = logits.argmax(-1), logits.max(-1) < outputs.EMPTY
    else:
      decoded[n] = logits[..., 0]
      none[n] = np.abs(decoded[n]) <= outputs.TOLERANCE
  table = [v for v, _ in sorted(out_enc.encoding_map.items(), key=lambda kv: kv[1])] if categorical else []
  return outputs.Outputs(categorical, table, decoded, none)
