"""`decompile --report`: one HTML page showing what was read from the weights and how sure we are.

The page shows the decompiled program as a computation graph laid out by
layer (one column per attention or MLP sublayer), each line drawn at the
weight node it was matched to, with its source line, op kind, encoding and
confidence; per node, heatmaps of its own weights in local coordinates (the
QK and OV circuits of a head, the function table of an MLP, value labels on
the axes); and the verification status, with the first input where model and
program differ.

Lines are matched to weight nodes by structure (encoding/weights.py finds the
nodes): a line matches an unclaimed node of its op's kind whose inputs, role
by role, are the nodes its arguments matched. A line that matches nothing is
drawn in a last column, "not found in the weights" (its program differs from
the model there). Confidence is the decoder's per-node probability, shown at
the node it belongs to.
"""

from __future__ import annotations

import os

import numpy as np

from tracr_decompiler import files
from tracr_decompiler.compiling import forward
from tracr_decompiler.decompiling import circuit
from tracr_decompiler.loading import reading
from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import nodes as nodes_lib, weights
from tracr_decompiler.program import evaluate, ir, source
from tracr_decompiler.visual import page
from tracr_decompiler.visual.page import esc

_ROLE_COLOUR = {"query": "#2b6cb0", "key": "#dd6b20", "value": "#2f855a", "mlp": "#4a5568"}
BOX_W, BOX_H, COL_W, ROW_H = 204, 58, 240, 76


def _labels(compiled: CompiledModel, graph, special, j: int) -> list[str]:
  """Value labels of node j's block, from what is known (tokens, indices, residual labels, the output); text
  that is not UTF-8 (a lone surrogate read from JSON) as its escape, so the picture can be drawn."""
  return [x.encode("utf-8", "backslashreplace").decode("utf-8") for x in _raw_labels(compiled, graph, special, j)]


def _raw_labels(compiled: CompiledModel, graph, special, j: int) -> list[str]:
  n = graph.nodes[j]
  if n.kind == "tokens":
    return [str(t) for t in special["token_values"]]
  if n.kind == "indices":
    return [str(i) for i in range(len(n.writes))]
  if compiled.residual_labels:
    return [compiled.residual_labels[d].split(":", 1)[-1] for d in n.writes]
  if sorted(n.writes) == sorted(compiled.output_dims) and compiled.categorical_output:
    return [str(v) for v in compiled.output_values]
  if len(n.writes) == 1:
    return ["value"]
  return [f"#{i}" for i in range(len(n.writes))]  # intermediate values are not in the weights; their order is


def _node_heatmaps(compiled: CompiledModel, graph, special, j: int) -> list[str]:
  """Heatmaps of node j's own weights: QK and OV circuits of a head, the MLP's function table."""
  n, p, k = graph.nodes[j], compiled.params, compiled.key_size
  prefix = f"transformer/layer_{n.layer}"
  out, cap = [], weights.MAX_BLOCK
  role_node = lambda role: (n.inputs.get(role) or [None])[0]
  if n.head is not None:
    cols = slice(n.head * k, (n.head + 1) * k)
    wq, wk, wv = (np.asarray(p[f"{prefix}/attn/{m}"]["w"])[:, cols] for m in ("query", "key", "value"))
    wo = np.asarray(p[f"{prefix}/attn/linear"]["w"])[cols]
    q, kk, v = role_node("query"), role_node("key"), role_node("value")
    if q is not None and kk is not None:
      q_dims, k_dims = graph.nodes[q].writes[:cap], graph.nodes[kk].writes[:cap] + [special["bos"]]
      qk = (wq @ wk.T)[np.ix_(q_dims, k_dims)]
      out.append(page.heatmap(qk, _labels(compiled, graph, special, q)[:cap],
                              _labels(compiled, graph, special, kk)[:cap] + ["BOS"],
                              f"QK circuit (head {n.head}): attention score", f"query value",
                              "key value"))
    if v is not None:
      v_dims = graph.nodes[v].writes[:cap]
      o_dims = (n.reads.get("scratch") if n.kind == "selector_width" else n.writes)[:cap]
      o_labels = (["scratch"] * len(o_dims) if n.kind == "selector_width"
                  else _labels(compiled, graph, special, j)[:cap])
      out.append(page.heatmap((wv @ wo)[np.ix_(v_dims, o_dims)], _labels(compiled, graph, special, v)[:cap],
                              o_labels, f"OV circuit (head {n.head}): what is copied", "value read", "value written"))
  if n.kind == "mlp" and n.units:
    out.append(_mlp_table(compiled, graph, special, j))
  return out


def _mlp_table(compiled: CompiledModel, graph, special, j: int) -> str:
  """The MLP's function table: its output for each input value (probed as encoding/weights.py does)."""
  n, p, cap = graph.nodes[j], compiled.params, weights.MAX_BLOCK
  prefix = f"transformer/layer_{n.layer}/mlp"
  w1 = np.asarray(p[f"{prefix}/linear_1"]["w"])[:, n.units]
  w2 = np.asarray(p[f"{prefix}/linear_2"]["w"])[n.units][:, n.writes[:cap]]
  one = [special["one"]] if special["one"] is not None else []
  ins = n.inputs.get("mlp", [])
  probe = lambda i: weights._probes(w1, graph.nodes[i].writes if i is not None else [], one)  # pylint: disable=protected-access

  def axis(i, pts):
    if i is None:
      return [""]
    return [f"{x:.3g}" for x in pts] if len(pts) else _labels(compiled, graph, special, i)[:cap]
  first, second = (ins + [None, None])[:2]
  (xs, px), (ys, py) = probe(first), probe(second)
  bias = np.zeros(w1.shape[0], np.float32)
  if one:
    bias[one[0]] = 1.0
  table = np.maximum((xs[:, None] + ys[None] + bias) @ w1, 0) @ w2  # [X, Y, out]
  out_labels = _labels(compiled, graph, special, j)[:cap]
  rows = axis(first, px)
  if second is None:
    return page.heatmap(table[:, 0, :], rows, out_labels, "MLP function table", "input value", "output")
  # Two inputs: each cell is the output value (categorical: the largest output dimension).
  if table.shape[-1] == 1:
    return page.heatmap(table[..., 0], rows, axis(second, py), "MLP function table (output value)",
                        "first input", "second input")
  best = table.argmax(-1)
  text = [[out_labels[b] if table[i, jj, b] > 0.5 else "" for jj, b in enumerate(r)] for i, r in enumerate(best)]
  return page.heatmap(np.where(table.max(-1) > 0.5, best, np.nan), rows, axis(second, py),
                      "MLP function table (output value)", "first input", "second input", text)


def _columns(program: ir.Program, graph, at: dict[str, int]) -> tuple[list[tuple], dict[str, tuple[int, int]]]:
  """Graph columns (layer, sublayer name) in order, and each name's (column, row)."""
  keys = {}
  for name in [*ir.INPUTS, *(l.out for l in program.lines)]:
    if name in ir.INPUTS:
      keys[name] = (-1, 0)
    elif name in at:
      n = graph.nodes[at[name]]
      keys[name] = (n.layer, 0 if n.head is not None else 1)
    else:
      keys[name] = (10 ** 6, 0)  # not found in the weights
  order = sorted(set(keys.values()))
  place: dict[str, tuple[int, int]] = {}
  rows: dict[int, int] = {}
  for name, key in keys.items():
    c = order.index(key)
    place[name] = (c, rows.get(c, 0))
    rows[c] = rows.get(c, 0) + 1
  return order, place


def _svg(program: ir.Program, graph, at, confidence) -> str:
  columns, place = _columns(program, graph, at)
  height = 44 + ROW_H * max(r for _, r in place.values()) + BOX_H + 16
  width = 16 + COL_W * len(columns)
  xy = lambda name: (12 + COL_W * place[name][0], 40 + ROW_H * place[name][1])
  parts = [f'<svg width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="computation graph">']
  for c, (layer, sub) in enumerate(columns):
    title = ("embeddings" if layer < 0 else "not found in the weights" if layer >= 10 ** 6
             else f"layer {layer} · {'attention' if sub == 0 else 'MLP'}")
    parts.append(f'<text x="{12 + COL_W * c}" y="22" font-size="12" font-weight="600" fill="#2d3748">{esc(title)}</text>')
  lines = program.by_name()
  for line in program.lines:  # edges first, under the boxes
    roles = circuit.ROLES_OF_OP.get(line.op, ("mlp",) * len(line.args))
    x1, y1 = xy(line.out)
    for k, (role, arg) in enumerate(zip(roles, line.args)):
      x0, y0 = xy(arg)
      sx, sy, ty = x0 + BOX_W, y0 + BOX_H / 2, y1 + 14 + 12 * k
      mid = (sx + x1) / 2
      parts.append(f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ty} {x1},{ty}" fill="none" '
                   f'stroke="{_ROLE_COLOUR[role]}" stroke-width="1.4" opacity="0.85"><title>{esc(arg)} → '
                   f'{esc(line.out)} ({role})</title></path>')
  for name in ir.INPUTS:
    x, y = xy(name)
    parts.append(f'<g class="input" data-name="{name}"><rect class="input-box" x="{x}" y="{y}" width="{BOX_W}" '
                 f'height="{BOX_H}" rx="6"/><text x="{x + 10}" y="{y + 24}" font-size="13" font-weight="600">'
                 f'{name}</text><text x="{x + 10}" y="{y + 42}" font-size="11" fill="#5b6474">input</text></g>')
  for line in program.lines:
    x, y = xy(line.out)
    j = at.get(line.out)
    conf = confidence.get(line.out)
    cls = "node-box" + (" out" if line is program.output else "") + ("" if j is not None else " lost")
    where = "" if j is None else (f"head {graph.nodes[j].head}" if graph.nodes[j].head is not None else "MLP")
    if j is not None and graph.nodes[j].kind == "selector_width":
      where = f"head {graph.nodes[j].head} + MLP"
    parts.append(
        f'<a class="node" href="#node-{esc(line.out)}"><g class="node" data-line="{esc(line.out)}">'
        f'<title>{esc(source.line_to_source(line))}</title>'
        f'<rect class="{cls}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        f'<text x="{x + 10}" y="{y + 17}" font-size="12.5" font-weight="600">{esc(line.out)} = {esc(line.op)}</text>'
        f'<text x="{x + 10}" y="{y + 33}" font-size="11">{esc(line.encoding)} · {esc(line.fn)}</text>'
        f'<text x="{x + 10}" y="{y + 49}" font-size="10.5" fill="#5b6474">'
        f'{esc(where or "unmatched")}{" · conf " + format(conf, ".2f") if conf is not None else ""}</text></g></a>')
  parts.append("</svg>")
  return "\n".join(parts)


def _verification(result, compiled: CompiledModel) -> str:
  check = result.check
  rows = [f"<p>{page.badge(result.status)} {esc(result.verification)}</p>"]
  if result.output_block:
    rows.append(f'<p class="muted">Output block: {esc(result.output_block)}</p>')
  first = check.comparison.first if check is not None else None
  if first is not None:
    inp, pos, want, got = first
    try:
      model_row = forward.run(compiled, [tuple(inp)])[0]
    except (ValueError, KeyError, IndexError):
      model_row = None
    try:
      program_row = evaluate.evaluate(result.program, [tuple(inp)], causal=compiled.settings.causal)[0]
    except (evaluate.EvaluationError, TypeError, ValueError):
      program_row = None
    rows.append("<h3>First input where the model and the program differ</h3><table>"
                f"<tr><th>input</th><td><code>{esc(list(inp))}</code></td></tr>"
                f"<tr><th>position</th><td>{pos}</td></tr>"
                f"<tr><th>model</th><td><code>{esc(want)}</code> (whole output: <code>{esc(model_row)}</code>)</td></tr>"
                f"<tr><th>program</th><td><code>{esc(got)}</code> (whole output: <code>{esc(program_row)}</code>)"
                f"</td></tr></table>")
  return "\n".join(rows)


def _circuit(c: circuit.Circuit | None) -> list[str]:
  """The circuit as TransformerLens components (what `decompile --circuit` writes), one edge per row."""
  if c is None:
    return []
  rows = "".join(f"<tr><td><code>{esc(c.auto_circuit(e))}</code></td><td>{esc(', '.join(e.carries))}</td>"
                 f"<td><code>{esc(' -> '.join(c.tl_hook(e)))}</code></td></tr>" for e in c.edges)
  sops = "; ".join(f"{esc(x.name)}: {esc(', '.join(x.sops))}" for x in c.components if x.layer >= 0 and x.sops)
  exact = "exact (the program is proved)" if c.exact else "as the program implies it (not proved)"
  return ["<h2>Circuit</h2>",
          f'<p class="muted">{len(c.edges)} edges, {exact}. Components: {sops}.</p>',
          f"<table><tr><th>edge</th><th>carries</th><th>TransformerLens hooks</th></tr>{rows}</table>"]


def build(result, model, title: str = "Decompilation report") -> str:
  """The report page for a DecompileResult of `model` (anything decompile() accepts, or a CompiledModel)."""
  compiled = model if isinstance(model, CompiledModel) else reading.as_compiled(model)
  graph = weights.encode_model(compiled)
  _, special = nodes_lib.embedding_nodes(compiled.params, compiled.input_encoding, compiled.settings)
  program = result.program
  at = circuit.match_lines(program, graph)
  confidence = {name: result.line_confidence[j - 2] for name, j in at.items()
                if j >= 2 and j - 2 < len(result.line_confidence)}
  s = compiled.settings
  d = compiled.params["token_embed"]["embeddings"].shape[1]
  found = sum(1 for l in program.lines if l.out in at)
  body = [f"<h1>{esc(title)}</h1>",
          f'<p class="muted">{compiled.num_layers} layers, {compiled.num_heads} heads of size {compiled.key_size}, '
          f"residual width {d}; vocab {esc(list(s.vocab))}, max_seq_len {s.max_seq_len}, "
          f"{'causal' if s.causal else 'bidirectional'} attention; decoded {esc(result.mode.upper())}, "
          f"{result.candidates_tried} candidates, {result.seconds:.2f} s.</p>",
          "<h2>Verification</h2>", _verification(result, compiled),
          "<h2>Program</h2>", f"<pre>{esc(result.source)}</pre>",
          "<h2>Computation graph</h2>",
          f'<p class="muted">{found} of {len(program)} lines located in the weights. Edges: '
          + ", ".join(f'<span style="color:{c}">■</span> {r}' for r, c in _ROLE_COLOUR.items())
          + "; the output line has a green border. Click a node for its weights.</p>",
          f'<div class="graph">{_svg(program, graph, at, confidence)}</div>',
          *_circuit(result.circuit),
          "<h2>Nodes and their weights</h2>"]
  for line in program.lines:
    j = at.get(line.out)
    conf = confidence.get(line.out)
    head = (f'<div class="section" id="node-{esc(line.out)}"><h3>{esc(line.out)}: {esc(line.op)} '
            f"({esc(line.encoding)}, {esc(line.fn)})</h3><pre>{esc(source.line_to_source(line))}</pre>")
    if j is None:
      body.append(head + "<p>Not found in the weights: no unclaimed node of this kind reads these inputs.</p></div>")
      continue
    n = graph.nodes[j]
    info = (f"<p class=\"muted\">weight node {j}: layer {n.layer}, {esc(n.kind)}"
            + (f", head {n.head}" if n.head is not None else "") + (f", {len(n.units)} MLP units" if n.units else "")
            + f", writes residual dims {esc(n.writes[:8])}{'…' if len(n.writes) > 8 else ''}"
            + (f"; confidence {conf:.3f}" if conf is not None else "") + "</p>")
    body.append(head + info + "".join(_node_heatmaps(compiled, graph, special, j)) + "</div>")
  return page.document(title, "\n".join(body))


def write(result, model, path: str | os.PathLike, title: str | None = None) -> str:
  """Writes the page atomically; returns the path written."""
  name = title or f"Decompilation of {os.path.basename(str(getattr(model, 'name', '') or path))}"
  return files.atomic_write_text(path, build(result, model, name))
