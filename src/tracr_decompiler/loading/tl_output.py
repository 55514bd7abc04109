"""Which residual dims hold a TransformerLens model's output, and which dim is which output value.

The output block is found from the weights: the block one node writes and no layer reads (tracr compiles
only what the output uses), whose width is the number of output values (one dimension for a numerical
output). The unembedding W_U is evidence only where it is a real reader: one column per dim of such a
block, all of weight 1 (up to a common scale for a categorical output), zero bias. Then column j is output
value j, whatever the dims' order (loading/frame.py then moves them into tracr's order). TransformerLens'
Tracr demo sets `W_U = eye(d_model, d_vocab_out)`, which reads the first residual dimensions, not the
output's unless they happen to sort first: such a W_U is ignored and tracr's order (by value, so by dim)
stands in. A reader that weighs the output dims unevenly, or adds a bias, computes something no tracr
program does and is refused. The description returned says which block was used and which convention gave
its order.
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.encoding import weights
from tracr_decompiler.encoding.nodes import Node
from tracr_decompiler.loading.model_io import ModelFileError

ZERO = 1e-3  # relative to a matrix's largest entry: below it an entry counts as zero (fp16, small noise)


def output_block(params, encoding, settings, sizes: dict, output_values: tuple | None, output_kind: str | None,
                 unembed: np.ndarray | None, unembed_bias: np.ndarray | None,
                 where: str) -> tuple[list[int], bool, list, str]:
  """(dims in output-value order, categorical, values, description) of the output block.

  output_values / output_kind: what the encoders or settings say (None: not given).
  unembed: W_U as [d_model, d_out] (None: absent); unembed_bias: its bias.
  """
  try:
    graph = weights.encode_weights(params, encoding, settings, sizes["layers"], sizes["heads"], sizes["key_size"])
  except weights.NotTracrError as e:
    raise ModelFileError(f"{where}: not a Tracr-compiled model ({e})") from None
  read = {d for n in graph.nodes for role, dims in n.reads.items() if role != "scratch" for d in dims}
  unread = [n for n in graph.nodes if n.layer >= 0 and n.writes and not read & set(n.writes)]
  values = list(output_values) if output_values is not None else None
  kind = output_kind or ("categorical" if values else None)
  if kind == "numerical":
    fits = [n for n in unread if len(n.writes) == 1]
  elif values is not None:
    fits = [n for n in unread if len(n.writes) == len(values)]
  else:
    fits = unread
  if not fits:  # the node splitter can fail on odd MLPs: fall back to the dims no layer reads, as one block
    written = {d for n in graph.nodes if n.layer >= 0 for d in n.writes} | \
        {d for n in graph.nodes if n.kind == "selector_width" for d in n.reads.get("scratch", [])}
    loose = sorted(written - read)
    if loose and (len(loose) == 1 if kind == "numerical" else values is None or len(loose) == len(values)):
      fits = [Node("loose", max(n.layer for n in graph.nodes), loose)]
  if not fits:
    widths = sorted({len(n.writes) for n in unread})
    raise ModelFileError(f"{where}: no block that no layer reads fits the output "
                         f"({'numerical' if kind == 'numerical' else f'{len(values)} values' if values else 'any'}; "
                         f"unread blocks have widths {widths})")
  reader = _unembed_reader(unembed, unembed_bias, fits, where)
  node = reader[0] if reader else fits[-1]  # nodes are in layer order: else the deepest (tracr's output is last)
  # W_U that reads one block, one column per value, says which dim is which value; otherwise tracr's order
  # (sorted by value, so by dim) stands in.
  dims = reader[1] if reader else sorted(node.writes)
  categorical = kind == "categorical" or (kind is None and len(dims) > 1)
  if categorical and values is None:  # no output encoder: tracr's apply returns indices
    values = list(range(len(dims)))
  text = (f"residual dims {dims[0]}..{dims[-1]}" if len(dims) > 1 else f"residual dim {dims[0]}")
  what = f"categorical, {len(dims)} values" if categorical else "numerical"
  if node.kind == "loose":
    text += f" ({what}): the written dims no layer reads (the MLP could not be split into ops)"
  else:
    where_in = {"mlp": "MLP", "selector_width": "selector width"}.get(node.kind, f"head {node.head}")
    text += (f" written by layer {node.layer} {where_in} ({what}),"
             f" the {'only ' if len(fits) == 1 else 'deepest ' if not reader else ''}block no layer reads")
  if len(fits) > 1:
    text += f" ({len(fits)} fit)"
  if reader:
    text += "; W_U reads it, one column per value, and gives the values' order" if dims != sorted(dims) \
        else "; W_U reads the same dims"
  elif unembed is not None:
    used = [int(i) for i in np.flatnonzero(np.abs(unembed).sum(1))] if unembed.ndim == 2 else []
    text += (f"; W_U ignored (it reads dims {used[:3]}{'...' if len(used) > 3 else ''}, not one output block):"
             " values in tracr's order (by dim)")
  return dims, categorical, (values or [] if categorical else []), text


def _unembed_reader(unembed, bias, fits: list[Node], where: str) -> tuple[Node, list[int]] | None:
  """(node, its dims in W_U's column order) when W_U reads one fitting block, one column per dim; else None.

  Such a W_U is what the model's own library runs: its logits are that block, column j being output value j.
  It must then weigh every column alike (tracr's argmax, or the number itself for a numerical output);
  a reader that scales the columns unevenly computes something no tracr program does, and is refused.
  """
  if unembed is None or unembed.ndim != 2 or not unembed.size or not np.abs(unembed).max() > 0:
    return None
  big = np.abs(unembed) > ZERO * np.abs(unembed).max()
  if not (big.sum(0) == 1).all():
    return None
  dims = [int(np.flatnonzero(big[:, j])[0]) for j in range(unembed.shape[1])]
  node = next((n for n in fits if sorted(n.writes) == sorted(dims) and len(dims) == len(set(dims))), None)
  if node is None:
    return None
  weights = unembed[dims, np.arange(len(dims))]
  scale = 1.0 if len(dims) == 1 else float(weights.mean())  # a numerical output is the number itself
  if not (weights > 0).all() or np.abs(weights - scale).max() > ZERO * abs(scale):
    raise ModelFileError(f"{where}: W_U reads the output block with weights {np.round(weights[:4], 4).tolist()}"
                         f"{'...' if len(dims) > 4 else ''}; a tracr model's unembedding reads each output dim "
                         f"with weight 1")
  if bias is not None and np.size(bias) and np.abs(bias).max() > ZERO * abs(scale):
    raise ModelFileError(f"{where}: the unembedding's bias is not zero (largest {np.abs(bias).max():.3g}): it "
                         "shifts the output, which no tracr model does")
  return node, dims
