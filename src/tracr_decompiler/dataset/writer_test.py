"""Datasets: deterministic from the seed, resumable after kill -9, readable by standard tools."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tracr_decompiler import processes_testing as processes
from tracr_decompiler.dataset import reader, rows, writer
from tracr_decompiler.generation.config import GenerationConfig

SMALL = GenerationConfig(max_sops=4)


def _cfg(out, **kw):
  return writer.DatasetConfig(**{"n": 24, "out": str(out), "workers": 1, "seed": 7, "shard_size": 6,
                                 "generation": SMALL, **kw})


def _cli(out, n=24, seed=7):
  return [sys.executable, "-m", "tracr_decompiler.cli", "generate", "--n", str(n), "--out", str(out),
          "--workers", "2", "--seed", str(seed), "--shard-size", "6", "--max-sops", "4", "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  out = tmp_path_factory.mktemp("ref")
  return writer.build_dataset(_cfg(out), progress=False), out


def test_manifest_and_rows(reference):
  manifest, out = reference
  assert manifest["num_programs"] + manifest["duplicates_dropped"] == 24
  df = pd.read_parquet(out / "data")  # plain pandas reads the shards
  assert len(df) == manifest["num_programs"]
  assert set(df.split) <= {"train", "val", "test"}
  assert df.id.is_unique
  for split in ("train", "val", "test"):  # the id column alone, split by split
    assert reader.split_ids(out, split) == list(df[df.split == split].id)
  row = reader.read_split(out)[0]
  model, program = rows.model_from_row(row), rows.program_from_row(row)
  from tracr_decompiler.compiling import compiler
  again = compiler.compile_program(program, model.settings)
  for module, params in again.params.items():
    for name, value in params.items():
      assert (value == model.params[module][name]).all()


def test_same_seed_same_hash_in_other_processes(reference, tmp_path):
  manifest, _ = reference
  subprocess.run(_cli(tmp_path / "b"), check=True, capture_output=True)
  assert json.loads((tmp_path / "b" / "manifest.json").read_text())["content_hash"] == manifest["content_hash"]


def test_resume_after_kill_9(reference, tmp_path):
  manifest, _ = reference
  out = tmp_path / "killed"
  proc = subprocess.Popen(_cli(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.time() + 120
  while time.time() < deadline and not list((out / "data").glob("shard-*.parquet")):
    time.sleep(0.2)
  os.killpg(proc.pid, signal.SIGKILL)  # the workers too
  proc.wait()
  assert not (out / "manifest.json").exists()
  subprocess.run(_cli(out), check=True, capture_output=True)
  again = json.loads((out / "manifest.json").read_text())
  assert again["content_hash"] == manifest["content_hash"]
  assert again["num_programs"] == manifest["num_programs"]


def test_other_settings_in_the_same_folder_are_refused(reference):
  _, out = reference
  with pytest.raises(ValueError, match="other settings"):
    writer.build_dataset(_cfg(out, seed=8), progress=False)


def test_ray_path_gives_the_same_dataset(reference, tmp_path):
  ray = pytest.importorskip("ray")
  manifest, _ = reference
  ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
  try:
    got = writer.build_dataset(_cfg(tmp_path / "ray", ray_address="auto"), progress=False)
  finally:
    ray.shutdown()
  assert got["content_hash"] == manifest["content_hash"]


def test_a_dead_worker_is_reported_in_one_line_not_waited_for(tmp_path):
  # multiprocessing.Pool lost a dead worker's shard and waited forever (seed 1's "stalled" shards).
  out = tmp_path / "d"
  proc = subprocess.Popen(_cli(out, n=400), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and len(workers) < 2:
      workers = {p for p in processes.descendants(proc.pid)
                 if "spawn_main" in open(f"/proc/{p}/cmdline").read() and "tracker_fd" in open(f"/proc/{p}/cmdline").read()
                 and "resource_tracker" not in open(f"/proc/{p}/cmdline").read()}
      time.sleep(0.2)
    time.sleep(3)  # let them start drawing
    os.kill(min(workers), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 2, err
  assert len(err.strip().splitlines()) == 1 and "worker died" in err, err
