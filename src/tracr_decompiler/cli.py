"""The `tracr-decompiler` command: subcommands parse arguments and call one stage each.

Known failures (bad files, unsupported programs, impossible settings) print one
line `error: ...` and exit with status 2; nothing is executed from input files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


class UserError(Exception):
  """A failure to report as one line, without a traceback."""


def _vocab(text: str) -> tuple:
  items = [t.strip() for t in text.split(",") if t.strip()]
  if not items:
    raise argparse.ArgumentTypeError("vocab must list at least one token, e.g. 0,1,2,3,4")
  return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


def _writable_dir(path: str) -> str:
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, ".write-test")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f"cannot write to {path}: {e.strerror}") from None
  return path


# ---------------------------------------------------------------------------
# generate


def cmd_generate(args) -> None:
  from tracr_decompiler.compiling.compiler import CompileSettings
  from tracr_decompiler.dataset import writer
  from tracr_decompiler.generation.config import GenerationConfig
  gen = GenerationConfig(min_sops=args.min_sops, max_sops=args.max_sops,
                         settings=CompileSettings(vocab=args.vocab, max_seq_len=args.max_seq_len))
  cfg = writer.DatasetConfig(n=args.n, out=_writable_dir(args.out), workers=args.workers, seed=args.seed,
                             shard_size=args.shard_size, generation=gen, ray_address=args.ray)
  manifest = writer.build_dataset(cfg, progress=not args.quiet)
  made = manifest["generated_now"]
  rate = made / manifest["seconds"] if manifest["seconds"] > 0 and made else 0.0
  print(f"{manifest['num_programs']} programs in {args.out} ({manifest['splits']}); "
        f"generated {made} now at {rate:.1f} programs/s; content hash {manifest['content_hash'][:16]}")


def cmd_sample(args) -> None:
  """Prints a few random programs with their compiled layer layout."""
  import numpy as np
  from tracr_decompiler.compiling.compiler import CompileSettings
  from tracr_decompiler.generation import sampler
  from tracr_decompiler.generation.config import GenerationConfig
  from tracr_decompiler.program import source
  cfg = GenerationConfig(min_sops=args.min_sops, max_sops=args.max_sops,
                         settings=CompileSettings(vocab=args.vocab, max_seq_len=args.max_seq_len))
  rng = np.random.default_rng(args.seed)
  for _ in range(args.n):
    s = sampler.sample_program(cfg, rng)
    print(source.to_source(s.program, header=False).rstrip())
    layout = ", ".join(f"{label.rsplit('_', 1)[0]}: layer {layer} {sub}"
                       for label, (layer, sub) in sorted(s.model.allocation.items()))
    print(f"# {s.model.num_layers} layers, {s.model.num_heads} heads, residual {len(s.model.residual_labels)}: {layout}\n")


# ---------------------------------------------------------------------------
# train


def cmd_train(args) -> None:
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.training import loop
  cfg = loop.TrainConfig(data=args.data, out=_writable_dir(args.out), mode=args.mode, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
                         limit=args.limit, max_minutes=args.max_minutes, threads=args.threads)
  model_cfg = ModelConfig(input_mode=args.input, d_model=args.d_model, n_encoder_layers=args.layers,
                          n_heads=args.heads, d_ff=4 * args.d_model)
  metrics = loop.train(cfg, model_cfg, progress=not args.quiet)
  print("final validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))


# ---------------------------------------------------------------------------
# compile / decompile / evaluate


def _read_text(path: str, limit: int = 1 << 20) -> str:
  try:
    with open(path, "rb") as f:
      raw = f.read(limit + 1)
  except OSError as e:
    raise UserError(f"cannot read {path}: {e.strerror}") from None
  if len(raw) > limit:
    raise UserError(f"{path} is larger than {limit} bytes; not a RASP program")
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    raise UserError(f"{path} is not UTF-8 text") from None


def cmd_compile(args) -> None:
  from tracr_decompiler.compiling import compiler, model_io
  from tracr_decompiler.program import source
  program = source.parse_source(_read_text(args.program))
  settings = compiler.CompileSettings(vocab=args.vocab, max_seq_len=args.max_seq_len)
  model = compiler.compile_program(program, settings)
  out_dir = os.path.dirname(os.path.abspath(args.out))
  _writable_dir(out_dir)
  model_io.save_model(model, args.out)
  print(f"compiled {len(program)} ops into {model.num_layers} layers "
        f"(residual {len(model.residual_labels)}) -> {args.out}")


def cmd_decompile(args) -> None:
  from tracr_decompiler.compiling import model_io
  from tracr_decompiler.decompiling.decompile import decompile
  model = model_io.load_model(args.model)
  result = decompile(model, checkpoint_path=args.checkpoint, mode=args.mode, beam=args.beam,
                     verify=args.verify)
  print(result.source, end="")
  status = "verified" if result.verified else "UNVERIFIED"
  print(f"# {status}: {result.verification} ({result.candidates_tried} candidates, {result.seconds:.2f} s)")


def cmd_evaluate(args) -> None:
  from tracr_decompiler.evaluation import lib_report, report
  if args.lib:
    summary = lib_report.evaluate_lib(args.checkpoint, out=args.out, beam=args.beam)
    print(lib_report.markdown(summary), end="")
    return
  if not args.data:
    raise UserError("--data is required (or use --lib)")
  summary = report.evaluate_run(args.checkpoint, args.data, args.split, limit=args.limit, beam=args.beam,
                                out=args.out, progress=not args.quiet, exclude=args.exclude)
  print(report.markdown(summary), end="")
  print(f"report written to {args.out}/report.md, report.json, by_n_sops.png")


# ---------------------------------------------------------------------------


def _add_settings(p: argparse.ArgumentParser) -> None:
  p.add_argument("--vocab", type=_vocab, default=(0, 1, 2, 3, 4), help="comma-separated tokens")
  p.add_argument("--max-seq-len", type=int, default=5)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="tracr-decompiler", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("generate", help="generate a dataset of (weights, program) pairs as Parquet shards")
  p.add_argument("--n", type=int, required=True, help="programs to draw")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--shard-size", type=int, default=250)
  p.add_argument("--min-sops", type=int, default=2)
  p.add_argument("--max-sops", type=int, default=8)
  p.add_argument("--ray", metavar="ADDRESS", default=None, help="run shard tasks on a Ray cluster")
  p.add_argument("--quiet", action="store_true")
  _add_settings(p)
  p.set_defaults(func=cmd_generate)

  p = sub.add_parser("sample", help="print random programs and their compiled layout")
  p.add_argument("--n", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--min-sops", type=int, default=2)
  p.add_argument("--max-sops", type=int, default=8)
  _add_settings(p)
  p.set_defaults(func=cmd_sample)

  p = sub.add_parser("train", help="train a decompiler (resumes when --out holds a run)",
                     description="Train a decompiler. Multi-GPU: torchrun --standalone --nproc_per_node=N "
                     "-m tracr_decompiler.cli train ...")
  p.add_argument("--data", required=True, help="dataset folder from `generate`")
  p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv, training.png)")
  p.add_argument("--mode", choices=("nar", "ar", "both"), default="both")
  p.add_argument("--input", choices=("graph", "flat"), default="graph", help="weight representation")
  p.add_argument("--steps", type=int, default=6000)
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--lr", type=float, default=5e-4)
  p.add_argument("--d-model", type=int, default=256)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--heads", type=int, default=8)
  p.add_argument("--eval-every", type=int, default=250)
  p.add_argument("--limit", type=int, default=None, help="use only the first N training programs")
  p.add_argument("--max-minutes", type=float, default=None)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quiet", action="store_true")
  p.set_defaults(func=cmd_train)

  p = sub.add_parser("compile", help="compile a RASP source file to a model file (safetensors)")
  p.add_argument("program", help="Python RASP source, as printed by `decompile` (parsed, never executed)")
  p.add_argument("--out", required=True, help="output .safetensors file")
  _add_settings(p)
  p.set_defaults(func=cmd_compile)

  p = sub.add_parser("decompile", help="decompile a compiled model file into RASP source")
  p.add_argument("model", help="model file written by `tracr-decompiler compile`")
  p.add_argument("--mode", choices=("nar", "ar"), default="nar")
  p.add_argument("--beam", type=int, default=16, help="candidates to try")
  p.add_argument("--checkpoint", default=None, help="decompiler weights (default: the shipped model)")
  p.add_argument("--no-verify", dest="verify", action="store_false", help="skip checking against the model")
  p.set_defaults(func=cmd_decompile)

  p = sub.add_parser("evaluate", help="score a decompiler on a dataset split or on tracr's lib programs")
  p.add_argument("--checkpoint", default=None, help="run folder or checkpoint (default: the shipped model)")
  p.add_argument("--data", default=None)
  p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
  p.add_argument("--exclude", default=None, help="drop programs that are in this dataset (the training data)")
  p.add_argument("--limit", type=int, default=500)
  p.add_argument("--beam", type=int, default=16)
  p.add_argument("--lib", action="store_true", help="evaluate on tracr's hand-written lib programs")
  p.add_argument("--out", default="reports/test")
  p.add_argument("--quiet", action="store_true")
  p.set_defaults(func=cmd_evaluate)

  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    args.func(args)
  except (UserError, ValueError, OSError, RuntimeError) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # a bug of ours: still one line, and say so
    print(f"error: internal error ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
