"""Weight identity up to permutation: the proof that a program is a model's source.

Two Tracr models compute the same function when their parameters agree after
renaming, and renaming permutes only whole residual blocks, heads and MLP
hidden units (a name moves its whole block; the order inside a block is by value). So both models are
brought into one canonical frame:

  residual dims  `one`, BOS, PAD, then every node's block in the canonical node
                 order of encoding/weights.py (which the weights alone
                 determine), then anything left over, in index order;
  heads          compared through their bilinear forms W_QK = W_Q W_K^T and
                 W_OV = W_V W_O in that frame (invariant to the order of the
                 head's own key/value columns), as a multiset per layer;
  MLP units      (input column, output row) pairs in that frame, as a multiset
                 per layer, each pair scaled so its input column's largest
                 entry is 1: a ReLU unit scaled by s > 0 on the way in and 1/s
                 on the way out computes the same (ReLU is positively
                 homogeneous), and so does the model. A negative scale is not
                 undone (it flips the column's sign pattern), nor is GeLU's.

Every parameter takes part; biases must be zero (they are in every Tracr
model). Anything the node reading gets wrong makes the frames differ, and the
answer is "not identical": this check can only err towards "no".
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.compiling import layout
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import evaluate

RTOL, ATOL = 1e-5, 1e-5


def _frame(model: CompiledModel) -> np.ndarray:
  """The canonical order of the residual dims."""
  ordered, _, special = weights._ordered_nodes(  # pylint: disable=protected-access
      model.params, model.input_encoding, model.settings, model.num_layers, model.num_heads, model.key_size)
  order: list[int] = [d for d in (special["one"], special["bos"], special["pad"]) if d is not None]
  for n in ordered:
    order += n.writes + n.reads.get("scratch", [])
  order = list(dict.fromkeys(order))  # first occurrence of each dim, in order
  seen = set(order)
  width = model.params[layout.TOKEN_EMBED][layout.EMBEDDINGS].shape[1]
  return np.array(order + [d for d in range(width) if d not in seen])


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
  """Rows in a canonical order (lexicographic on rounded values)."""
  if len(rows) == 0:
    return rows
  keys = np.round(rows, 4)
  return rows[np.lexsort(keys.T[::-1])]


def canonical(model: CompiledModel) -> dict[str, np.ndarray]:
  """The model's parameters in the canonical frame (see module doc), and where its output sits in it.

  Raises weights.NotTracrError (or KeyError/IndexError/ValueError) where the weights are not Tracr's.
  """
  # The frame comes from the weights as read (near-zero entries as zero); the values compared are the weights
  # as given, so any noise or rounding makes the models "not identical".
  p, perm = model.as_given.params, _frame(model)
  position = {int(d): i for i, d in enumerate(perm)}
  tokens = sorted(model.input_encoding, key=lambda t: (type(t).__name__, t))
  embed = lambda name: p[name][layout.EMBEDDINGS]
  out = {layout.TOKEN_EMBED: embed(layout.TOKEN_EMBED)[[model.input_encoding[t] for t in tokens]][:, perm],
         layout.POS_EMBED: embed(layout.POS_EMBED)[:, perm],
         # The same weights with a different SOp read out are a different model.
         "output": np.array([position[d] for d in model.output_dims], np.float64)}
  k = model.key_size
  for layer in range(model.num_layers):
    a, m = layout.attn(layer), layout.mlp(layer)
    heads = []
    for h in range(model.num_heads):
      cols = layout.head_columns(h, k)
      qk = p[f"{a}/query"]["w"][:, cols] @ p[f"{a}/key"]["w"][:, cols].T
      ov = p[f"{a}/value"]["w"][:, cols] @ p[f"{a}/linear"]["w"][cols]
      heads.append(np.concatenate([qk[perm][:, perm].ravel(), ov[perm][:, perm].ravel()]))
    out[f"{a}/heads"] = _sorted_rows(np.array(heads))
    w1, w2 = p[f"{m}/linear_1"]["w"], p[f"{m}/linear_2"]["w"]
    out[f"{m}/units"] = _sorted_rows(_unit_scaled(w1[perm].T, w2[:, perm]))
  return out


def _unit_scaled(ins: np.ndarray, outs: np.ndarray) -> np.ndarray:
  """Each hidden unit's (input column, output row), scaled by 1/s and s, s its input column's largest |entry|."""
  scale = np.abs(ins).max(axis=1, initial=0.0) if ins.size else np.zeros(len(ins))
  scale = np.where(scale > 0, scale, 1.0)[:, None]  # a unit that reads nothing is left as it is
  return np.concatenate([ins / scale, outs * scale], axis=1)


def _biases_zero(model: CompiledModel) -> bool:
  return all(not np.any(ps["b"]) for ps in model.params.values() if "b" in ps)


def same_weights(a: CompiledModel, b: CompiledModel, a_canonical: dict[str, np.ndarray] | None = None) -> bool:
  """Whether the two models' parameters are identical up to renaming (see module doc).

  a_canonical: `canonical(a)`, when the caller compares `a` with many models.
  """
  sa, sb = a.settings, b.settings
  if (sa.causal != sb.causal or sa.max_seq_len != sb.max_seq_len
      or {evaluate.value_key(t) for t in a.input_encoding} != {evaluate.value_key(t) for t in b.input_encoding}
      or a.categorical_output != b.categorical_output
      or [evaluate.value_key(v) for v in a.output_values] != [evaluate.value_key(v) for v in b.output_values]
      or (a.num_layers, a.num_heads) != (b.num_layers, b.num_heads)):
    return False
  if not (a.output_dims and _biases_zero(a.as_given) and _biases_zero(b.as_given)):
    return False
  try:
    ca = a_canonical if a_canonical is not None else canonical(a)
    cb = canonical(b)
  except (weights.NotTracrError, KeyError, IndexError, ValueError):
    return False
  return ca.keys() == cb.keys() and all(
      ca[k].shape == cb[k].shape and np.allclose(ca[k], cb[k], rtol=RTOL, atol=ATOL) for k in ca)
