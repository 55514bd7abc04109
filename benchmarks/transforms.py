"""Models in weights that are not tracr's: does the decompiler stay right, and never verify a wrong program?

Run:  python benchmarks/transforms.py [--generated 40] [--seed 23] [--transforms none,residual_perm,...]

Each of tracr's lib programs and N freshly generated programs (vocab {0..4}, max_seq_len 5) is compiled by
plain tracr (`compile_rasp_to_model`), exported with `tl_files.to_state_dict` (legacy TransformerLens
names, a real `W_U`), and then transformed on the state dict, independently of the reader:

  none            the export as it is (the control)
  output_order    the output block's dims permuted, every writer and W_U following
  residual_perm   all residual dims permuted (writers' columns, readers' rows, W_U's rows)
  rotation        a random orthogonal change of residual basis
  invertible      a random invertible (well-conditioned) change of residual basis
  padding         4 unused residual dims added, then all dims permuted
  mlp_units       MLP hidden units permuted and each scaled by a factor in [0.5, 2] (ReLU is homogeneous)
  heads           heads permuted inside each layer
  head_basis      per head W_Q M, W_K M^-T and W_V N, N^-1 W_O for random invertible M, N
  fp16, bf16      every tensor rounded to half precision and back
  noise_1e-6, noise_1e-4   every tensor plus Gaussian noise of that size relative to its largest entry
  composed        residual_perm + mlp_units + heads + head_basis

Whether a transform kept the function is decided by an independent NumPy forward pass of the TransformerLens
model (`tl_testing.tl_outputs`) (softmax attention scaled by 1/sqrt(d_head), ReLU MLPs, logits = residual W_U; argmax decoded by tracr's
output encoder), over all 3,905 inputs, against the untransformed export. Then `decompile(state_dict,
input_encoder=..., output_encoder=...)` runs as a user's call; "right" means the decompiled program's RASP
outputs equal that forward pass's on every input, "false verified" a verified or proved answer that is not
right. Prints one JSON line per model and transform to stderr and a table (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from tracr_decompiler import tl_testing
from tracr_decompiler.compiling import compiler, inputs as inputs_lib, outputs
from tracr_decompiler.loading import tl_files
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")
WRITERS = ("embed.W_E", "pos_embed.W_pos", "attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")
READERS = ("attn.W_Q", "attn.W_K", "attn.W_V", "mlp.W_in", "unembed.W_U")


def _is(name: str, suffixes) -> bool:
  return any(name == s or name.endswith("." + s) for s in suffixes)


def change_basis(sd: dict, a: np.ndarray, a_inv: np.ndarray) -> dict:
  """Writers right-multiplied by A [D, D'], readers left-multiplied by A^-1 [D', D] (A A^-1 = I_D)."""
  out = {}
  for k, v in sd.items():
    if _is(k, WRITERS):
      v = v @ a
    elif _is(k, ("attn.W_Q", "attn.W_K", "attn.W_V")):
      v = np.einsum("ed,hdk->hek", a_inv, v)
    elif _is(k, ("mlp.W_in", "unembed.W_U")):
      v = a_inv @ v
    out[k] = v
  return out


def _perm_matrix(perm: np.ndarray) -> np.ndarray:
  """A with x A = x[perm^-1]...: column j of A picks old dim perm[j] (new dim j holds old dim perm[j])."""
  a = np.zeros((len(perm), len(perm)))
  a[perm, np.arange(len(perm))] = 1
  return a


def output_order(sd, rng):
  w_u = sd["unembed.W_U"]
  dims = [int(np.flatnonzero(w_u[:, j])[0]) for j in range(w_u.shape[1])]
  perm = np.arange(w_u.shape[0])
  perm[dims] = rng.permutation(dims) if len(dims) > 1 else dims
  return change_basis(sd, _perm_matrix(perm), _perm_matrix(perm).T)


def residual_perm(sd, rng):
  p = _perm_matrix(rng.permutation(sd["embed.W_E"].shape[1]))
  return change_basis(sd, p, p.T)


def rotation(sd, rng):
  q, _ = np.linalg.qr(rng.normal(size=(sd["embed.W_E"].shape[1],) * 2))
  return change_basis(sd, q, q.T)


def invertible(sd, rng):
  d = sd["embed.W_E"].shape[1]
  a = np.eye(d) + rng.normal(size=(d, d)) / np.sqrt(d) * 0.5
  return change_basis(sd, a, np.linalg.inv(a))


def padding(sd, rng, extra: int = 4):
  d = sd["embed.W_E"].shape[1]
  a = np.concatenate([np.eye(d), np.zeros((d, extra))], axis=1)
  p = _perm_matrix(rng.permutation(d + extra))
  return change_basis(sd, a @ p, p.T @ a.T)


def _prefixes(sd, suffix: str) -> list[str]:
  """"blocks.L.attn." for suffix "attn.W_Q": one prefix per layer that has the tensor."""
  return [k[:-len(suffix.split(".")[-1])] for k in sd if k.endswith(suffix)]


def mlp_units(sd, rng):
  out = dict(sd)
  for b in _prefixes(sd, "mlp.W_in"):
    m = sd[b + "W_in"].shape[1]
    perm, scale = rng.permutation(m), rng.uniform(0.5, 2, m)
    out[b + "W_in"] = sd[b + "W_in"][:, perm] * scale
    out[b + "b_in"] = sd[b + "b_in"][perm] * scale
    out[b + "W_out"] = sd[b + "W_out"][perm] / scale[:, None]
  return out


def heads(sd, rng):
  out = dict(sd)
  for b in _prefixes(sd, "attn.W_Q"):
    perm = rng.permutation(sd[b + "W_Q"].shape[0])
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
      out[b + name] = sd[b + name][perm]
  return out


def head_basis(sd, rng):
  out = dict(sd)
  for b in _prefixes(sd, "attn.W_Q"):
    h, _, kk = sd[b + "W_Q"].shape
    for i in range(h):
      m = np.eye(kk) + rng.normal(size=(kk, kk)) / np.sqrt(kk) * 0.5
      n = np.eye(kk) + rng.normal(size=(kk, kk)) / np.sqrt(kk) * 0.5
      for name, mat in (("W_Q", m), ("W_K", np.linalg.inv(m).T), ("W_V", n)):
        out[b + name] = out[b + name].copy()
        out[b + name][i] = sd[b + name][i] @ mat
      out[b + "W_O"] = out[b + "W_O"].copy()
      out[b + "W_O"][i] = np.linalg.inv(n) @ sd[b + "W_O"][i]
  return out


def _rounded(dtype):
  def f(sd, rng):
    if dtype == "bf16":
      import torch
      return {k: torch.tensor(np.asarray(v, np.float32)).to(torch.bfloat16).float().numpy() for k, v in sd.items()}
    return {k: np.asarray(v, np.float32).astype(np.float16).astype(np.float64) for k, v in sd.items()}
  return f


def _noise(size):
  def f(sd, rng):
    return {k: v + rng.normal(size=v.shape) * size * (np.abs(v).max() or 1.0) for k, v in sd.items()}
  return f


def composed(sd, rng):
  for t in (residual_perm, mlp_units, heads, head_basis):
    sd = t(sd, rng)
  return sd


TRANSFORMS = {"none": lambda sd, rng: dict(sd), "output_order": output_order, "residual_perm": residual_perm,
              "rotation": rotation, "invertible": invertible, "padding": padding, "mlp_units": mlp_units,
              "heads": heads, "head_basis": head_basis, "fp16": _rounded("fp16"), "bf16": _rounded("bf16"),
              "noise_1e-6": _noise(1e-6), "noise_1e-4": _noise(1e-4), "composed": composed}


def _same(a: outputs.Outputs, b: outputs.Outputs) -> bool:
  for n in a.decoded:
    if a.categorical:
      if not ((a.none[n] == b.none[n]) & ((a.decoded[n] == b.decoded[n]) | a.none[n])).all():
        return False
    elif not (np.abs(a.decoded[n] - b.decoded[n]) <= outputs.TOLERANCE).all():
      return False
  return True


def one(name: str, model, transform: str, rng, inputs, reference) -> dict:
  sd, cfg = tl_files.to_state_dict(model)
  sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
  changed = TRANSFORMS[transform](sd, rng)
  expected = tl_testing.tl_outputs(changed, cfg, model, inputs)
  rec: dict = {"program": name, "transform": transform, "preserved": _same(reference, expected)}
  start = time.perf_counter()
  try:
    r = decompile({k: np.asarray(v, np.float32) for k, v in changed.items()},
                  input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  except TracrDecompilerError as e:
    rec.update(status="refused", right=False, verified=False, reason=str(e)[:160])
  else:
    rec.update(status=r.status, verified=r.verified,
               right=outputs.compare(expected, r.program, inputs, causal=bool(cfg["attention_dir"] == "causal")).equal)
  rec["seconds"] = round(time.perf_counter() - start, 3)
  rec["false_verified"] = bool(rec["verified"] and not rec["right"])
  return rec


def table(records: list[dict]) -> str:
  lines = ["| transform | models | function preserved | decompiled right | verified | proved | FALSE verified | "
           "refused | median s |", "|---|---|---|---|---|---|---|---|---|"]
  for t in dict.fromkeys(r["transform"] for r in records):
    rs = [r for r in records if r["transform"] == t]
    count = lambda k: sum(bool(r[k]) for r in rs)
    lines.append(f"| {t} | {len(rs)} | {count('preserved')} | {count('right')} | {count('verified')} | "
                 f"{sum(r['status'] == 'proved' for r in rs)} | {count('false_verified')} | "
                 f"{sum(r['status'] == 'refused' for r in rs)} | {statistics.median(r['seconds'] for r in rs):.2f} |")
  return "\n".join(lines)


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--generated", type=int, default=40)
  parser.add_argument("--seed", type=int, default=23)
  parser.add_argument("--transforms", default=",".join(TRANSFORMS))
  parser.add_argument("--no-lib", action="store_true")
  args = parser.parse_args(argv)
  models = {} if args.no_lib else {name: m for name, m in lib_report.tracr_lib_models(SETTINGS).items()
                                   if not isinstance(m, compiler.CompileError)}
  rng = np.random.default_rng(args.seed)
  cfg = GenerationConfig()
  for i in range(args.generated):
    models[f"generated_{i}"] = compiler.tracr_compile(sampler.sample_program(cfg, rng).program, SETTINGS)
  inputs = inputs_lib.input_set(SETTINGS.vocab, SETTINGS.max_seq_len, 0)
  records = []
  for name, model in models.items():
    sd, tl_cfg = tl_files.to_state_dict(model)
    reference = tl_testing.tl_outputs({k: np.asarray(v, np.float64) for k, v in sd.items()}, tl_cfg, model, inputs)
    for t in args.transforms.split(","):
      records.append(one(name, model, t, np.random.default_rng([args.seed, len(records)]), inputs, reference))
      print(json.dumps(records[-1]), file=sys.stderr, flush=True)
  print(table(records))
  return records


if __name__ == "__main__":
  main()
