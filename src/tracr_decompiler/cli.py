"""The `tracr-decompiler` command: subcommands parse arguments and call one stage each.

Exit status: 0 success; 2 bad input, arguments or environment (`errors.TracrDecompilerError`,
one line `error: ...`); 1 a bug of ours (`error: internal error (...)`; rerun with `--debug`
for the traceback); 128 + N when stopped by signal N (SIGINT, SIGTERM, SIGHUP).
Arguments are checked against `limits.py` before any output folder is created;
nothing is executed from input files. The flags of `generate`, `sample`, `train`
and `compile` come from the config dataclasses' fields (cli_config.py), so their
defaults and help live with the fields, and `--config file.json` sets them from a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import signal
import sys
import threading
import traceback
from typing import Callable

from tracr_decompiler import cli_config, errors, files, limits, machine, stopping
from tracr_decompiler.cli_config import Flag, Section


class UserError(errors.UsageError):
  """A failure to report as one line, without a traceback (bad arguments)."""


class ManyRefused(errors.TracrDecompilerError):
  """Some of several models could not be read or decompiled (each said so in its place)."""


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


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
  """An argparse type: a number in [lo, hi] (NaN refused)."""
  def parse(text: str) -> float:
    try:
      value = float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not lo <= value <= hi:
      raise argparse.ArgumentTypeError(f"{value} is out of range {lo}..{hi}")
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
  return max(1, min(requested, machine.available_cores(), shards, limits.MAX_WORKERS))


# ---------------------------------------------------------------------------
# generate


def _settings_section() -> Section:
  """The compile settings a command exposes; their help is here because compiling/ is below the CLI."""
  from tracr_decompiler.compiling.compiled import CompileSettings
  return Section(CompileSettings, {
      "vocab": Flag(type=_vocab, help="comma-separated input tokens"),
      "max_seq_len": Flag(type=_int_in(1, limits.MAX_SEQ_LEN), help=f"longest input (1..{limits.MAX_SEQ_LEN})"),
  }, "compile settings (CompileSettings)")


def _generation_section() -> Section:
  """The generator's distribution; its search budgets (max_attempts, ...) stay internal."""
  from tracr_decompiler.generation.config import GenerationConfig
  fraction, count = Flag(type=_float_in(0, 1)), Flag(type=_int_in(1))
  return Section(GenerationConfig, {
      "min_sops": Flag(), "max_sops": Flag(), "op_weights": Flag(metavar="JSON"), "prefer_unused": fraction,
      "numerical_map_fraction": fraction, "max_values": count, "max_numerical_values": count,
      "max_none_fraction": fraction, "max_mlp_hidden": count, "max_half_layers": count, "mixed_settings": Flag(),
      "table_fraction": fraction, "max_table_entries": count,
  }, "program generator (GenerationConfig)")


def _generate_flags(p: argparse.ArgumentParser) -> None:
  from tracr_decompiler.dataset.config import DatasetConfig
  dataset = Section(DatasetConfig, {
      "n": Flag(type=_int_in(1), required=True), "out": Flag(required=True, metavar="FOLDER"),
      "workers": Flag(type=_int_in(1)), "seed": Flag(), "shard_size": Flag(type=_int_in(1)),
      "val_percent": Flag(type=_int_in(0, 100)), "test_percent": Flag(type=_int_in(0, 100)),
      "ray_address": Flag(aliases=("--ray",), metavar="ADDRESS"),
  }, "dataset (DatasetConfig)")
  sections = [dataset, _generation_section(), _settings_section()]
  cli_config.add_flags(p, sections)
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_generate, sections=sections)


def cmd_generate(args) -> None:
  from tracr_decompiler.compiling.compiled import CompileSettings
  from tracr_decompiler.dataset import writer
  from tracr_decompiler.generation.config import GenerationConfig
  ds, gen, compile_settings = cli_config.resolve(args, args.sections)
  settings = _config(CompileSettings, **compile_settings)
  generation = _config(GenerationConfig, **gen, settings=settings)
  shards = math.ceil(ds["n"] / ds["shard_size"]) if ds["n"] > 0 and ds["shard_size"] > 0 else 1
  cfg = _config(writer.DatasetConfig, **{**ds, "workers": _workers(ds["workers"], shards)}, generation=generation)
  files.make_dirs(cfg.out)  # only now: rejected arguments leave no folder behind
  manifest = writer.build_dataset(cfg, progress=not args.quiet)
  made = manifest["generated_now"]
  rate = made / manifest["seconds"] if manifest["seconds"] > 0 and made else 0.0
  print(f"{manifest['num_programs']} programs in {cfg.out} ({manifest['splits']}); "
        f"generated {made} now at {rate:.1f} programs/s; content hash {manifest['content_hash'][:16]}")


def cmd_sample(args) -> None:
  """Prints a few random programs with their compiled layer layout."""
  import numpy as np
  from tracr_decompiler.compiling.compiled import CompileSettings
  from tracr_decompiler.generation import sampler
  from tracr_decompiler.generation.config import GenerationConfig
  from tracr_decompiler.program import source
  gen, compile_settings = cli_config.resolve(args, args.sections)
  cfg = _config(GenerationConfig, **gen, settings=_config(CompileSettings, **compile_settings))
  rng = np.random.default_rng(args.seed)
  for _ in range(args.n):
    s = sampler.sample_program(cfg, rng)
    print(source.to_source(s.program, header=False).rstrip())
    layout = ", ".join(f"{label.rsplit('_', 1)[0]}: layer {layer} {sub}"
                       for label, (layer, sub) in sorted(s.model.allocation.items()))
    print(f"# {s.model.num_layers} layers, {s.model.num_heads} heads, residual {len(s.model.residual_labels)}: {layout}\n")


# ---------------------------------------------------------------------------
# train


def _train_flags(p: argparse.ArgumentParser) -> None:
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.training.config import TrainConfig
  positive, count = Flag(type=_int_in(1)), Flag(type=_int_in(0))
  train = Section(TrainConfig, {
      "data": Flag(required=True, metavar="FOLDER"), "out": Flag(required=True, metavar="FOLDER"), "mode": Flag(),
      # Learning rates and the clip: finite and in range, so NaN or inf never train silently into NaN weights.
      "steps": positive, "batch_size": positive, "lr": Flag(type=_float_in(1e-12, 10)),
      "min_lr": Flag(type=_float_in(0, 10)), "warmup": count,
      "weight_decay": Flag(type=_float_in(0, 10)), "grad_clip": Flag(type=_float_in(1e-12, 1e6)), "eval_every": positive, "eval_examples": count, "seed": Flag(),
      "threads": positive, "bf16": Flag(), "limit": Flag(type=_int_in(1), metavar="N"),
      "max_minutes": Flag(type=_float_in(0, 1e7), metavar="MINUTES"), "data_workers": positive, "init_from": Flag(metavar="FOLDER"),
  }, "training (TrainConfig)")
  # The architecture's size; the rest of ModelConfig follows from the feature encoding. d_ff is 4 x d_model.
  model = Section(ModelConfig, {
      "input_mode": Flag(aliases=("--input",), choices=("graph", "flat"),
                         help="weight representation: graph (structure-aware nodes) or flat (the paper's "
                         "flatten-and-chunk baseline)"),
      "d_model": Flag(type=_int_in(1), help="width of the encoder and decoders (feed-forward: 4 x d_model)"),
      "n_encoder_layers": Flag(aliases=("--layers",), type=_int_in(1), help="encoder layers"),
      "n_heads": Flag(aliases=("--heads",), type=_int_in(1), help="attention heads (must divide d_model)"),
      "n_decoder_layers": Flag(type=_int_in(1), help="autoregressive decoder layers"),
      "dropout": Flag(type=_float_in(0, 0.99), help="dropout rate (0 by default: it is the largest CPU cost, and data is plentiful)"),
  }, "model size (ModelConfig)")
  sections = [train, model]
  cli_config.add_flags(p, sections)
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_train, sections=sections)


def cmd_train(args) -> None:
  from tracr_decompiler.dataset import reader
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.training import loop
  train, model = cli_config.resolve(args, args.sections)
  cfg = _config(loop.TrainConfig, **train)
  model_cfg = _config(ModelConfig, **model, d_ff=4 * model["d_model"])
  for d in cfg.data_dirs:
    if not reader.manifest(d)["splits"].get("train"):
      raise reader.DatasetError(f"{d} has no training programs; generate a larger dataset")
  if cfg.init_from is not None:  # a model folder that cannot be warm-started from fails here, before --out is made
    loop.warm_start(cfg.init_from)
  files.make_dirs(cfg.out)
  metrics = loop.train(cfg, model_cfg, progress=not args.quiet)
  print("final validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))


# ---------------------------------------------------------------------------
# compile / decompile / evaluate


def cmd_compile(args) -> None:
  from tracr_decompiler.compiling import compiler
  from tracr_decompiler.loading import model_io
  from tracr_decompiler.program import source
  settings_out = None
  if args.format == "transformerlens":
    from tracr_decompiler.loading import tl_files
    settings_out = args.settings_out or tl_files.settings_path_for(args.out)
  # A folder, a device, an input or the other output as --out is refused before any work.
  files.check_outputs({"--out": args.out, "--settings-out": settings_out}, [args.program], make_folders=("--out",))
  text = files.read_text(args.program, limits.MAX_SOURCE_BYTES, "RASP program")
  program = source.parse_source(text)
  settings = _config(compiler.CompileSettings, **cli_config.resolve(args, args.sections)[0])
  model = compiler.compile_program(program, settings)
  files.make_dirs(os.path.dirname(os.path.abspath(args.out)))
  written = args.out
  if args.format == "transformerlens":
    from tracr_decompiler.loading import tl_files
    written = " + ".join(tl_files.save(model, args.out, args.settings_out))
  else:
    model_io.save_model(model, args.out)
  print(f"compiled {len(program)} ops into {model.num_layers} layers "
        f"(residual {len(model.residual_labels)}) -> {written}")


def _load_model(args, path: str):
  """A model file named on the command line, with the TransformerLens flags (loading/reading.py)."""
  from tracr_decompiler.loading import reading, transformerlens
  flags = transformerlens.Reading(
      vocab=args.vocab, bos=args.bos, pad=args.pad, causal=args.causal, n_heads=args.n_heads,
      output_kind="numerical" if args.numerical_output else ("categorical" if args.output_values else None),
      output_values=args.output_values)
  return reading.load_file(path, args.format, args.settings, flags)


def _model_paths(named: list[str]) -> list[str]:
  """The model files named: a folder stands for its *.safetensors files (sorted; settings JSONs are read
  beside each), refused when it holds none."""
  paths: list[str] = []
  for name in named:
    if os.path.isdir(name):
      found = sorted(os.path.join(name, f) for f in os.listdir(name)
                     if f.endswith(".safetensors") and os.path.isfile(os.path.join(name, f)))
      if not found:
        raise UserError(f"{name} is a folder with no .safetensors model files")
      paths += found
    else:
      paths.append(name)
  return list(dict.fromkeys(paths))  # a file named twice is decompiled once


def _one_thread(torch_too: bool) -> None:
  """The CLI, not the library, picks the thread count for decompiling: one for BLAS, and for torch where
  it runs the torch model (AR mode, evaluate; NAR decompiling runs in NumPy and never imports torch).

  On this project's busy 2-core machine two torch threads made decompiling 3.6x
  slower than one (benchmarks/decompile_threads.py), and two BLAS threads made
  the NumPy NAR pass 8x slower inside `evaluate` (0.13 s against 0.017 s per
  model, 12 models); the model is small enough that one thread is also right
  on bigger machines.
  """
  from threadpoolctl import threadpool_limits
  threadpool_limits(limits=1)
  if torch_too:
    import torch
    torch.set_num_threads(1)


def cmd_decompile(args) -> None:
  from tracr_decompiler.loading import tl_files
  _check_beam(args.beam, args.mode)
  paths = _model_paths(args.model)
  if len(paths) > 1:
    _decompile_many(args, paths)
    return
  path = paths[0]
  # A folder, a device, an input or a missing folder as --report is refused before any work.
  files.check_outputs({"--report": args.report, "--circuit": args.circuit},
                      [path, args.settings, tl_files.settings_path_for(path), args.checkpoint])
  model = _load_model(args, path)  # a bad file is refused before torch is imported
  from tracr_decompiler.decompiling.decompile import decompile
  _one_thread(torch_too=args.mode == "ar")
  result = decompile(model, checkpoint_path=args.checkpoint, mode=args.mode, beam=args.beam,
                     verify=args.verify)
  _print_result(result, model)
  if args.circuit and result.circuit is not None:
    exact = "exact: the program is proved" if result.circuit.exact else "as far as the program is right"
    print(f"# circuit ({len(result.circuit.edges)} edges, {exact}): "
          f"{files.atomic_write_text(args.circuit, result.circuit.dumps())}")
  if args.report:
    from tracr_decompiler.visual import decompilation
    title = f"Decompilation of {os.path.basename(path)}"
    print(f"# report: {decompilation.write(result, model, args.report, title)}")


def _print_result(result, model) -> None:
  print(result.source, end="")
  status = f"verified ({result.status})" if result.verified else f"UNVERIFIED ({result.status})"
  print(f"# {status}: {result.verification} ({result.candidates_tried} candidates, {result.seconds:.2f} s)")
  for warning in result.warnings:
    print(f"# warning: {warning} (accuracy there is unmeasured)")
  if result.output_block and not model.residual_labels:  # read from weights alone: say where the output was
    print(f"# output: {result.output_block}")


def _decompile_many(args, paths: list[str]) -> None:
  """Each model in turn with one loaded decompiler; a model that cannot be read is one `# error:` line in
  its place and the rest still run; the exit status is 2 if any was refused."""
  for flag in ("report", "circuit", "settings"):
    if getattr(args, flag):
      raise UserError(f"--{flag} names one file, so it takes one model; {len(paths)} models were given")
  from tracr_decompiler.decompiling.decompile import decompile
  _one_thread(torch_too=args.mode == "ar")
  statuses: dict[str, int] = {}
  for path in paths:
    stopping.check()
    print(f"## {path}")
    try:
      model = _load_model(args, path)
      result = decompile(model, checkpoint_path=args.checkpoint, mode=args.mode, beam=args.beam,
                         verify=args.verify)
    except (errors.TracrDecompilerError, OSError) as e:  # as one model alone would be: one line, exit 2
      print(f"# error: {_one_line(e) if isinstance(e, errors.TracrDecompilerError) else e}")
      statuses["refused"] = statuses.get("refused", 0) + 1
      continue
    _print_result(result, model)
    statuses[result.status] = statuses.get(result.status, 0) + 1
  counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items(), key=lambda kv: -kv[1]))
  print(f"# {len(paths)} models: {counts}")
  if "refused" in statuses:
    raise ManyRefused(f"{statuses['refused']} of {len(paths)} models could not be decompiled (see their "
                      f"`# error:` lines)")


def cmd_evaluate(args) -> None:
  from tracr_decompiler.dataset import reader
  _check_beam(args.beam, "nar")
  # Refused before hours of evaluation, not after.
  files.check_outputs({"--report": args.report}, [args.data, args.checkpoint])
  _one_thread(torch_too=True)  # evaluation decodes autoregressively too
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
                                out=args.out, progress=not args.quiet, exclude=args.exclude,
                                skip_bad_rows=args.skip_bad_rows,
                                workers=min(args.workers, machine.available_cores()), ray_address=args.ray)
  skipped = summary["malformed_rows_skipped"]
  if skipped:
    print(f"warning: {len(skipped)} malformed row(s) left out (--skip-bad-rows), first: {skipped[0]}",
          file=sys.stderr)
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
  """argparse, with its rejections as one line like every other error (still exit status 2).

  `populate` adds a subcommand's flags when that subcommand is parsed or its help
  shown: flags derived from config dataclasses import their modules (tracr, ~1.5 s),
  which other commands and errors should not wait for.
  """

  def __init__(self, *args, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs):
    super().__init__(*args, **kwargs)
    self._populate = populate

  def populated(self) -> _Parser:
    if self._populate is not None:
      populate, self._populate = self._populate, None
      populate(self)
    return self

  def parse_known_args(self, args=None, namespace=None):
    return super(_Parser, self.populated()).parse_known_args(args, namespace)

  def format_help(self) -> str:
    return super(_Parser, self.populated()).format_help()

  def error(self, message: str):
    self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _sample_flags(p: argparse.ArgumentParser) -> None:
  sections = [_generation_section(), _settings_section()]
  p.add_argument("--n", type=int, default=3, help="programs to print (default: 3)")
  p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
  cli_config.add_flags(p, sections)
  p.set_defaults(func=cmd_sample, sections=sections)


def _compile_flags(p: argparse.ArgumentParser) -> None:
  sections = [_settings_section()]
  cli_config.add_flags(p, sections, config=False)
  p.set_defaults(func=cmd_compile, sections=sections)


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="tracr-decompiler", description=__doc__.splitlines()[0])
  parser.add_argument("--debug", action="store_true", help="print the full traceback of any error")
  sub = parser.add_subparsers(dest="command", required=True)
  # `--debug` is also accepted after the subcommand (SUPPRESS keeps it from resetting the top-level one).
  debug = _Parser(add_help=False)
  debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
  add = lambda name, **kwargs: sub.add_parser(name, parents=[debug], **kwargs)

  config = ("Settings are read, lowest first, from the defaults shown, --config FILE (a JSON object keyed by "
            "field name, e.g. {\"n\": 500, \"max_sops\": 6}) and the flags given.")
  add("generate", populate=_generate_flags, epilog=config,
      help="generate a dataset of (weights, program) pairs as Parquet shards")
  add("sample", populate=_sample_flags, help="print random programs and their compiled layout")
  add("train", populate=_train_flags, help="train a decompiler (resumes when --out holds a run)",
      description="Train a decompiler. Multi-GPU: torchrun --standalone --nproc_per_node=N "
      "-m tracr_decompiler.cli train ...", epilog=config.replace("{\"n\": 500, \"max_sops\": 6}",
                                                                  "a run's train_config.json"))

  p = add("compile", populate=_compile_flags, help="compile a RASP source file to a model file (safetensors)")
  p.add_argument("program", help="Python RASP source, as printed by `decompile` (parsed, never executed)")
  p.add_argument("--out", required=True, help="output .safetensors file")
  p.add_argument("--format", choices=("tracr-decompiler", "transformerlens"), default="tracr-decompiler",
                 help="transformerlens: a HookedTransformer state dict plus a settings/config JSON")
  p.add_argument("--settings-out", default=None, help="with --format transformerlens: the JSON's path "
                 "(default: --out with .json)")

  p = add("decompile", help="decompile a compiled model file into RASP source")
  p.add_argument("model", nargs="+", help="model file (ours or TransformerLens'); several files or a folder of "
                 "*.safetensors are decompiled in turn with one loaded decompiler")
  p.add_argument("--mode", choices=("nar", "ar"), default="nar")
  p.add_argument("--beam", type=_int_in(1, limits.MAX_BEAM), default=16,
                 help=f"candidates to try (1..{limits.MAX_BEAM}; 1..{limits.MAX_BEAM_AR} with --mode ar)")
  p.add_argument("--checkpoint", default=None, help="decompiler weights (default: the shipped model)")
  p.add_argument("--no-verify", dest="verify", action="store_false", help="skip checking against the model")
  p.add_argument("--report", default=None, metavar="HTML", help="also write a self-contained HTML report")
  p.add_argument("--circuit", default=None, metavar="JSON", help="also write the model's circuit: which head and "
                 "MLP computes which SOp and reads which (TransformerLens hook and auto-circuit edge names)")
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
  p.add_argument("--exclude", default=None, help="drop programs that are in these datasets (the training data; several comma-separated)")
  p.add_argument("--limit", type=_int_in(1), default=500)
  p.add_argument("--beam", type=_int_in(1, limits.MAX_BEAM), default=16)
  p.add_argument("--lib", action="store_true", help="evaluate on tracr's hand-written lib programs")
  p.add_argument("--out", default="reports/test")
  p.add_argument("--report", default=None, metavar="HTML", help="also write a self-contained HTML report")
  p.add_argument("--workers", type=_int_in(1), default=1,
                 help="score programs in this many processes (capped at the CPU count); the report is the same")
  p.add_argument("--ray", default=None, metavar="ADDRESS",
                 help="score programs as tasks on a Ray cluster (auto, ray://host:10001, ...)")
  p.add_argument("--skip-bad-rows", action="store_true",
                 help="leave out malformed dataset rows (counted and named on stderr) instead of stopping at the first")
  p.add_argument("--quiet", action="store_true")
  p.set_defaults(func=cmd_evaluate)

  return parser


def _one_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__


def _quiet_swallowed_stops(unraisable) -> None:
  """sys.unraisablehook while a command runs: a stop raised inside a gc callback or `__del__` is dropped there
  with an "Exception ignored" traceback; it is recorded (stopping.py) and raised again, so print nothing."""
  if not isinstance(unraisable.exc_value, stopping.Stopped):
    sys.__unraisablehook__(unraisable)


def own_process() -> None:
  """Settings for a process that is ours (the console script, `-m`, the demo); a library import leaves them be.

  tracr's compiler passes run without JAX; absl's warnings are off: tracr logs one for every
  `SequenceMap` of an SOp with itself (which the lib programs and generated programs hold), and
  dozens of them read as our errors. Errors still print."""
  import logging
  from tracr_decompiler.compiling import tracr_passes
  tracr_passes.defer_init()
  logging.getLogger("absl").setLevel(logging.ERROR)


def main(argv=None) -> int:
  """Runs one command and returns its exit status; `argv` None means sys.argv, and that this process is ours."""
  if argv is None:
    own_process()
  try:
    code = _main(argv)
  finally:
    if argv is None:
      # The process ends next, and its shutdown collections would trace every object still alive (~200k
      # once torch is imported): 0.4 s of a 1.5 s `decompile`. Frozen objects are skipped; files are
      # closed by now, and the memory goes back with the process. Not for an in-process caller (tests).
      gc.freeze()
  if argv is None and code > 128:
    # Stopped by a signal, maybe in the middle of JAX compiling: XLA's threads are left mid-way, and the
    # interpreter's shutdown then crashed in them (measured: SIGSEGV, or LLVM's abort "Cannot implicitly
    # convert a scalable size", in 2 of 13 stops at random moments). Everything of ours is unwound by now
    # (temp files removed, pools and Ray stopped, finished files renamed into place), so the process ends
    # here with the status it reported, past that shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  return code


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  # SIGTERM and SIGHUP unwind like Ctrl-C: `with Pool` terminates the workers, temp files are removed,
  # and finished shards or checkpoints (renamed into place) stay whole.
  in_main_thread = threading.current_thread() is threading.main_thread()  # signal() works only there
  previous = ({s: signal.signal(s, stopping.request) for s in (signal.SIGTERM, signal.SIGHUP)}
              if in_main_thread else {})
  hook, sys.unraisablehook = sys.unraisablehook, _quiet_swallowed_stops
  try:
    args.func(args)
    stopping.check()  # a stop swallowed after the last checkpoint: still answered as a stop
  except errors.TracrDecompilerError as e:
    _report(args, e, _one_line(e))
    return 2
  except OSError as e:  # the environment, not us: disk full, permissions, a path that vanished
    where = f"{e.filename}: " if e.filename else ""
    _report(args, e, f"{where}{e.strerror or _one_line(e)}")
    return 2
  except KeyboardInterrupt as e:
    signum = e.signum if isinstance(e, stopping.Stopped) else signal.SIGINT
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
    sys.unraisablehook = hook
    stopping.handled()
  return 0


def _report(args, e: BaseException, line: str) -> None:
  if args.debug:
    traceback.print_exception(e, file=sys.stderr)
  print(f"error: {line}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(main())
