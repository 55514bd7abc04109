"""TransformerLens 4 as users hold it: does every lib program decompile like the tracr model it came from?

Run:  python benchmarks/transformerlens4.py        (needs the `test` extra: transformer-lens 4.x)

For each of tracr's 15 lib programs (vocab {0..4}, max_seq_len 5, BOS "BOS"), compiled by plain tracr: a
TransformerBridge built by TransformerLens' own tracr converter (categorical outputs only: it refuses numerical
ones) and one loaded from our export by `convert_tl_checkpoint` (docs/usage.md's recipe); each decompiled as the
bridge object, its `state_dict()` in memory and that state dict saved as safetensors with a settings JSON.
Prints a markdown table: the tracr model's status, and per bridge whether all three gave the tracr model's
program and status.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from safetensors.torch import save_file

from tracr_decompiler import tl_testing
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.loading import tl_files

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")


def three_ways(bridge, model, folder: str) -> list[tuple[str, str]]:
  """(source, status) of the bridge object, its state dict and its file."""
  enc = {"input_encoder": model.input_encoder, "output_encoder": model.output_encoder}
  sd = bridge.state_dict()
  save_file({k: v.contiguous() for k, v in sd.items()}, f"{folder}/bridge.safetensors")
  doc = tl_files.settings_document(model)
  doc.pop("transformerlens_config")
  with open(f"{folder}/bridge.json", "w") as f:
    json.dump(doc, f)
  results = [decompile(bridge, **enc), decompile(sd, n_heads=bridge.cfg.n_heads, **enc),
             decompile(f"{folder}/bridge.safetensors")]
  return [(r.source, r.status) for r in results]


def main() -> list[dict]:
  rows = []
  for name, expr in lib_report.lib_programs().items():
    start = time.perf_counter()
    model = compiler.tracr_compile(expr, SETTINGS)
    truth = decompile(model)
    row = {"program": name, "tracr": truth.status}
    with tempfile.TemporaryDirectory() as folder:
      for how, bridge in (("tl_converter", tl_testing.bridge_by_tl_converter(model, expr.label)),
                          ("our_export", tl_testing.bridge_by_our_export(model, folder))):
        row[how] = "refused by TransformerLens (numerical output)" if bridge is None else (
            "same" if all(r == (truth.source, truth.status) for r in three_ways(bridge, model, folder)) else "DIFFERENT")
    row["seconds"] = round(time.perf_counter() - start, 1)
    rows.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
  print("| lib program | tracr model | TransformerLens' converter: object / state_dict / file | our export: same |")
  print("|---|---|---|---|")
  for r in rows:
    print(f"| {r['program']} | {r['tracr']} | {r['tl_converter']} | {r['our_export']} |")
  same = sum(r["our_export"] == "same" for r in rows)
  print(f"\n{same}/{len(rows)} lib programs give the tracr model's program and status through every TransformerLens 4 path")
  return rows


if __name__ == "__main__":
  main()
