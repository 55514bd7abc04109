"""tracr's parameter layout, named once (as tracr's own nodes.py names graph attributes).

An assembled tracr model's parameters are a dict of modules, each {"w", "b"}:
    token_embed/embeddings        [|vocab| + 2, D]   (BOS and PAD rows included)
    pos_embed/embeddings          [max_seq_len + 1, D]
    transformer/layer_{l}/attn/{query,key,value}   w [D, H * K]
    transformer/layer_{l}/attn/linear              w [H * K, D]
    transformer/layer_{l}/mlp/linear_1             w [D, M]
    transformer/layer_{l}/mlp/linear_2             w [M, D]
Every layer is attention then MLP; head h owns columns h*K .. (h+1)*K - 1.
Everything in the project that reads or writes parameters spells the names
through these helpers.
"""

from __future__ import annotations

import re
from typing import Literal

TOKEN_EMBED = "token_embed"
POS_EMBED = "pos_embed"
EMBEDDINGS = "embeddings"  # the one parameter of each embedding module
ATTN_PARTS = ("query", "key", "value", "linear")
MLP_PARTS = ("linear_1", "linear_2")

_MODULE = re.compile(r"^transformer/layer_(\d+)/(attn|mlp)/")

Sublayer = Literal["attn", "mlp", "embed"]


def attn(layer: int, part: str = "") -> str:
  """`transformer/layer_{layer}/attn[/part]`."""
  return f"transformer/layer_{layer}/attn" + (f"/{part}" if part else "")


def mlp(layer: int, part: str = "") -> str:
  """`transformer/layer_{layer}/mlp[/part]`."""
  return f"transformer/layer_{layer}/mlp" + (f"/{part}" if part else "")


def head_columns(head: int, key_size: int) -> slice:
  """Columns of the query/key/value weights (rows of attn/linear) that belong to one head."""
  return slice(head * key_size, (head + 1) * key_size)


def layer_of(name: str) -> int | None:
  """The layer of a module or parameter name; None for the embeddings."""
  m = _MODULE.match(name + "/")
  return int(m.group(1)) if m else None


def sublayer_of(name: str) -> Sublayer:
  m = _MODULE.match(name + "/")
  return "embed" if m is None else ("attn" if m.group(2) == "attn" else "mlp")


def layers_in(params) -> list[int]:
  """The layer numbers present in a parameter dict, ascending."""
  return sorted({layer for name in params if (layer := layer_of(name)) is not None})
