"""Does a tracr model decompile the same after conversion to TransformerLens? (It must.)

Run:  python benchmarks/transformerlens_roundtrip.py [--generated 50] [--seed 13]

Each of tracr's lib programs and N freshly generated programs is compiled by
plain tracr (`compile_rasp_to_model`, BOS "BOS"), converted the way
TransformerLens' Tracr demo does (W_U = eye, which is wrong for most of them),
and decompiled three ways: the tracr object itself; the TransformerLens state
dict in memory with tracr's encoders; and the state dict saved as safetensors
with a settings JSON, read back from disk. Counts models whose encoder input
is bit-identical, and whose decompiled source and verification status agree
across all three.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import numpy as np
from safetensors.numpy import save_file

from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import tl_files, tracr_model, transformerlens as tl
from tracr_decompiler.tl_testing import demo_state_dict, same_encoder_input
from tracr_decompiler.decompiling.decompile import DecompileError, decompile
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")


def _settings_json(model) -> dict:
  """What a user writes for a TracrBench-style model: from tracr's encoders."""
  enc, out = model.input_encoder, model.output_encoder
  doc = {"vocab": sorted(t for t in enc.encoding_map if t not in (enc.bos_token, enc.pad_token)),
         "bos": enc.bos_token, "pad": enc.pad_token, "causal": bool(model.model_config.causal)}
  if out is not None and hasattr(out, "encoding_map"):
    doc["output_values"] = [v for v, _ in sorted(out.encoding_map.items(), key=lambda kv: kv[1])]
  else:
    doc["output"] = "numerical"
  return doc


def one(name: str, model, folder: str) -> dict:
  sd = demo_state_dict(model)
  rec: dict = {"program": name}
  in_memory = tl.from_transformerlens(sd, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  path = f"{folder}/{name}.safetensors"
  save_file({k: v.numpy() for k, v in sd.items()}, path)
  with open(f"{folder}/{name}.json", "w") as f:
    json.dump(_settings_json(model), f)
  from_file = tl_files.load(path)
  reference = tracr_model.from_tracr(model)
  rec["encoder_input_identical"] = same_encoder_input(reference, in_memory) and same_encoder_input(reference, from_file)
  results = []
  for m in (model, in_memory, from_file):
    try:
      r = decompile(m)
      results.append((r.source, r.status))
    except DecompileError as e:
      results.append(("refused", str(e)))
  rec["same_program"] = len({s for s, _ in results}) == 1
  rec["same_status"] = len({st for _, st in results}) == 1
  rec["status"] = results[0][1] if results[0][0] != "refused" else "refused"
  rec["output_block"] = in_memory.output_name
  return rec


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--generated", type=int, default=50)
  parser.add_argument("--seed", type=int, default=13)
  args = parser.parse_args(argv)
  import torch
  torch.set_num_threads(1)
  models = {name: m for name, m in lib_report.tracr_lib_models(SETTINGS).items()
            if not isinstance(m, compiler.CompileError)}
  rng = np.random.default_rng(args.seed)
  cfg = GenerationConfig()
  for i in range(args.generated):
    models[f"generated_{i}"] = compiler.tracr_compile(sampler.sample_program(cfg, rng).program, SETTINGS)
  records = []
  with tempfile.TemporaryDirectory() as folder:
    for name, model in models.items():
      records.append(one(name, model, folder))
      print(json.dumps(records[-1]), file=sys.stderr)
  groups = {"lib": [r for r in records if not r["program"].startswith("generated_")],
            "generated": [r for r in records if r["program"].startswith("generated_")]}
  summary = {g: {"models": len(rs), **{k: sum(r[k] for r in rs) for k in
                                       ("encoder_input_identical", "same_program", "same_status")},
                 "statuses": {s: sum(r["status"] == s for r in rs) for s in sorted({r["status"] for r in rs})},
                 "w_u_wrong": sum("W_U ignored" in r["output_block"] for r in rs)}
             for g, rs in groups.items()}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
