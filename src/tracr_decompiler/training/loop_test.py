"""A tiny training run: loss goes down, checkpoints round-trip, runs resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.dataset import writer
from tracr_decompiler.decompiling.decompile import decompile, load_decompiler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.training import checkpoint, data, loop

TINY = ModelConfig(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp("data")
  writer.build_dataset(writer.DatasetConfig(n=16, out=str(out), workers=1, seed=3, shard_size=8,
                                            val_percent=0, test_percent=0,
                                            generation=GenerationConfig(max_sops=3)), progress=False)
  return str(out)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
  out = tmp_path_factory.mktemp("run")
  cfg = loop.TrainConfig(data=dataset, out=str(out), steps=60, batch_size=8, lr=3e-3, warmup=5,
                         eval_every=30, eval_examples=8, bf16=False)
  loop.train(cfg, TINY, progress=False)
  return out


def test_loss_goes_down(run):
  import csv
  rows = list(csv.DictReader((run / "metrics.csv").open()))
  assert float(rows[-1]["nar_loss"]) < float(rows[0]["nar_loss"])
  assert (run / "training.png").exists()


def test_loss_decreases_from_initialisation(dataset, tmp_path):
  examples = data.prepare(dataset, "train", tmp_path, progress=False)
  batch = data.collate(examples[:8])
  torch.manual_seed(0)
  model = __import__("tracr_decompiler.model.model", fromlist=["Decompiler"]).Decompiler(TINY)
  opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
  first = model(batch)["loss"].item()
  for _ in range(40):
    loss = model(batch)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
  assert model(batch)["loss"].item() < 0.5 * first


def test_save_load_gives_identical_predictions(run, tmp_path):
  model = checkpoint.load_decompiler(run)
  checkpoint.save_pretrained(model, tmp_path / "copy")
  again = checkpoint.load_decompiler(tmp_path / "copy")
  examples = data.prepare(json.loads((run / "train_config.json").read_text())["data"], "train", tmp_path,
                          progress=False)
  batch = data.collate(examples[:4])
  with torch.no_grad():
    a = model.nar(*model.encode(batch), batch)
    b = again.nar(*again.encode(batch), batch)
  for k in a:
    assert torch.equal(a[k], b[k])


def test_decompiled_program_does_not_depend_on_names(run):
  program = test_cases.PROGRAMS["mixed"]
  base = decompile(compiler.compile_program(program), checkpoint_path=str(run), verify=False).source
  for names in ({l.out: f"zz{i}" for i, l in enumerate(program.lines)},
                {l.out: f"a_{9 - i}" for i, l in enumerate(program.lines)}):
    model = compiler.compile_program(program, names=names)
    assert decompile(model, checkpoint_path=str(run), verify=False).source == base


def test_resume_after_kill_9(dataset, tmp_path):
  out = tmp_path / "resume"
  cmd = [sys.executable, "-m", "tracr_decompiler.cli", "train", "--data", dataset, "--out", str(out),
         "--steps", "400", "--eval-every", "5", "--batch-size", "4", "--d-model", "32", "--layers", "1",
         "--heads", "2", "--quiet", "--threads", "1"]
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
  state = out / "last" / "trainer_state.json"
  deadline = time.time() + 120
  while time.time() < deadline and not state.exists():
    time.sleep(0.2)
  time.sleep(1.0)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  step = json.loads(state.read_text())["step"]
  assert 0 < step < 400
  subprocess.run(cmd[:cmd.index("400")] + ["%d" % (step + 5)] + cmd[cmd.index("400") + 1:], check=True,
                 capture_output=True)
  assert json.loads(state.read_text())["step"] == step + 5


def test_a_flat_input_run_trains_and_its_checkpoint_decompiles(dataset, tmp_path):
  """The input representation is one seam (ModelConfig.input_mode): a flat run works end to end."""
  flat = ModelConfig(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64, input_mode="flat",
                     flat_chunk=64, flat_max_tokens=64)
  cfg = loop.TrainConfig(data=dataset, out=str(tmp_path / "run"), steps=4, batch_size=4, warmup=1,
                         eval_every=4, eval_examples=4, bf16=False)
  loop.train(cfg, flat, progress=False)
  examples = data.prepare(dataset, "train", tmp_path / "cache", progress=False, model_cfg=flat)
  assert examples and len(examples[0].flat_val) > 0
  graph_only = data.prepare(dataset, "train", tmp_path / "cache", progress=False)
  assert len(graph_only[0].flat_val) == 0  # graph runs do not pay for the baseline's input
  result = decompile(compiler.compile_program(test_cases.PROGRAMS["frac_prevs"]),
                     checkpoint_path=str(tmp_path / "run"), beam=2)
  assert result.source  # a guess from an untrained model, but read through the flat path without error


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(dataset, tmp_path):
  """The next batch is collated while the step runs; a resume must still see batch `step`, not a neighbour."""
  from safetensors.torch import load_file
  cfg = dict(data=dataset, steps=6, batch_size=4, lr=3e-3, warmup=2, eval_every=3, eval_examples=0, bf16=False,
             threads=1)
  loop.train(loop.TrainConfig(out=str(tmp_path / "straight"), **cfg), TINY, progress=False)
  loop.train(loop.TrainConfig(out=str(tmp_path / "resumed"), **{**cfg, "steps": 3}), TINY, progress=False)
  loop.train(loop.TrainConfig(out=str(tmp_path / "resumed"), **cfg), TINY, progress=False)
  a = load_file(tmp_path / "straight" / "last" / "model.safetensors")
  b = load_file(tmp_path / "resumed" / "last" / "model.safetensors")
  assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_thread_candidates_double_up_to_the_cores():
  assert loop.thread_candidates(1) == [1]
  assert loop.thread_candidates(2) == [1, 2]
  assert loop.thread_candidates(6) == [1, 2, 4, 6]
  assert loop.thread_candidates(16) == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("fastest", [1, 2])
def test_pick_threads_keeps_the_fastest_count(fastest):
  before = torch.get_num_threads()
  try:
    slow = lambda: time.sleep(0.0 if torch.get_num_threads() == fastest else 0.05)
    best, seconds = loop.pick_threads(slow, [1, 2])
    assert best == fastest and torch.get_num_threads() == fastest
    assert seconds[fastest] < seconds[3 - fastest]
  finally:
    torch.set_num_threads(before)


def test_train_gives_the_callers_thread_count_back(dataset, tmp_path):
  before = torch.get_num_threads()
  try:
    torch.set_num_threads(2)
    cfg = loop.TrainConfig(data=dataset, out=str(tmp_path / "run"), steps=2, batch_size=4, warmup=1, eval_every=2,
                           eval_examples=0, threads=1)
    loop.train(cfg, TINY, progress=False)
    assert torch.get_num_threads() == 2
  finally:
    torch.set_num_threads(before)


def test_bf16_follows_the_flag_and_otherwise_the_device():
  cpu = torch.device("cpu")
  assert loop.use_bf16(True, cpu) and not loop.use_bf16(False, cpu)
  assert loop.use_bf16(None, cpu) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
  with pytest.raises(ValueError):
    loop.TrainConfig(threads=0)


def test_the_train_command_runs_under_torchrun(dataset, tmp_path):
  """Two CPU ranks (gloo): DDP with the parameters a mode leaves unused, rank 0 alone logging and saving."""
  out = tmp_path / "ddp"
  cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
         "tracr_decompiler.cli", "train", "--data", dataset, "--out", str(out), "--steps", "4", "--eval-every", "2",
         "--eval-examples", "4", "--batch-size", "4", "--d-model", "32", "--layers", "1", "--heads", "2",
         "--mode", "nar", "--quiet"]
  subprocess.run(cmd, check=True, capture_output=True, timeout=300)
  assert json.loads((out / "last" / "trainer_state.json").read_text())["step"] == 4


def test_several_dataset_parts_train_together_and_the_model_records_each(dataset, tmp_path):
  mixed = tmp_path / "mixed"
  writer.build_dataset(writer.DatasetConfig(n=8, out=str(mixed), workers=1, seed=4, shard_size=8,
                                            val_percent=0, test_percent=0,
                                            generation=GenerationConfig(max_sops=3, mixed_settings=True)),
                       progress=False)
  both = data.prepare(dataset, "train", tmp_path / "c", progress=False) + data.prepare(
      str(mixed), "train", tmp_path / "c", progress=False)
  cfg = loop.TrainConfig(data=f"{dataset},{mixed}", out=str(tmp_path / "run"), steps=4, batch_size=len(both),
                         warmup=1, eval_every=4, eval_examples=4, bf16=False)
  loop.train(cfg, TINY, progress=False)
  decompiler = load_decompiler(tmp_path / "run" / "last")
  parts = decompiler.trained_on["parts"]
  assert [p["covers"]["vocab_size"] for p in parts] == [[5, 5], [2, 16]]  # the fixed world, then the mixed ranges
  assert [p["covers"]["n_ops"] for p in parts] == [[2, 3], [2, 3]]


def test_a_warm_start_begins_from_the_given_models_weights(run, dataset, tmp_path):
  """--init-from: the model's architecture and weights, and its earlier parts kept in what it was trained on."""
  from tracr_decompiler.model import pretrained
  with_val = tmp_path / "data"  # the fixture's dataset has no validation split; the curve's first row needs one
  writer.build_dataset(writer.DatasetConfig(n=16, out=str(with_val), workers=1, seed=4, shard_size=8,
                                            val_percent=50, test_percent=0,
                                            generation=GenerationConfig(max_sops=3)), progress=False)
  cfg = loop.TrainConfig(data=f"{dataset},{with_val}", out=str(tmp_path / "warm"), steps=1, batch_size=8, lr=0.0, min_lr=0.0,
                         warmup=1, weight_decay=0.0, eval_every=1, eval_examples=8, bf16=False,
                         init_from=str(run))
  loop.train(cfg, ModelConfig(), progress=False)  # the default size is replaced by the init model's (TINY)
  before = pretrained.load_tensors(run / "last" / "model.safetensors")
  after = pretrained.load_tensors(tmp_path / "warm" / "last" / "model.safetensors")
  assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)  # lr 0
  warm = json.loads((tmp_path / "warm" / "last" / "config.json").read_text())
  assert warm["model_config"]["d_model"] == TINY.d_model
  assert len(warm["trained_on"]["parts"]) == 1  # the init's part and the new one are drawn alike: one entry
  import csv  # the curve begins with the given model on this run's validation set, before any step
  rows = list(csv.DictReader((tmp_path / "warm" / "metrics.csv").open()))
  assert [int(r["step"]) for r in rows] == [0, 1] and rows[0]["loss"] == "" and rows[1]["loss"] != ""
  assert all(rows[0][k] == rows[1][k] != "" for k in ("field_acc", "nar_exact", "ar_exact"))  # lr 0: same weights
  assert (tmp_path / "warm" / "training.png").exists()


def test_a_warm_start_from_other_features_is_refused(run, dataset, tmp_path):
  import shutil
  init = tmp_path / "old"
  shutil.copytree(run / "last", init)
  config = json.loads((init / "config.json").read_text())
  config["trained_on"]["feature_version"] = -1
  (init / "config.json").write_text(json.dumps(config))
  cfg = loop.TrainConfig(data=dataset, out=str(tmp_path / "warm"), steps=1, batch_size=8, eval_examples=8,
                         bf16=False, init_from=str(init))
  with pytest.raises(checkpoint.CheckpointError, match="features v-1"):
    loop.train(cfg, TINY, progress=False)
