"""The `tracr-decompiler` command: subcommands parse arguments and call one stage each.

Exit status: 0 success; 2 bad input, arguments or environment (`errors.TracrDecompilerError`,
one line `error: ...`); 1 a bug of ours (`error: internal error (...)`; rerun with `--debug`
for the traceback); 128 + N when stopped by signal N (SIGINT, SIGTERM, SIGHUP).
Arguments are checked against `limits.py` before any output folder is created;
nothing is executed from input files.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import threading
import traceback
from typing import Callable

from tracr_decompiler import errors, files, limits


class UserError(errors.UsageError):
  """A failure to report as one line, without a traceback (bad arguments)."""


class Stopped(KeyboardInterrupt):
  """SIGTERM or SIGHUP, raised like Ctrl-C so pools and temp files are cleaned up the same way."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum


def _vocab(text: str) -> tuple:
  items = [t.strip() for t in text.split(",") if t.strip()]
  if not items:
    raise argparse.ArgumentTypeError("vocab must list at least one token, e.g. 0,1,2,3,4")
  if len(items) > limits.MAX_VOCAB:
    raise argparse.ArgumentTypeError(f"vocab has {len(items)} tokens; at most {limits.MAX_VOCAB} are supported")
  if len(set(items)) != len(items):
    raise argparse.ArgumentTypeError("vocab lists a token twice")
  if any(len(t) > limits.MAX_TOKEN_CHARS for t in items):
    raise argparse.ArgumentTypeError(f"vocab tokens are at most {limits.MAX_TOKEN_CHARS} characters")
  return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
  """An argparse type: an integer in [lo, hi], refused with the range rather than clamped."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
      raise argparse.ArgumentTypeError(f"{value} is out of range {lo}..{hi if hi is not None else ''}")
    return value
  return parse


def _config(factory: Callable, **kwargs):
  """Builds a config dataclass from arguments; its ValueError means the arguments are bad."""
  try:
    return factory(**kwargs)
  except (ValueError, TypeError) as e:
    if isinstance(e, errors.TracrDecompilerError):
      raise
    raise UserError(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None


def _workers(requested: int, shards: int) -> int:
  """--workers capped at the CPUs this process may use and at the number of shards."""
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
  return max(1, min(requested, cpus, shards, limits.MAX_WORKERS))


# ---------------------------------------------------------------------------
# generate


def cmd_generate(args) -> None:
  from tracr_decompiler.compiling.compiler import CompileSettings
  from tracr_decompiler.dataset import writer
  from tracr_decompiler.generation.config import GenerationConfig
  settings = _config(CompileSettings, vocab=args.vocab, max_seq_len=args.max_seq_len)
  gen = _config(GenerationConfig, min_sops=args.min_sops, max_sops=args.max_sops, settings=settings)
  shards = math.ceil(args.n / args.shard_size) if args.n > 0 and args.shard_size > 0 else 1
  cfg = _config(writer.DatasetConfig, n=args.n, out=args.out, workers=_workers(args.workers, shards), seed=args.seed,
                shard_size=args.shard_size, generation=gen, ray_address=args.ray)
  files.make_dirs(args.out)  # only now: rejected arguments leave no folder behind
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
  cfg = _config(GenerationConfig, min_sops=args.min_sops, max_sops=args.max_sops,
                settings=_config(CompileSettings, vocab=args.vocab, max_seq_len=args.max_seq_len))
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
  from tracr_decompiler.dataset import reader
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.training import loop
  cfg = _config(loop.TrainConfig, data=args.data, out=args.out, mode=args.mode, steps=args.steps,
                batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
                limit=args.limit, max_minutes=args.max_minutes, threads=args.threads)
  model_cfg = _config(ModelConfig, input_mode=args.input, d_model=args.d_model, n_encoder_layers=args.layers,
                      n_heads=args.heads, d_ff=4 * args.d_model)
  if not reader.manifest(args.data)["splits"].get("train"):
    raise reader.DatasetError(f"{args.data} has no training programs; generate a larger dataset")
  files.make_dirs(args.out)
  metrics = loop.train(cfg, model_cfg, progress=not args.quiet)
  print("final validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))


# ---------------------------------------------------------------------------
# compile / decompile / evaluate


def cmd_compile(args) -> None:
  from tracr_decompiler.compiling import compiler, model_io
  from tracr_decompiler.program import source
  files.output_path(args.out)  # a folder or device as --out is refused before any work
  text = files.read_text(args.program, limits.MAX_SOURCE_BYTES, "RASP program")
  program = source.parse_source(text)
  settings = _config(compiler.CompileSettings, vocab=args.vocab, max_seq_len=args.max_seq_len)
  model = compiler.compile_program(program, settings)
  files.make_dirs(os.path.dirname(os.path.abspath(args.out)))
  written = args.out
  if args.format == "transformerlens":
    from tracr_decompiler.compiling import transformerlens
    written = " + ".join(transformerlens.save(model, args.out, args.settings_out))
  else:
    model_io.save_model(model, args.out)
  print(f"compiled {len(program)} ops into {model.num_layers} layers "
        f"(residual {len(model.residual_labels)}) -> {written}")


def _load_model(args):
  """Our model file or a TransformerLens state dict (safetensors + settings JSON), by --format or key names."""
  from tracr_decompiler.compiling import model_io, transformerlens
  fmt = args.format
  if fmt == "auto":
    layout = transformerlens.sniff_layout(args.model)
    if layout is None:
      raise model_io.ModelFileError(f"{args.model} is neither a tracr-decompiler model file nor a TransformerLens "
                                    "state dict (embed.W_E, blocks.0.attn.W_Q, ... or tok_embed.weight, layers.0...)")
    fmt = "tracr-decompiler" if layout == "ours" else "transformerlens"
  flags = transformerlens.Reading(
      vocab=args.vocab, bos=args.bos, pad=args.pad, causal=args.causal, n_heads=args.n_heads,
      output_kind="numerical" if args.numerical_output else ("categorical" if args.output_values else None),
      output_values=args.output_values)
  if fmt == "tracr-decompiler":
    if args.settings or any(v is not None for v in dataclasses.astuple(flags)):
      raise UserError("--settings, --vocab, --bos, --pad, --causal, --n-heads and the output flags are for "
                      "TransformerLens files; a tracr-decompiler model file holds its own settings")
    return model_io.load_model(args.model)
  return transformerlens.load(args.model, args.settings, flags)


def _inference_threads() -> None:
  """The CLI, not the library, picks torch's thread count for decompiling: one.

  On this project's busy 2-core machine two threads made decompiling 3.6x
  slower than one (benchmarks/decompile_threads.py); the model is small enough
  that one thread is also right on bigger machines.
  """
  import torch
  torch.set_num_threads(1)


def cmd_decompile(args) -> None:
  from tracr_decompiler.compiling import model_io
  _check_beam(args.beam, args.mode)
  if args.report:
    files.output_path(args.report)  # a folder or device as --report is refused before any work
  model = _load_model(args)  # a bad file is refused before torch is imported
  from tracr_decompiler.decompiling.decompile import decompile
  _inference_threads()
  result = decompile(model, checkpoint_path=args.checkpoint, mode=args.mode, beam=args.beam,
                     verify=args.verify)
  print(result.source, end="")
  status = f"verified ({result.status})" if result.verified else f"UNVERIFIED ({result.status})"
  print(f"# {status}: {result.verification} ({result.candidates_tried} candidates, {result.seconds:.2f} s)")
  for warning in result.warnings:
    print(f"# warning: {warning} (accuracy there is unmeasured)")
  if result.output_block and not model.residual_labels:  # read from weights alone: say where the output was
    print(f"# output: {result.output_block}")
  if args.report:
    from tracr_decompiler.visual import decompilation
    title = f"Decompilation of {os.path.basename(args.model)}"
    print(f"# report: {decompilation.write(result, model, args.report, title)}")


def cmd_evaluate(args) -> None:
  from tracr_decompiler.dataset import reader
  _check_beam(args.beam, "nar")
  if args.report:
    files.output_path(args.report)  # refused before hours of evaluation, not after
  _inference_threads()
  if args.lib:
    from tracr_decompiler.evaluation import lib_report
    summary = lib_report.evaluate_lib(args.checkpoint, out=args.out, beam=args.beam)
    print(lib_report.markdown(summary), end="")
    _evaluation_page(args, summary, "Evaluation on tracr's lib programs")
    return
  if not args.data:
    raise UserError("--data is required (or use --lib)")
  rows = reader.read_split(args.data, None if args.split == "all" else args.split, columns=["id"])
  if not rows:
    raise reader.DatasetError(f"split {args.split!r} of {args.data} is empty; nothing to evaluate")
  from tracr_decompiler.evaluation import report
  summary = report.evaluate_run(args.checkpoint, args.data, args.split, limit=args.limit, beam=args.beam,
                                out=args.out, progress=not args.quiet, exclude=args.exclude)
  print(report.markdown(summary), end="")
  print(f"report written to {args.out}/report.md, report.json, by_n_sops.png")
  _evaluation_page(args, summary, f"Evaluation on {args.data} ({args.split})")


def _evaluation_page(args, summary: dict, title: str) -> None:
  if args.report:
    from tracr_decompiler.visual import evaluation
    print(f"HTML report: {evaluation.write(summary, args.report, title)}")


def _check_beam(beam: int, mode: str) -> None:
  cap = limits.MAX_BEAM_AR if mode == "ar" else limits.MAX_BEAM
  if beam > cap:
    raise UserError(f"--beam {beam} is above {cap}, the limit for --mode {mode}")


# ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
  """argparse, with its rejections as one line like every other error (still exit status 2)."""

  def error(self, message: str):
    self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _add_settings(p: argparse.ArgumentParser) -> None:
  p.add_argument("--vocab", type=_vocab, default=(0, 1, 2, 3, 4), help="comma-separated tokens")
  p.add_argument("--max-seq-len", type=_int_in(1, limits.MAX_SEQ_LEN), default=5,
                 help=f"longest input (1..{limits.MAX_SEQ_LEN})")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="tracr-decompiler", description=__doc__.splitlines()[0])
  parser.add_argument("--debug", action="store_true", help="print the full traceback of any error")
  sub = parser.add_subparsers(dest="command", required=True)
  # `--debug` is also accepted after the subcommand (SUPPRESS keeps it from resetting the top-level one).
  debug = _Parser(add_help=False)
  debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
  add = lambda name, **kwargs: sub.add_parser(name, parents=[debug], **kwargs)

  p = add("generate", help="generate a dataset of (weights, program) pairs as Parquet shards")
  p.add_argument("--n", type=_int_in(1), required=True, help="programs to draw")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--workers", type=_int_in(1), default=2,
                 help=f"processes (capped at the CPU count, the number of shards and {limits.MAX_WORKERS})")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--shard-size", type=_int_in(1), default=250)
  p.add_argument("--min-sops", type=int, default=2)
  p.add_argument("--max-sops", type=int, default=8)
  p.add_argument("--ray", metavar="ADDRESS", default=None, help="run shard tasks on a Ray cluster")
  p.add_argument("--quiet", action="store_true")
  _add_settings(p)
  p.set_defaults(func=cmd_generate)

  p = add("sample", help="print random programs and their compiled layout")
  p.add_argument("--n", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--min-sops", type=int, default=2)
  p.add_argument("--max-sops", type=int, default=8)
  _add_settings(p)
  p.set_defaults(func=cmd_sample)

  p = add("train", help="train a decompiler (resumes when --out holds a run)",
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

  p = add("compile", help="compile a RASP source file to a model file (safetensors)")
  p.add_argument("program", help="Python RASP source, as printed by `decompile` (parsed, never executed)")
  p.add_argument("--out", required=True, help="output .safetensors file")
  p.add_argument("--format", choices=("tracr-decompiler", "transformerlens"), default="tracr-decompiler",
                 help="transformerlens: a HookedTransformer state dict plus a settings/config JSON")
  p.add_argument("--settings-out", default=None, help="with --format transformerlens: the JSON's path "
                 "(default: --out with .json)")
  _add_settings(p)
  p.set_defaults(func=cmd_compile)

  p = add("decompile", help="decompile a compiled model file into RASP source")
  p.add_argument("model", help="model file written by `tracr-decompiler compile`")
  p.add_argument("--mode", choices=("nar", "ar"), default="nar")
  p.add_argument("--beam", type=_int_in(1, limits.MAX_BEAM), default=16,
                 help=f"candidates to try (1..{limits.MAX_BEAM}; 1..{limits.MAX_BEAM_AR} with --mode ar)")
  p.add_argument("--checkpoint", default=None, help="decompiler weights (default: the shipped model)")
  p.add_argument("--no-verify", dest="verify", action="store_false", help="skip checking against the model")
  p.add_argument("--report", default=None, metavar="HTML", help="also write a self-contained HTML report")
  g = p.add_argument_group("TransformerLens files (what the weights do not say; flags override --settings)")
  g.add_argument("--format", choices=("auto", "tracr-decompiler", "transformerlens"), default="auto",
                 help="auto: from the file's tensor names")
  g.add_argument("--settings", default=None, help="settings JSON (default: the model path with .json, if present)")
  g.add_argument("--vocab", type=_vocab, default=None, help="comma-separated input tokens")
  g.add_argument("--bos", default=None, help="BOS token (tracr's compiler_bos; default compiler_bos)")
  g.add_argument("--pad", default=None, help="PAD token (default compiler_pad)")
  g.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None, help="causal attention mask")
  g.add_argument("--n-heads", type=_int_in(1, limits.MAX_HEADS), default=None,
                 help="heads per layer (TransformerBridge files only)")
  g.add_argument("--output-values", type=_vocab, default=None, help="categorical output values, in index order")
  g.add_argument("--numerical-output", action="store_true", default=None, help="the output SOp is numerical")
  p.set_defaults(func=cmd_decompile)

  p = add("evaluate", help="score a decompiler on a dataset split or on tracr's lib programs")
  p.add_argument("--checkpoint", default=None, help="run folder or checkpoint (default: the shipped model)")
  p.add_argument("--data", default=None)
  p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
  p.add_argument("--exclude", default=None, help="drop programs that are in this dataset (the training data)")
  p.add_argument("--limit", type=_int_in(1), default=500)
  p.add_argument("--beam", type=_int_in(1, limits.MAX_BEAM), default=16)
  p.add_argument("--lib", action="store_true", help="evaluate on tracr's hand-written lib programs")
  p.add_argument("--out", default="reports/test")
  p.add_argument("--report", default=None, metavar="HTML", help="also write a self-contained HTML report")
  p.add_argument("--quiet", action="store_true")
  p.set_defaults(func=cmd_evaluate)

  return parser


def _one_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__


def _raise_stopped(signum: int, frame) -> None:
  raise Stopped(signum)


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  # SIGTERM and SIGHUP unwind like Ctrl-C: `with Pool` terminates the workers, temp files are removed,
  # and finished shards or checkpoints (renamed into place) stay whole.
  in_main_thread = threading.current_thread() is threading.main_thread()  # signal() works only there
  previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)} if in_main_thread else {}
  try:
    args.func(args)
  except errors.TracrDecompilerError as e:
    _report(args, e, _one_line(e))
    return 2
  except OSError as e:  # the environment, not us: disk full, permissions, a path that vanished
    where = f"{e.filename}: " if e.filename else ""
    _report(args, e, f"{where}{e.strerror or _one_line(e)}")
    return 2
  except KeyboardInterrupt as e:
    signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
    print(f"error: interrupted by {signal.Signals(signum).name}; finished work is kept, rerun to continue",
          file=sys.stderr)
    return 128 + signum
  except Exception as e:  # a bug of ours: still one line, and say so
    _report(args, e, f"internal error ({type(e).__name__}: {_one_line(e)[:200]})"
            + ("" if args.debug else "; rerun with --debug for the traceback"))
    return 1
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  return 0


def _report(args, e: BaseException, line: str) -> None:
  if args.debug:
    traceback.print_exception(e, file=sys.stderr)
  print(f"error: {line}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(main())
