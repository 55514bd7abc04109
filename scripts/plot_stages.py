"""Draws a model trained in stages (a run, then runs warm-started from it) as one curve: validation exact by
programs seen and by wall-clock hours, each stage continuing where the one before it ended.

Run:  python scripts/plot_stages.py OUT.png STAGE1.csv STAGE2.csv ...     (each a run's metrics.csv)

Each stage was validated on its own run's validation set (an equal share of that run's parts), so a stage's
first row (a warm start validates before its first step) shows where the model it began from stands on the new
set; a dotted line marks each warm start.
"""

from __future__ import annotations

import csv
import pathlib
import sys

from matplotlib.figure import Figure

KEYS = ("nar_exact", "ar_exact")


def main(out: str, *stages: str) -> None:
  fig = Figure(figsize=(11, 4))
  by_seen, by_hours = fig.subplots(1, 2)
  seen0 = hours0 = 0.0
  for k, path in enumerate(stages):
    rows = list(csv.DictReader(pathlib.Path(path).open()))
    seen = [seen0 + float(r["programs_seen"]) / 1e6 for r in rows]
    hours = [hours0 + float(r["minutes"]) / 60 for r in rows]
    for key, colour in zip(KEYS, ("C0", "C2")):
      values = [100 * float(r[key]) for r in rows]
      label = key if k == 0 else None
      by_seen.plot(seen, values, "o-", color=colour, label=label, markersize=3)
      by_hours.plot(hours, values, "o-", color=colour, label=label, markersize=3)
    if k:
      by_seen.axvline(seen0, color="grey", linestyle=":")
      by_hours.axvline(hours0, color="grey", linestyle=":")
    seen0, hours0 = seen[-1], hours[-1]
  by_seen.set_xlabel("programs seen, millions (with repeats)")
  by_hours.set_xlabel("wall-clock hours (stage 1 on a GPU, later stages on 2 CPU cores)")
  for ax in (by_seen, by_hours):
    ax.set_ylabel("validation exact, greedy (%)")
    ax.set_ylim(50, 100)
    ax.legend(loc="lower right")
  fig.suptitle("the shipped model: stage 1 from scratch, then warm starts (dotted) on more programs")
  fig.tight_layout()
  fig.savefig(out, dpi=100)


if __name__ == "__main__":
  main(*sys.argv[1:])
