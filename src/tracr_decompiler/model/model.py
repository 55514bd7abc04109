"""The decompiler: an encoder over compiled weights, two ways to decode programs.

Shapes: B batch, S nodes (graph mode) or line slots, T weight chunks (flat
mode), L target tokens, D d_model, R relation types, H attention heads.

Graph mode (default): one token per computation node (encoding/weights.py).
Nodes carry no positional identity from residual order; structure enters as a
learned attention bias per relation type (who reads whom, in which role), as
in Graphormer. Flat mode: the paper's baseline, all parameters flattened and
cut into chunks with positional embeddings.

Decoding:
  NAR  each node (graph mode) or learned line slot (flat mode) predicts its
       line's op, encoding, function and argument pointers at once;
  AR   a causal transformer decoder writes the line tokens one by one,
       cross-attending to the encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from tracr_decompiler.encoding import programs
from tracr_decompiler.model.config import NEG, RELATION_READS, ModelConfig


def _gelu(x: torch.Tensor) -> torch.Tensor:
  """GELU as a plain function, not the string "gelu": that keeps our layers off PyTorch's fast path.

  PyTorch's inference fast path for nn.TransformerEncoderLayer returns NaN for
  some rows when given a per-head float attention mask (our relation bias).
  Layers only take that path when their activation is the built-in relu/gelu,
  so this opts out per layer, without the process-wide
  `torch.backends.mha.set_fastpath_enabled(False)` a library must not flip.
  """
  return F.gelu(x)


class GraphEncoder(nn.Module):
  """Node features + relation-biased self-attention."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.cfg = cfg
    self.proj = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.d_model), nn.GELU(),
                              nn.Linear(cfg.d_model, cfg.d_model))
    self.kind = nn.Embedding(cfg.num_kinds, cfg.d_model)
    self.layer = nn.Embedding(cfg.max_layers + 1, cfg.d_model)
    self.output = nn.Embedding(2, cfg.d_model)
    self.node_pos = nn.Embedding(cfg.max_nodes, cfg.d_model)  # canonical node order (from weights, not names)
    self.rel_bias = nn.Linear(cfg.num_relations, cfg.n_heads, bias=False)
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout,
                                       activation=_gelu, batch_first=True, norm_first=True)
    self.blocks = nn.TransformerEncoder(layer, cfg.n_encoder_layers, enable_nested_tensor=False)
    self.norm = nn.LayerNorm(cfg.d_model)

  def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
    feats, mask = batch["features"], batch["node_mask"]  # [B, S, F], [B, S]
    b, s, _ = feats.shape
    pos = torch.arange(s, device=feats.device).clamp(max=self.cfg.max_nodes - 1)
    x = (self.proj(feats) + self.kind(batch["kinds"]) + self.layer(batch["layers"].clamp(0, self.cfg.max_layers))
         + self.output(batch["is_output"].long()) + self.node_pos(pos)[None])
    bias = self.rel_bias(batch["relations"]).permute(0, 3, 1, 2)  # [B, H, S, S]
    bias = bias.masked_fill(~mask[:, None, None, :], NEG)
    x = self.blocks(x, mask=bias.reshape(b * self.cfg.n_heads, s, s))
    return self.norm(x), mask


class FlatEncoder(nn.Module):
  """The baseline: flattened parameters in fixed-size chunks."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.proj = nn.Linear(cfg.flat_chunk, cfg.d_model)
    self.pos = nn.Embedding(cfg.flat_max_tokens, cfg.d_model)
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout,
                                       activation=_gelu, batch_first=True, norm_first=True)
    self.blocks = nn.TransformerEncoder(layer, cfg.n_encoder_layers, enable_nested_tensor=False)
    self.norm = nn.LayerNorm(cfg.d_model)

  def forward(self, batch):
    x, mask = batch["flat"], batch["flat_mask"]  # [B, T, chunk], [B, T]
    x = self.proj(x) + self.pos(torch.arange(x.shape[1], device=x.device))[None]
    x = self.blocks(x, src_key_padding_mask=~mask)
    return self.norm(x), mask


class LineHeads(nn.Module):
  """Per-line classifiers and argument pointers (non-autoregressive)."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    d = cfg.d_model
    self.op, self.enc, self.fn = nn.Linear(d, cfg.n_ops), nn.Linear(d, cfg.n_encodings), nn.Linear(d, cfg.n_fns)
    self.query = nn.Linear(d, programs.MAX_ARGS * d)
    self.key = nn.Linear(d, d)
    self.rel = nn.Linear(cfg.num_relations, programs.MAX_ARGS, bias=False)

  def forward(self, h, relations=None):
    b, s, d = h.shape
    q = self.query(h).view(b, s, programs.MAX_ARGS, d)
    scores = torch.einsum("bikd,bjd->bikj", q, self.key(h)) / math.sqrt(d)  # [B, S, A, S]
    if relations is not None:
      scores = scores + self.rel(relations).permute(0, 1, 3, 2)  # [B, S, S, A] -> [B, S, A, S]
    allowed = torch.ones(s, s, dtype=torch.bool, device=h.device).tril(-1)[None]  # args precede their line
    if relations is not None:  # and are nodes the line reads (when the weights show any)
      reads = relations[..., :RELATION_READS].sum(-1) > 0  # [B, S, S]
      allowed = torch.where(reads.any(-1, keepdim=True), reads & allowed, allowed)
    scores = scores.masked_fill(~allowed[:, :, None, :], NEG)
    return {"op": self.op(h), "enc": self.enc(h), "fn": self.fn(h), "args": scores}


@dataclasses.dataclass
class ARCache:
  """Incremental AR decoding state (Decompiler.ar_start / ar_step), inference only (dropout off).

  cross: per decoder layer, the memory's cross-attention keys and values [1, H, S, hd];
  memory_bias: 0 / -inf over memory positions [1, 1, 1, S];
  self_kv: per layer, the self-attention keys and values of the decoded prefix [N, H, t, hd];
  length: t, the positions decoded so far.
  """
  cross: list[tuple[torch.Tensor, torch.Tensor]]
  memory_bias: torch.Tensor
  self_kv: list[tuple[torch.Tensor, torch.Tensor] | None]
  length: int = 0


class Decompiler(nn.Module):

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.cfg = cfg
    # What the weights were trained on (config.json "trained_on": feature version and the
    # generator's settings); decompile() warns when a model lies outside it. None: unknown.
    self.trained_on: dict | None = None
    self.encoder = GraphEncoder(cfg) if cfg.input_mode == "graph" else FlatEncoder(cfg)
    dec_layer = nn.TransformerDecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout,
                                           activation=_gelu, batch_first=True, norm_first=True)
    self.decoder = nn.TransformerDecoder(dec_layer, cfg.n_decoder_layers)
    self.tok = nn.Embedding(cfg.ar_vocab, cfg.d_model)
    self.tok_pos = nn.Embedding(cfg.max_target_len + 1, cfg.d_model)
    self.lm_head = nn.Linear(cfg.d_model, cfg.ar_vocab)
    self.slots = nn.Embedding(cfg.max_nodes, cfg.d_model)  # flat mode's NAR line queries
    self.heads = LineHeads(cfg)

  def encode(self, batch):
    return self.encoder(batch)

  def nar(self, memory, mask, batch) -> dict[str, torch.Tensor]:
    """Per-line logits for S lines: graph nodes, or flat mode's learned slots."""
    if self.cfg.input_mode == "graph":
      return self.heads(memory, batch["relations"])
    s = batch["op"].shape[1] if "op" in batch else self.cfg.max_nodes
    slots = self.slots(torch.arange(s, device=memory.device))[None].expand(memory.shape[0], -1, -1)
    h = self.decoder(slots, memory, memory_key_padding_mask=~mask)
    return self.heads(h)

  def ar_logits(self, memory, mask, tokens):
    """Next-token logits for decoder input `tokens` [B, L] (BOS first)."""
    l = tokens.shape[1]
    x = self.tok(tokens) + self.tok_pos(torch.arange(l, device=tokens.device))[None]
    causal = torch.triu(torch.full((l, l), float("-inf"), device=tokens.device), 1)
    h = self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=~mask)
    return self.lm_head(h)

  def ar_start(self, memory, mask) -> ARCache:
    """A key/value cache for incremental AR decoding over one encoded input (memory [1, S, D])."""
    cross = []
    for layer in self.decoder.layers:
      attn = layer.multihead_attn
      d, h = attn.embed_dim, attn.num_heads
      kv = F.linear(memory, attn.in_proj_weight[d:], attn.in_proj_bias[d:])  # [1, S, 2D]
      k, v = kv.view(memory.shape[0], memory.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # [1, H, S, hd] each
      cross.append((k, v))
    pad = torch.zeros(mask.shape, dtype=memory.dtype, device=memory.device).masked_fill(~mask, float("-inf"))
    return ARCache(cross=cross, memory_bias=pad[:, None, None, :], self_kv=[None] * len(cross))

  def ar_step(self, cache: ARCache, tokens: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """Next-token logits [N, V] after appending `tokens` [N] to the prefixes cache rows `parents` [N] hold.

    Equals `ar_logits(memory, mask, prefix + token)[:, -1]` for each row's full prefix: the
    same layer parameters, with the earlier positions' self-attention keys/values reused
    and the memory's cross-attention keys/values computed once (in `ar_start`).
    """
    pos = cache.length
    x = self.tok(tokens) + self.tok_pos.weight[pos]  # [N, D]
    x = x[:, None]  # [N, 1, D]
    n = x.shape[0]
    for i, layer in enumerate(self.decoder.layers):
      sa = layer.self_attn
      d, h = sa.embed_dim, sa.num_heads
      qkv = F.linear(layer.norm1(x), sa.in_proj_weight, sa.in_proj_bias).view(n, 1, 3, h, d // h)
      q, k, v = qkv.permute(2, 0, 3, 1, 4)  # [N, H, 1, hd] each
      past = cache.self_kv[i]
      if past is not None:
        k = torch.cat([past[0].index_select(0, parents), k], 2)
        v = torch.cat([past[1].index_select(0, parents), v], 2)
      cache.self_kv[i] = (k, v)
      a = F.scaled_dot_product_attention(q, k, v)  # the prefix only: causal by construction
      x = x + sa.out_proj(a.transpose(1, 2).reshape(n, 1, d))
      ca = layer.multihead_attn
      q = F.linear(layer.norm2(x), ca.in_proj_weight[:d], ca.in_proj_bias[:d]).view(n, 1, h, d // h).transpose(1, 2)
      ck, cv = cache.cross[i]
      a = F.scaled_dot_product_attention(q, ck.expand(n, -1, -1, -1), cv.expand(n, -1, -1, -1),
                                         attn_mask=cache.memory_bias.expand(n, -1, -1, -1))
      x = x + ca.out_proj(a.transpose(1, 2).reshape(n, 1, d))
      x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
    if self.decoder.norm is not None:
      x = self.decoder.norm(x)
    cache.length = pos + 1
    return self.lm_head(x[:, 0])

  def forward(self, batch, mode: str = "both") -> dict[str, torch.Tensor]:
    """Losses for a training batch; mode "nar", "ar" or "both"."""
    memory, mask = self.encode(batch)
    out = {}
    if mode in ("nar", "both"):
      logits = self.nar(memory, mask, batch)
      loss = sum(F.cross_entropy(logits[k].flatten(0, -2).float(), batch[k].flatten(), ignore_index=programs.IGNORE)
                 for k in ("op", "enc", "fn"))
      loss = loss + F.cross_entropy(logits["args"].flatten(0, -2).float(), batch["args"].flatten(),
                                    ignore_index=programs.IGNORE)
      out["nar_loss"] = loss
    if mode in ("ar", "both"):
      logits = self.ar_logits(memory, mask, batch["ar_in"])
      out["ar_loss"] = F.cross_entropy(logits.flatten(0, 1).float(), batch["ar_out"].flatten(),
                                       ignore_index=programs.PAD)
    out["loss"] = functools.reduce(operator.add, out.values())  # a tensor: mode names at least one loss
    return out
