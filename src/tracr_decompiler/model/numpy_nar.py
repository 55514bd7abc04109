"""The decompiler's NAR pass in NumPy: graph encoder and line heads, forward only, one model at a time.

`decompile` in its default mode needs only this pass, and importing torch alone
takes longer than all the rest of a CLI `decompile` (benchmarks/cli_startup.py).
So inference runs the trained weights here, from the same `model.safetensors`
(release.py), and torch is imported only to train or to decode autoregressively.

It mirrors model.py's GraphEncoder and LineHeads in eval mode (no dropout), name
for name of the state dict, computing in float32 as torch does on CPU;
numpy_nar_test.py pins the two to the same logits. Shapes as in model.py: S
nodes, D d_model, H heads, R relation types, A max arguments per line.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.model import release
from tracr_decompiler.model.config import NEG, RELATION_READS, ModelConfig

_EPS = 1e-5  # torch LayerNorm's default
# Numerical Recipes' erfc fit (fractional error < 1.2e-7 everywhere, below float32's resolution). NumPy has no
# erf, and math.erf element by element makes a Python float per activation: the garbage collector then
# paused a big process (evaluate) for 0.3-0.5 s now and then.
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
         -0.82215223, 0.17087277)


def _erf(x: np.ndarray) -> np.ndarray:
  z = np.abs(x.astype(np.float64))
  t = 1.0 / (1.0 + 0.5 * z)
  poly = np.zeros_like(z)
  for c in reversed(_ERFC[1:]):
    poly = t * (c + poly)
  erfc = t * np.exp(-z * z + _ERFC[0] + poly)
  return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def _gelu(x: np.ndarray) -> np.ndarray:
  """torch's default (exact) GELU: x * Phi(x)."""
  return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + _EPS) * w + b


def _softmax(x: np.ndarray) -> np.ndarray:
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  """The state-dict entries this pass reads (model.py's names) and their shapes under `cfg`."""
  d, f = cfg.d_model, cfg.d_ff
  shapes: dict[str, tuple[int, ...]] = {
      "encoder.proj.0.weight": (d, cfg.feature_dim), "encoder.proj.0.bias": (d,),
      "encoder.proj.2.weight": (d, d), "encoder.proj.2.bias": (d,),
      "encoder.kind.weight": (cfg.num_kinds, d), "encoder.layer.weight": (cfg.max_layers + 1, d),
      "encoder.output.weight": (2, d), "encoder.node_pos.weight": (cfg.max_nodes, d),
      "encoder.rel_bias.weight": (cfg.n_heads, cfg.num_relations),
      "encoder.norm.weight": (d,), "encoder.norm.bias": (d,),
      "heads.query.weight": (programs.MAX_ARGS * d, d), "heads.query.bias": (programs.MAX_ARGS * d,),
      "heads.key.weight": (d, d), "heads.key.bias": (d,),
      "heads.rel.weight": (programs.MAX_ARGS, cfg.num_relations)}
  for name, n in (("op", cfg.n_ops), ("enc", cfg.n_encodings), ("fn", cfg.n_fns)):
    shapes.update({f"heads.{name}.weight": (n, d), f"heads.{name}.bias": (n,)})
  for i in range(cfg.n_encoder_layers):
    p = f"encoder.blocks.layers.{i}"
    shapes.update({f"{p}.self_attn.in_proj_weight": (3 * d, d), f"{p}.self_attn.in_proj_bias": (3 * d,),
                   f"{p}.self_attn.out_proj.weight": (d, d), f"{p}.self_attn.out_proj.bias": (d,),
                   f"{p}.linear1.weight": (f, d), f"{p}.linear1.bias": (f,),
                   f"{p}.linear2.weight": (d, f), f"{p}.linear2.bias": (d,)})
    shapes.update({f"{p}.norm{j}.{w}": (d,) for j in (1, 2) for w in ("weight", "bias")})
  return shapes


class NarModel:
  """A trained decompiler's NAR pass (graph input mode): `logits(graph)` as Decompiler.nar gives them."""

  def __init__(self, cfg: ModelConfig, tensors: dict[str, np.ndarray], trained_on: dict | None = None):
    if cfg.input_mode != "graph":
      raise ValueError("the NumPy pass reads graph-mode decompilers only (flat mode: use the torch model)")
    wrong = [f"{k} {tensors[k].shape if k in tensors else 'missing'} (want {shape})"
             for k, shape in expected_shapes(cfg).items() if k not in tensors or tensors[k].shape != shape]
    if wrong:
      raise ValueError(f"the tensors do not fit the config: {wrong[0]}" + (f" and {len(wrong) - 1} more"
                                                                          if len(wrong) > 1 else ""))
    self.cfg = cfg
    self.trained_on = trained_on
    self._t = {k: tensors[k].astype(np.float32) for k in expected_shapes(cfg)}

  @classmethod
  def from_folder(cls, folder: str | pathlib.Path) -> "NarModel":
    folder = release.model_folder(folder)
    cfg, trained_on = release.read_config(folder)
    tensors = release.load_arrays(folder / "model.safetensors")
    try:
      return cls(cfg, tensors, trained_on)
    except ValueError as e:
      raise release.CheckpointError(f"{folder / 'model.safetensors'}: {e}") from None

  def _linear(self, name: str, x: np.ndarray, bias: bool = True) -> np.ndarray:
    y = x @ self._t[f"{name}.weight"].T
    return y + self._t[f"{name}.bias"] if bias else y

  def encode(self, graph: weights.WeightGraph) -> np.ndarray:
    """GraphEncoder.forward for one graph: node states [S, D]."""
    cfg, t = self.cfg, self._t
    s = len(graph.nodes)
    pos = np.minimum(np.arange(s), cfg.max_nodes - 1)
    layers = np.clip(graph.layers.astype(np.int64) + 1, 0, cfg.max_layers)  # batch.py's layer + 1
    x = self._linear("encoder.proj.2", _gelu(self._linear("encoder.proj.0", graph.features)))
    x = (x + t["encoder.kind.weight"][graph.kinds] + t["encoder.layer.weight"][layers]
         + t["encoder.output.weight"][graph.is_output.astype(np.int64)] + t["encoder.node_pos.weight"][pos])
    bias = self._linear("encoder.rel_bias", graph.relations, bias=False).transpose(2, 0, 1)  # [H, S, S]
    for i in range(cfg.n_encoder_layers):
      p = f"encoder.blocks.layers.{i}"
      x = x + self._attention(p + ".self_attn", _layer_norm(x, t[p + ".norm1.weight"], t[p + ".norm1.bias"]), bias)
      h = _layer_norm(x, t[p + ".norm2.weight"], t[p + ".norm2.bias"])
      x = x + self._linear(p + ".linear2", _gelu(self._linear(p + ".linear1", h)))
    return _layer_norm(x, t["encoder.norm.weight"], t["encoder.norm.bias"])

  def _attention(self, p: str, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """nn.MultiheadAttention (batch_first, packed in_proj) with an additive per-head bias [H, S, S]."""
    s, d = x.shape
    h = self.cfg.n_heads
    qkv = x @ self._t[p + ".in_proj_weight"].T + self._t[p + ".in_proj_bias"]  # [S, 3D]
    q, k, v = (qkv[:, j * d:(j + 1) * d].reshape(s, h, d // h).transpose(1, 0, 2) for j in range(3))  # [H, S, hd]
    a = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d // h) + bias) @ v  # [H, S, hd]
    return self._linear(p + ".out_proj", a.transpose(1, 0, 2).reshape(s, d))

  def logits(self, graph: weights.WeightGraph) -> dict[str, np.ndarray]:
    """LineHeads.forward on the encoded graph: op / enc / fn [1, S, n] and args [1, S, A, S]."""
    h = self.encode(graph)
    s, d = h.shape
    rel = graph.relations
    q = self._linear("heads.query", h).reshape(s, programs.MAX_ARGS, d)
    scores = np.einsum("ikd,jd->ikj", q, self._linear("heads.key", h)) / math.sqrt(d)  # [S, A, S]
    scores = scores + self._linear("heads.rel", rel, bias=False).transpose(0, 2, 1)
    allowed = np.tril(np.ones((s, s), bool), -1)  # arguments precede their line
    reads = rel[..., :RELATION_READS].sum(-1) > 0  # and are nodes the line reads (when the weights show any)
    allowed = np.where(reads.any(-1, keepdims=True), reads & allowed, allowed)
    scores = np.where(allowed[:, None, :], scores, np.float32(NEG))
    out = {k: self._linear(f"heads.{k}", h)[None] for k in ("op", "enc", "fn")}
    out["args"] = scores[None].astype(np.float32)
    return out
