"""`evaluate --report`: the whole test set on one HTML page, beside report.json/md (evaluation/report.py).

Charts of the verified decoder's functional and exact rates by number of SOps,
by op kind and by compile settings, the verification statuses, and the worst
cases (failed first, then by line accuracy) linked to their program next to
the decompiled one. Also reads `evaluate --lib` summaries (one case per lib
program). Self-contained like every report (visual/page.py).
"""

from __future__ import annotations

import collections
import os

import numpy as np

from tracr_decompiler import files
from tracr_decompiler.visual import page
from tracr_decompiler.visual.page import esc

WORST = 20  # worst cases listed and linked


def _cases(summary: dict) -> list[dict]:
  """Per-program records in one shape, from `evaluate` (records) or `evaluate --lib` (programs)."""
  if "records" in summary:
    return list(summary["records"])
  cases = []
  for r in summary.get("programs", []):
    ok = r.get("status") == "ok"
    cases.append({"id": r["program"], "n_sops": r.get("ops", 0) if ok else 0, "ops": [],
                  "settings": "lib settings", "check": r.get("status_of_check", "refused" if not ok else "?"),
                  "verified": {"functional": float(bool(r.get("functional"))), "exact": float(bool(r.get("exact"))),
                               "line_accuracy": float("nan")},
                  "source": r.get("source", ""), "verification": r.get("verification", r.get("status", ""))})
  return cases


def _rate(cases: list[dict], metric: str) -> float:
  values = [c["verified"].get(metric, 0.0) for c in cases]
  return float(np.mean(values)) if values else float("nan")


def _bars(groups: dict[str, list[dict]], title: str, xlabel: str) -> str:
  names = list(groups)
  fig, ax = page.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 3.2))
  x = np.arange(len(names))
  for k, (metric, colour) in enumerate((("functional", "#2f855a"), ("exact", "#2b6cb0"))):
    rates = [_rate(groups[n], metric) for n in names]
    ax.bar(x + (k - 0.5) * 0.38, rates, 0.38, label=f"verified decoder: {metric}", color=colour)
  ax.set_xticks(x, [f"{n}\n({len(groups[n])})" for n in names], fontsize=8)
  ax.set_ylim(0, 1.05)
  ax.set_ylabel("rate")
  ax.set_xlabel(xlabel, fontsize=8)
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, loc="lower left")
  return page.png(fig)


def _statuses(cases: list[dict]) -> str:
  counts = collections.Counter(c.get("check", "?") for c in cases)
  colours = {"proved": "#1f8a4c", "verified": "#38a169", "sampled": "#b7791f", "different": "#c0392b",
             "untrusted": "#9b2c2c"}
  fig, ax = page.subplots(figsize=(4.5, 3.2))
  names = sorted(counts, key=lambda n: -counts[n])
  ax.bar(names, [counts[n] for n in names], color=[colours.get(n, "#6b7280") for n in names])
  ax.set_title("verification status", fontsize=10)
  ax.set_ylabel("programs")
  ax.tick_params(axis="x", labelsize=8)
  return page.png(fig)


def _case_id(c: dict) -> str:
  return "case-" + "".join(ch if ch.isalnum() else "-" for ch in str(c["id"]))[:64]


def build(summary: dict, title: str = "Evaluation report") -> str:
  cases = _cases(summary)
  by_sops = collections.defaultdict(list)
  by_op = collections.defaultdict(list)
  by_settings = collections.defaultdict(list)
  for c in cases:
    by_sops[str(c.get("n_sops", "?"))].append(c)
    for op in c.get("ops", []):
      by_op[op].append(c)
    by_settings[c.get("settings", "as generated")].append(c)
  sops_order = dict(sorted(by_sops.items(), key=lambda kv: (len(kv[0]), kv[0])))
  worst = sorted(cases, key=lambda c: (c["verified"].get("functional", 0), c["verified"].get("exact", 0),
                                       np.nan_to_num(c["verified"].get("line_accuracy", 0), nan=0)))
  worst = [c for c in worst if not c["verified"].get("functional", 0) or not c["verified"].get("exact", 0)][:WORST]
  where = f"split <code>{esc(summary.get('split', 'lib'))}</code> of <code>{esc(summary.get('data', 'tracr lib'))}</code>"
  body = [f"<h1>{esc(title)}</h1>",
          f'<p class="muted">{len(cases)} programs, {where}; verified decoder: NAR beam '
          f"{esc(summary.get('beam', '?'))} + verification. Functional {_rate(cases, 'functional'):.1%}, "
          f"exact {_rate(cases, 'exact'):.1%}.</p>",
          "<h2>By number of SOps, op kind and settings</h2>",
          _bars(sops_order, "by number of SOps", "SOps (programs)"),
          _bars(dict(sorted(by_op.items())), "by op kind (programs containing it)", "op (programs)") if by_op else "",
          _bars(by_settings, "by compile settings", "settings (programs)"), _statuses(cases),
          f"<h2>Worst cases ({len(worst)})</h2>"]
  if worst:
    body.append("<table><tr><th>program</th><th>SOps</th><th>status</th><th>functional</th><th>exact</th>"
                "<th>line accuracy</th></tr>")
    for c in worst:
      v = c["verified"]
      acc = v.get("line_accuracy", float("nan"))
      body.append(f'<tr><td><a href="#{_case_id(c)}">{esc(c["id"])}</a></td><td>{esc(c.get("n_sops"))}</td>'
                  f'<td>{page.badge(c.get("check", "?"))}</td><td>{"yes" if v.get("functional") else "no"}</td>'
                  f'<td>{"yes" if v.get("exact") else "no"}</td>'
                  f'<td>{"–" if acc != acc else f"{acc:.0%}"}</td></tr>')
    body.append("</table>")
  for c in worst:
    body.append(f'<div class="section" id="{_case_id(c)}"><h3>{esc(c["id"])} {page.badge(c.get("check", "?"))}</h3>'
                f'<p class="muted">{esc(c.get("verification", ""))}</p><table><tr><th>program</th>'
                f'<th>decompiled</th></tr><tr><td><pre>{esc(c.get("truth_source", "(not known)"))}</pre></td>'
                f'<td><pre>{esc(c.get("source", "(none)"))}</pre></td></tr></table></div>')
  return page.document(title, "\n".join(body))


def write(summary: dict, path: str | os.PathLike, title: str = "Evaluation report") -> str:
  """Writes the page atomically; returns the path written."""
  return files.atomic_write_text(path, build(summary, title))
