"""Can verification be fooled? False accepts on perturbed tracr models (the count must be 0).

Run:  python benchmarks/verification_bench.py [--models 500] [--seed 0] [--out reports/verification.json]

Base models are plain tracr compiles (`compile_rasp_to_model`, BOS "BOS", vocab
{0..4}, max_seq_len 5) of tracr's lib programs our registry expresses, the
shared test programs and random generated programs. Each is perturbed in one
small way: a sign flipped, an entry scaled or nudged, a row zeroed, two rows
swapped. Every perturbed model goes through `decompile()` as a user would call
it. A *false accept* is a result marked verified whose program differs from the
perturbed model on some input, judged by code verification does not use: tracr's
own RASP evaluator on the program against the model's eager forward pass,
decoded by its own output encoder, on all 3,905 inputs.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tracr.rasp import rasp

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import DecompileError, decompile
from tracr_decompiler.generation import heldout, sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import ir, source, to_rasp

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")
KINDS = ("flip", "scale", "nudge", "zero_row", "swap_rows")


def base_programs(n_random: int, seed: int) -> list[ir.Program]:
  programs = list(heldout.expressible_lib_programs().values()) + list(test_cases.PROGRAMS.values())
  rng = np.random.default_rng(seed)
  for _ in range(n_random):
    programs.append(sampler.sample_program(GenerationConfig(), rng, heldout.blocklist()).program)
  return programs


def perturb(model, rng: np.random.Generator):
  """One random small change to one weight matrix: (description, new tracr model)."""
  names = [(m, p) for m, ps in model.params.items() for p, v in ps.items() if np.abs(np.asarray(v)).sum() > 0]
  m, p = names[rng.integers(len(names))]
  params = {mm: {pp: np.array(v) for pp, v in ps.items()} for mm, ps in model.params.items()}
  w = params[m][p]
  nz = np.argwhere(w != 0)
  where = tuple(nz[rng.integers(len(nz))])
  kind = KINDS[rng.integers(len(KINDS))]
  if kind == "flip":
    w[where] = -w[where]
  elif kind == "scale":
    w[where] *= float(rng.choice([0.25, 0.9, 1.1, 4.0]))
  elif kind == "nudge":
    w[where] += float(rng.choice([-0.05, 0.05]))
  elif kind == "zero_row":
    w[where[0]] = 0
  else:
    other = int(rng.integers(w.shape[0]))
    w[[where[0], other]] = w[[other, where[0]]]
  changed = dataclasses.replace(model, params=jax.tree_util.tree_map(jnp.asarray, params))
  return f"{kind} {m}/{p}{[int(i) for i in where]}", changed


_RASP_CACHE: dict[str, list] = {}


def rasp_outputs(program: ir.Program, inputs: list[tuple]) -> list:
  """tracr's own evaluator, cached per program text (many perturbed models decompile alike)."""
  key = source.to_source(program)
  if key not in _RASP_CACHE:
    expr = to_rasp.to_rasp(program)
    try:
      _RASP_CACHE[key] = [rasp.evaluate(expr, list(x)) for x in inputs]
    except Exception:  # tracr's evaluator raises: the program cannot equal any model
      _RASP_CACHE[key] = None
  return _RASP_CACHE[key]


def truly_equal(model, program: ir.Program, inputs: list[tuple]) -> bool:
  """The independent judge (see module doc). None in the program must meet an empty output block."""
  want = rasp_outputs(program, inputs)
  if want is None:
    return False
  enc = model.input_encoder.encoding_map
  out_enc = model.output_encoder
  categorical = hasattr(out_enc, "encoding_map")
  labels = list(model.residual_labels)
  dims = None
  if categorical:  # the output block: a block labelled with the encoder's values, in its order
    values = sorted(out_enc.encoding_map, key=out_enc.encoding_map.get)
    for name in sorted({lab.split(":")[0] for lab in labels} - {"tokens", "indices"}):
      if all(f"{name}:{v}" in labels for v in values):
        dims = [labels.index(f"{name}:{v}") for v in values]
  by_length = collections.defaultdict(list)
  for i, x in enumerate(inputs):
    by_length[len(x)].append(i)
  for n, idx in by_length.items():
    ids = jnp.array([[enc["BOS"]] + [enc[t] for t in inputs[i]] for i in idx])
    out = model.forward(model.params, ids)  # eager, not the jitted path verification uses
    raw = np.asarray(out.unembedded_output)[:, 1:]
    residual = np.asarray(out.transformer_output.output)[:, 1:]
    for row, i in enumerate(idx):
      got = out_enc.decode(raw[row].tolist()) if categorical else [float(v) for v in raw[row]]
      for pos, (w, g) in enumerate(zip(want[i], got)):
        if w is None:
          if categorical:  # the compiled program leaves its output block empty there
            if dims is None or residual[row, pos, dims].max() >= 0.5:
              return False
          elif abs(g) > 1e-3:
            return False
        elif categorical and (type(w) is bool) != (type(g) is bool):
          return False
        elif (abs(float(w) - float(g)) > 1e-3) if not isinstance(w, str) else w != g:
          return False
  return True


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", type=int, default=500, help="perturbed models to try")
  parser.add_argument("--random-bases", type=int, default=15)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--beam", type=int, default=16)
  parser.add_argument("--out", default=None, help="write the JSON summary here too")
  args = parser.parse_args(argv)
  start = time.time()
  inputs = [x for n in range(1, SETTINGS.max_seq_len + 1) for x in itertools.product(SETTINGS.vocab, repeat=n)]
  bases = [compiler.tracr_compile(p, SETTINGS) for p in base_programs(args.random_bases, args.seed)]
  rng = np.random.default_rng(args.seed)
  counts: collections.Counter = collections.Counter()
  false_accepts = []
  for k in range(args.models):
    what, model = perturb(bases[k % len(bases)], rng)
    try:
      result = decompile(model, beam=args.beam)
    except DecompileError:
      counts["refused"] += 1
      continue
    counts[result.status] += 1
    if result.verified:
      if truly_equal(model, result.program, inputs):
        counts["verified_and_truly_equal"] += 1
      else:
        false_accepts.append({"perturbation": what, "source": result.source, "status": result.status})
    if (k + 1) % 50 == 0:
      print(f"{k + 1} models, {dict(counts)}, false accepts {len(false_accepts)}, {time.time() - start:.0f} s",
            file=sys.stderr)
  summary = {"models": args.models, "base_models": len(bases), "seed": args.seed, "beam": args.beam,
             "false_accepts": len(false_accepts), "outcomes": dict(counts), "examples": false_accepts[:10],
             "seconds": round(time.time() - start, 1)}
  print(json.dumps(summary, indent=1))
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
  return summary


if __name__ == "__main__":
  main()
