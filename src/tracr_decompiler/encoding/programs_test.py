"""Training targets for programs with table functions: structure is learned, a table's fn has no target."""

import numpy as np

from tracr_decompiler.compiling import compiler
from tracr_decompiler.dataset import rows
from tracr_decompiler.encoding import programs, weights
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.program import tables
from tracr_decompiler.training import data


def test_table_lines_have_no_fn_target_and_training_reads_them():
  rng = np.random.default_rng(12)
  seen_tables = 0
  for _ in range(6):
    sample = sampler.sample_program(GenerationConfig(table_fraction=0.8, max_sops=4), rng)
    model = compiler.compile_program(sample.program, sample.model.settings)
    graph = weights.encode_model(model)
    try:
      t = programs.targets(graph, sample.program, model.residual_labels)
    except programs.AlignmentError:
      continue
    is_table = {programs.FN_INDEX.get(line.fn) is None for line in sample.program.lines}
    assert (t["fn"][2:] == programs.IGNORE).sum() == sum(tables.parse(l.fn) is not None for l in sample.program.lines)
    seq = programs.ar_sequence(t)
    fn_tokens = seq[2:-1:programs.TOKENS_PER_LINE]  # op, enc, fn, args...: every line's fn token
    assert (fn_tokens == programs.NONE).sum() == (t["fn"][2:] == programs.IGNORE).sum()
    seen_tables += True in is_table
    example = data.example_from_row(rows.to_row(sample.program, model), 0, ModelConfig())
    assert example is not None and (example.fn == programs.IGNORE).sum() >= (t["fn"][2:] == programs.IGNORE).sum()
  assert seen_tables >= 2


def test_validation_metrics_run_on_table_programs():
  # Teacher-forced validation rebuilt the true program from fields; a table's fn has none (it crashed).
  import torch
  from tracr_decompiler.decompiling.decompile import load_decompiler  # the shipped model
  from tracr_decompiler.training import loop
  rng = np.random.default_rng(21)
  decompiler = load_decompiler()
  examples = []
  while len(examples) < 4:
    sample = sampler.sample_program(GenerationConfig(table_fraction=0.9, max_sops=3), rng)
    if not any(tables.parse(line.fn) for line in sample.program.lines):
      continue
    example = data.example_from_row(rows.to_row(sample.program, sample.model), len(examples), decompiler.cfg)
    if example is not None:
      examples.append(example)
  metrics = loop.evaluate_batches(decompiler, examples, torch.device("cpu"), "both", ar_limit=4)
  assert 0.0 <= metrics["nar_exact"] <= 1.0 and "ar_token_acc" in metrics
  assert not decompiler.training  # the shared shipped model is left in eval mode (it was left training)
