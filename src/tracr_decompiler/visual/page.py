"""One self-contained HTML page: the shell, escaping and matplotlib figures as inline PNGs.

Reports are opened from disk, offline, and mailed around, so a page carries
everything it shows: CSS inline, graphs as inline SVG, charts and heatmaps as
base64 PNGs drawn by matplotlib. No script, font or style is fetched.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;color:#1d2330;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#5b6474}code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f5f7fa;border:1px solid #e3e7ee;border-radius:6px;padding:10px;overflow-x:auto}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#1f8a4c}.warn{background:#b7791f}.bad{background:#c0392b}.none{background:#6b7280}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e3e7ee;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f5f7fa}.graph{overflow-x:auto;border:1px solid #e3e7ee;border-radius:6px;
background:#fcfdfe}.node-box{fill:#fff;stroke:#4a5568;stroke-width:1.2}.node-box.out{stroke:#1f8a4c;stroke-width:2.4}
.node-box.lost{stroke:#c0392b;stroke-dasharray:4 3}.input-box{fill:#eef2f7;stroke:#8793a6}
a.node:hover .node-box{fill:#eef6ff}.section{border:1px solid #e3e7ee;border-radius:6px;padding:8px 14px;margin:12px 0}
.section:target{box-shadow:0 0 0 3px #90cdf4}img.heat{max-width:100%;margin:4px 12px 4px 0;vertical-align:top}
"""


def esc(x) -> str:
  return html.escape(str(x), quote=True)


def document(title: str, body: str) -> str:
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<meta name="viewport" content="width=device-width, initial-scale=1">'
          f'<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n')


def badge(status: str) -> str:
  kind = {"proved": "ok", "verified": "ok", "sampled": "warn", "different": "bad", "untrusted": "bad"}.get(status, "none")
  return f'<span class="badge {kind}">{esc(status)}</span>'


def png(fig, dpi: int = 90, alt: str = "") -> str:
  """An <img> holding the figure as a base64 PNG."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  return f'<img class="heat" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def subplots(**kwargs):
  """(figure, axes) without pyplot: nothing registered with, or changed in, the process's matplotlib
  (no backend switch, no global figure list); savefig renders with Agg."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=kwargs.pop("figsize", None))
  return fig, fig.subplots(**kwargs)


def heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], title: str, row_name: str, col_name: str,
            cell_text: list[list[str]] | None = None) -> str:
  """A labelled heatmap (diverging colours centred on 0), numbers in the cells when they fit."""
  m = np.asarray(matrix, dtype=float)
  h, w = m.shape
  fig, ax = subplots(figsize=(min(1.2 + 0.42 * w, 9), min(1.0 + 0.36 * h, 8)))
  lim = float(np.nanmax(np.abs(m))) if m.size and np.isfinite(m).any() else 1.0
  ax.imshow(m, cmap="RdBu_r", vmin=-(lim or 1.0), vmax=lim or 1.0, aspect="auto")
  ax.set_xticks(range(w), [c[:8] for c in cols], fontsize=7, rotation=90 if max(map(len, cols), default=0) > 3 else 0)
  ax.set_yticks(range(h), [r[:10] for r in rows], fontsize=7)
  ax.set_xlabel(col_name, fontsize=8)
  ax.set_ylabel(row_name, fontsize=8)
  ax.set_title(title, fontsize=9)
  if h * w <= 400:
    for i in range(h):
      for j in range(w):
        text = cell_text[i][j] if cell_text is not None else _short(m[i, j])
        if text:
          ax.text(j, i, text, ha="center", va="center", fontsize=6,
                  color="white" if abs(m[i, j]) > 0.6 * (lim or 1) else "black")
  return png(fig, alt=title)


def _short(x: float) -> str:
  if not np.isfinite(x) or abs(x) < 1e-6:
    return ""
  return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2g}"
