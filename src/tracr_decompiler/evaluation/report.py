"""`evaluate`: every metric on a dataset split, broken down, written as JSON, Markdown and PNG.

Example usage:
    tracr-decompiler evaluate --checkpoint runs/main --data data/main --split test --limit 500
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import pathlib
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tracr_decompiler import parallel, stopping
from tracr_decompiler.compiling import compiler, inputs as inputs_lib
from tracr_decompiler.dataset import reader, rows
from tracr_decompiler.decompiling.decompile import DecompileError, checkpoint_folder, decompile, load_decompiler
from tracr_decompiler.encoding import programs
from tracr_decompiler.evaluation import metrics
from tracr_decompiler.generation import settings as settings_lib
from tracr_decompiler.program import ir, registry, source
from tracr_decompiler.training import data, loop

# Published numbers to compare against (TraDe: Thurnherr & Riesen 2024; meta-models: Langosco et al. 2024).
ANCHORS = {
    "TraDe exact (NAR)": 0.30, "TraDe exact (AR)": 0.26, "TraDe functional": 0.73,
    "meta-model exact": 0.60, "meta-model exact @5 SOps": 0.80, "meta-model exact @8 SOps": 0.26,
}
METRICS = ("exact", "compilable", "functional", "weight_identical", "line_accuracy")
# Beside by_n_sops: compile settings (issue 11), and whether the true program has functions outside the registry (issue 10).
SETTINGS_BREAKDOWNS = ("vocab_size", "max_seq_len", "token_type", "causal", "functions")


def _score(pred: ir.Program | None, truth: ir.Program, model, inputs) -> dict[str, float]:
  if pred is None:
    return {m: 0.0 for m in METRICS}
  return {"exact": float(metrics.exact(pred, truth, inputs.inputs, model.settings.causal)),
          "compilable": float(metrics.compilable(pred, model.settings)),
          "functional": float(metrics.functional(pred, truth, model.settings, inputs)),
          "weight_identical": float(metrics.weight_identical(pred, model)),
          "line_accuracy": metrics.line_accuracy(pred, truth)}


def _mean(values) -> float:
  return float(np.mean(values)) if values else float("nan")


def evaluate_run(checkpoint: str, data_dir: str, split: str = "test", limit: int | None = 500,
                 beam: int = 16, out: str | None = None, progress: bool = True,
                 exclude: str | None = None, skip_bad_rows: bool = False, workers: int = 1,
                 ray_address: str | None = None) -> dict:
  """Scores greedy NAR, greedy AR and verified NAR decoding on `split` ("all" for every split).

  Through the user's door: each test program is compiled by plain tracr
  (`compile_rasp_to_model`) and that AssembledTransformerModel goes to
  `decompile()`. The dataset's own weights (our fast compile, bit-identical)
  serve only as the reference for weight identity and for teacher-forced metrics.

  exclude: other datasets (the training data's parts, comma-separated) whose programs are dropped first,
  so a freshly generated set is deduplicated against what the model saw.
  skip_bad_rows: malformed rows are left out and listed in the summary's "malformed_rows_skipped" (each
  naming dataset, split and row) instead of stopping at the first (reader.DatasetError).
  workers, ray_address: programs are scored in `workers` local processes, or as Ray tasks on the cluster at
  `ray_address`; the report is the same as one process's but for the measured seconds. With `out`, each
  program's record is appended to out/records.jsonl as it is done, and a rerun of the same evaluation (same
  data, split, checkpoint, beam, limit and exclusions) scores only the programs not yet there.
  """
  decompiler = load_decompiler(checkpoint)
  cache = pathlib.Path(out or "reports") / "cache"
  which = None if split == "all" else split
  malformed: list[str] | None = [] if skip_bad_rows else None
  examples = data.prepare(data_dir, which or "all", cache, progress=progress, model_cfg=decompiler.cfg,
                          skipped=malformed)
  table = reader.read_split(data_dir, which)
  unreadable = len(table) - len(examples)  # weights whose nodes could not be aligned with lines
  seen: set[str] = set()
  exclude_shards = 0
  if exclude:
    for part in exclude.split(","):  # the training data's parts, as `train --data` takes them
      ids, shards = reader.program_ids(part)
      seen, exclude_shards = seen | ids, exclude_shards + shards
    examples = [e for e in examples if table[e.row_index]["id"] not in seen]
  duplicates = len(table) - unreadable - len(examples)
  if limit is not None:
    examples = examples[:limit]
  dropped = unreadable
  teacher = loop.evaluate_batches(decompiler, examples, torch.device("cpu"), "both", ar_limit=0)
  jobs = [_Job(table[ex.row_index], checkpoint, beam) for ex in examples]
  key = {"data": reader.manifest(data_dir)["content_hash"], "split": split, "checkpoint": _checkpoint_key(checkpoint),
         "beam": beam, "limit": limit, "exclude": exclude}
  log = _RecordLog(pathlib.Path(out) / "records.jsonl", key) if out else None
  records = _records(jobs, log, workers, ray_address, progress, f"evaluate {split}")
  summary = _summarise(records, teacher, split, data_dir, checkpoint, beam, dropped)
  summary["excluded_as_seen_in_training"] = duplicates if exclude else 0
  summary["malformed_rows_skipped"] = malformed or []
  summary["exclude"] = {"data": exclude, "shards_read": exclude_shards} if exclude else None
  summary["records"] = records  # per program, for `evaluate --report` (visual/evaluation.py)
  if out:
    write_report(summary, pathlib.Path(out))
  return summary


@dataclasses.dataclass(frozen=True)
class _Job:
  """One program to score: its dataset row, and the decompiler and beam to score it with."""
  row: dict
  checkpoint: str | None
  beam: int


def _records(jobs: list[_Job], log: "_RecordLog | None", workers: int, ray_address: str | None, progress: bool,
             desc: str) -> list[dict]:
  """Each job's record, in the jobs' order: from the log where it is there, else scored here, in a pool or on Ray."""
  done = log.read() if log is not None else {}
  records: list[dict | None] = [done.get(job.row["id"]) for job in jobs]
  todo = [i for i, r in enumerate(records) if r is None]
  todo_jobs = [jobs[i] for i in todo]
  with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, disable=not progress, unit="prog") as bar:
    if ray_address:
      results = parallel.ray_map(score_program, todo_jobs, ray_address)
    elif workers > 1 and len(todo) > 1:
      results = parallel.pool_map(score_program, todo_jobs, min(workers, len(todo)), _init_worker,
                                  (logging.getLogger("absl").level,))
    else:
      results = ((k, score_program(job)) for k, job in enumerate(todo_jobs))
    for k, rec in results:
      records[todo[k]] = rec
      if log is not None:
        log.append(rec)
      bar.update()
      stopping.check()
  return [r for r in records if r is not None]


def _init_worker(absl_level: int) -> None:
  """A pool worker is this evaluation's own process: one torch and BLAS thread, as the CLI sets for itself
  (two workers of two threads each on two cores ran slower than one), and absl's warnings as the parent has
  them (a spawned process starts with logging as Python makes it)."""
  import threadpoolctl
  torch.set_num_threads(1)
  threadpoolctl.threadpool_limits(1)
  logging.getLogger("absl").setLevel(absl_level)


@functools.lru_cache(maxsize=16)
def _input_set(vocab: tuple, max_seq_len: int):
  return inputs_lib.input_set(vocab, max_seq_len)


def score_program(job: _Job) -> dict:
  """One program's record: NAR and AR greedy alone, then verified decoding, each scored against the truth."""
  row, checkpoint, beam = job.row, job.checkpoint, job.beam
  model, truth = rows.model_from_row(row), rows.program_from_row(row)
  s = model.settings
  inputs = _input_set(s.vocab, s.max_seq_len)
  user_model = compiler.tracr_compile(truth, s)
  rec = {"id": row["id"], "n_sops": row["n_sops"], "ops": sorted({l.op for l in truth.lines}),
         "vocab_size": len(s.vocab), "max_seq_len": s.max_seq_len, "token_type": settings_lib.token_type(s),
         "causal": s.causal, "inputs_checked": inputs.describe(),
         "functions": "out-of-registry" if any(registry.written(l.fn) for l in truth.lines) else "registry-only",
         "settings": f"vocab {len(s.vocab)}, max_seq_len {s.max_seq_len}{', causal' if s.causal else ''}",
         "truth_source": source.to_source(truth, header=False)}  # settings and sources: the HTML report
  for mode in ("nar", "ar"):
    t = time.time()
    try:
      pred = decompile(user_model, checkpoint_path=checkpoint, mode=mode, beam=1, verify=False,
                       read=False).program  # the decoder alone
    except DecompileError:
      pred = None
    rec[f"{mode}_seconds"] = time.time() - t
    rec[mode] = _score(pred, truth, model, inputs)
  t = time.time()
  try:
    result = decompile(user_model, checkpoint_path=checkpoint, beam=beam, verify=True)
    rec["verified"] = _score(result.program, truth, model, inputs)
    rec["verified"]["verified"] = float(result.verified)
    rec["check"] = result.status
    rec["source"], rec["verification"] = source.to_source(result.program, header=False), result.verification
    rec["named"] = dict(collections.Counter(registry.how_written(l.fn)  # registry, table or formula
                                            for l in result.program.lines if l.op != "linear_sequence_map"))
    rec["functions_read"], rec["functions_replaced"] = result.functions_read, result.functions_replaced
  except DecompileError:
    rec["verified"] = {**_score(None, truth, model, inputs), "verified": 0.0}
    rec["check"] = "refused"
  rec["verified_seconds"] = time.time() - t
  return rec


def _checkpoint_key(checkpoint: str | None) -> list:
  """What identifies the decompiler's weights for resuming: each file's name, size and modification time."""
  folder = checkpoint_folder(checkpoint)
  return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in folder.iterdir() if p.is_file())


class _RecordLog:
  """out/records.jsonl: the run's key on the first line, then one record per line as each program is done.

  A log whose key differs (another dataset, checkpoint, beam, ...) is started over; a last line cut by a
  kill is ignored (that program is scored again)."""

  def __init__(self, path: pathlib.Path, key: dict):
    self.path, self.key = path, json.loads(json.dumps(key))

  def read(self) -> dict[str, dict]:
    done: dict[str, dict] = {}
    try:
      lines = self.path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
      lines = []
    try:
      same = bool(lines) and json.loads(lines[0]) == {"run": self.key}
    except ValueError:
      same = False
    if same:
      for line in lines[1:]:
        try:
          rec = json.loads(line)
        except ValueError:
          continue  # cut by a kill
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
          done[rec["id"]] = rec
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self.path.write_text(json.dumps({"run": self.key}) + "\n")
    return done

  def append(self, rec: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(rec) + "\n")


def _summarise(records, teacher, split, data_dir, checkpoint, beam, dropped) -> dict:
  decoders = ("nar", "ar", "verified")
  overall: dict[str, dict[str, Any]] = {d: {m: _mean([r[d][m] for r in records]) for m in METRICS} for d in decoders}
  overall["verified"]["verified"] = _mean([r["verified"]["verified"] for r in records])
  overall["verified"]["statuses"] = dict(collections.Counter(r["check"] for r in records))

  def rates(sub: list[dict]) -> dict[str, float]:
    return {"count": len(sub), **{f"{d}_{m}": _mean([r[d][m] for r in sub])
                                  for d in decoders for m in ("exact", "functional")}}

  def by(key: str) -> dict:  # records without the key (reports from before it) are left out
    groups = sorted({r[key] for r in records if key in r}, key=lambda v: (str(type(v)), v))
    return {g: rates([r for r in records if r.get(key) == g]) for g in groups}

  latency = {d: _mean([r[f"{d}_seconds"] for r in records]) for d in decoders}
  # How the verified decoder's functions came out (issue 10): registry names, formulas or tables; and how many
  # functions were read from the weights, and how many of those overrode the neural guess.
  overall["verified"]["named"] = dict(sum((collections.Counter(r.get("named", {})) for r in records),
                                          collections.Counter()))
  overall["verified"]["functions_read"] = sum(r.get("functions_read", 0) for r in records)
  overall["verified"]["functions_replaced"] = sum(r.get("functions_replaced", 0) for r in records)
  return {"split": split, "data": data_dir, "checkpoint": checkpoint, "programs": len(records),
          "unreadable_programs": dropped, "beam": beam, "teacher_forced": teacher, "overall": overall,
          "by_n_sops": by("n_sops"), "by_op": {op: rates([r for r in records if op in r["ops"]]) for op in programs.OPS},
          **{f"by_{key}": by(key) for key in SETTINGS_BREAKDOWNS},
          "latency_seconds": latency, "anchors": ANCHORS}


def markdown(summary: dict) -> str:
  o = summary["overall"]
  lines = [f"Split `{summary['split']}` of `{summary['data']}`, {summary['programs']} programs, "
           f"checkpoint: {('`' + summary['checkpoint'] + '`') if summary['checkpoint'] else 'the shipped model'}."
           + (f" Deduplicated against the {summary['exclude']['shards_read']} shards of `{summary['exclude']['data']}`"
              f" ({summary['excluded_as_seen_in_training']} programs seen in training dropped)."
              if summary.get("exclude") else "")
           + f" {summary['unreadable_programs']} programs were skipped (count them as failures): the node splitter"
             " cannot align their weights, or, where settings are too large to check every input, the program fails"
             " on an input beyond the generator's sample. Models come from plain `compile_rasp_to_model`.", "",
           "| decoding | exact | functional | compilable | weight-identical | line acc. | latency (s) |",
           "|---|---|---|---|---|---|---|"]
  names = {"nar": "NAR greedy", "ar": "AR greedy", "verified": f"NAR beam {summary['beam']} + verification"}
  for d, name in names.items():
    m = o[d]
    lines.append(f"| {name} | {m['exact']:.1%} | {m['functional']:.1%} | {m['compilable']:.1%} | "
                 f"{m['weight_identical']:.1%} | {m['line_accuracy']:.1%} | {summary['latency_seconds'][d]:.3f} |")
  t = summary["teacher_forced"]
  lines += ["", f"Teacher-forced: NAR field accuracy {t.get('field_acc', float('nan')):.1%}, "
            f"AR token accuracy {t.get('ar_token_acc', float('nan')):.1%}. "
            f"Verified (proved by identical weights, or same outputs on every input): "
            f"{o['verified']['verified']:.1%}; statuses: "
            + ", ".join(f"{k} {v}" for k, v in sorted(o["verified"].get("statuses", {}).items())) + ". "
            + f"Functions in the verified decoder's programs: "
            + (", ".join(f"{k} {v}" for k, v in sorted(o["verified"].get("named", {}).items())) or "none")
            + f"; read from the weights {o['verified'].get('functions_read', 0)}, of which "
              f"{o['verified'].get('functions_replaced', 0)} replaced the decoder's guess.", "",
            "| SOps | programs | NAR exact | NAR functional | AR exact | AR functional | verified exact | verified functional |",
            "|---|---|---|---|---|---|---|---|"]
  for n, m in summary["by_n_sops"].items():
    lines.append(f"| {n} | {m['count']} | {m['nar_exact']:.1%} | {m['nar_functional']:.1%} | {m['ar_exact']:.1%} | "
                 f"{m['ar_functional']:.1%} | {m['verified_exact']:.1%} | {m['verified_functional']:.1%} |")
  lines += ["", "| programs containing | programs | NAR exact | NAR functional | AR exact | verified functional |",
            "|---|---|---|---|---|---|"]
  for op, m in summary["by_op"].items():
    if m["count"]:
      lines.append(f"| {op} | {m['count']} | {m['nar_exact']:.1%} | {m['nar_functional']:.1%} | "
                   f"{m['ar_exact']:.1%} | {m['verified_functional']:.1%} |")
  for key in SETTINGS_BREAKDOWNS:
    groups = summary.get(f"by_{key}", {})
    if len(groups) < 2:  # one setting: nothing to break down
      continue
    lines += ["", f"| {key.replace('_', ' ')} | programs | NAR exact | NAR functional | AR exact | verified functional |",
              "|---|---|---|---|---|---|"]
    for g, m in groups.items():
      lines.append(f"| {g} | {m['count']} | {m['nar_exact']:.1%} | {m['nar_functional']:.1%} | "
                   f"{m['ar_exact']:.1%} | {m['verified_functional']:.1%} |")
  return "\n".join(lines + naming_examples(summary.get("records", []))) + "\n"


def naming_examples(records: list[dict]) -> list[str]:
  """Markdown: for each way a function can be written (registry name, formula, table), the first verified
  program written with it, beside the original program it was decompiled from."""
  lines = []
  for kind in ("registry", "formula", "table"):
    rec = next((r for r in records if r.get("named", {}).get(kind) and r.get("check") in ("proved", "verified")), None)
    if rec is None:
      continue
    lines += ["", f"Functions named by {kind} ({rec['check']}; original on the left, decompiled on the right):", "",
              "| original | decompiled |", "|---|---|"]
    original, decompiled = rec["truth_source"].splitlines(), rec["source"].splitlines()
    for i in range(max(len(original), len(decompiled))):
      cell = lambda text: f"`{text[i]}`".replace("|", "\\|") if i < len(text) and text[i].strip() else ""
      lines.append(f"| {cell(original)} | {cell(decompiled)} |")
  return lines


def write_report(summary: dict, out: pathlib.Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
  (out / "report.md").write_text(markdown(summary))
  plot_by_sops(summary, out / "by_n_sops.png")
  plot_by_settings(summary, out / "by_settings.png")


def plot_by_sops(summary: dict, png: pathlib.Path) -> None:
  from matplotlib.figure import Figure  # no pyplot: drawing leaves the process's matplotlib as it was
  sops = [int(n) for n in summary["by_n_sops"]]
  get = lambda key: [summary["by_n_sops"][n][key] for n in summary["by_n_sops"]]
  fig = Figure(figsize=(7, 4))
  ax = fig.subplots()
  ax.plot(sops, get("nar_exact"), "o-", label="ours: exact (NAR greedy)")
  ax.plot(sops, get("ar_exact"), "s-", label="ours: exact (AR greedy)")
  ax.plot(sops, get("nar_functional"), "o--", label="ours: functional (NAR greedy)")
  ax.plot(sops, get("verified_functional"), "^-", label="ours: functional (verified)")
  ax.scatter([5, 8], [0.80, 0.26], marker="x", s=80, color="k", label="meta-model exact (5, 8 SOps)")
  ax.axhline(0.30, color="gray", ls=":", label="TraDe exact, NAR (overall)")
  ax.axhline(0.73, color="gray", ls="-.", label="TraDe functional (overall)")
  ax.set_xlabel("SOps in program"); ax.set_ylabel("rate"); ax.set_ylim(0, 1.02)
  ax.set_title("Decompilation by program size"); ax.legend(fontsize=7, loc="lower left")
  fig.tight_layout()
  fig.savefig(png, dpi=110)


def plot_by_settings(summary: dict, png: pathlib.Path) -> None:
  """One panel per compile setting: NAR greedy exact and verified functional per value."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=(4 * len(SETTINGS_BREAKDOWNS), 3.6))
  axes = fig.subplots(1, len(SETTINGS_BREAKDOWNS), squeeze=False)
  for ax, key in zip(axes[0], SETTINGS_BREAKDOWNS):
    groups = summary.get(f"by_{key}", {})
    labels = [str(g) for g in groups]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, [m["nar_exact"] for m in groups.values()], 0.4, label="exact (NAR greedy)")
    ax.bar(x + 0.2, [m["verified_functional"] for m in groups.values()], 0.4, label="functional (verified)")
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, fontsize=7)
    ax.set_ylim(0, 1.02); ax.set_title(key.replace("_", " "))
    for i, m in enumerate(groups.values()):
      ax.text(i, 1.0, str(m["count"]), ha="center", va="top", fontsize=6, color="gray")
  axes[0][0].set_ylabel("rate"); axes[0][0].legend(fontsize=7, loc="lower left")
  fig.suptitle("Decompilation by compile settings (gray: programs per group)", fontsize=9)
  fig.tight_layout()
  fig.savefig(png, dpi=110)
