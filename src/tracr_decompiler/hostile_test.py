"""Hostile files, careless flags and faults (issue 9): bounded, one clean line, nothing lost.

One test (or parametrised family) per class of the issue: the error hierarchy,
special files, outputs, memory bombs, malformed metadata, flags, deep sources,
signals and corrupt checkpoints, plus a property test over malformed
safetensors headers and metadata.
"""

import json
import os
import pathlib
import random
import resource
import signal
import stat
import struct
import subprocess
import sys
import time

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from tracr_decompiler import cli, errors, files, limits, test_cases
from tracr_decompiler import processes_testing as processes
from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import model_io
from tracr_decompiler.program import source

SOURCE = source.to_source(test_cases.PROGRAMS["frac_prevs"])


def _cli(capsys, *args) -> tuple[int | str | None, str]:
  """Runs the CLI in-process; argparse rejections (SystemExit) count as their exit status."""
  code: int | str | None  # SystemExit's code may be any of these
  try:
    code = cli.main([str(a) for a in args])
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr().err.strip()


def _assert_one_line(code: int, err: str, fragment: str = "") -> None:
  assert code == 2, err
  assert "Traceback" not in err and "internal error" not in err
  assert len(err.splitlines()) == 1 and err.startswith("error: "), err
  assert fragment in err, err


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("model") / "good.safetensors"
  model_io.save_model(compiler.compile_program(test_cases.PROGRAMS["frac_prevs"]), str(path))
  return path


def _split(path: pathlib.Path) -> tuple[dict, dict, bytes]:
  """(tensor header, our metadata, data) of a model file."""
  raw = path.read_bytes()
  n = int.from_bytes(raw[:8], "little")
  header = json.loads(raw[8:8 + n])
  meta = json.loads(header.pop("__metadata__")[model_io.META_KEY])
  return header, meta, raw[8 + n:]


def _join(header: dict, meta, data: bytes, path: pathlib.Path) -> pathlib.Path:
  text = json.dumps({"__metadata__": {model_io.META_KEY: json.dumps(meta)}, **header}).encode()
  path.write_bytes(struct.pack("<Q", len(text)) + text + data)
  return path


# ---------------------------------------------------------------------------
# the error hierarchy


def test_every_stage_error_is_a_user_error_and_still_a_value_error():
  from tracr_decompiler.dataset import reader
  from tracr_decompiler.decompiling import decompile
  from tracr_decompiler.encoding import nodes
  from tracr_decompiler.program import evaluate, ir
  from tracr_decompiler.training import checkpoint
  for cls in (model_io.ModelFileError, compiler.CompileError, decompile.DecompileError, checkpoint.CheckpointError,
              ir.ProgramError, evaluate.EvaluationError, cli.UserError, nodes.NotTracrError, reader.DatasetError,
              errors.UsageError, errors.FileError):
    assert issubclass(cls, errors.TracrDecompilerError) and issubclass(cls, ValueError), cls


def test_a_bug_is_an_internal_error_with_a_debug_hint(monkeypatch, capsys, tmp_path):
  def broken(args):
    raise KeyError("oops")
  monkeypatch.setattr(cli, "cmd_compile", broken)
  (tmp_path / "p.py").write_text(SOURCE)
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path / "m")
  assert code == 1 and "internal error (KeyError" in err and "--debug" in err and "Traceback" not in err
  code, err = _cli(capsys, "--debug", "compile", tmp_path / "p.py", "--out", tmp_path / "m")
  assert code == 1 and "Traceback" in err and "KeyError" in err
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path / "m", "--debug")
  assert code == 1 and "Traceback" in err


def test_a_plain_value_error_from_our_code_is_not_reported_as_bad_input(monkeypatch, capsys, good_model):
  monkeypatch.setattr(model_io, "load_model", lambda path: (_ for _ in ()).throw(ValueError("bug")))
  code, err = _cli(capsys, "decompile", good_model)
  assert code == 1 and "internal error" in err


# ---------------------------------------------------------------------------
# special files and outputs


@pytest.mark.parametrize("command", ["decompile", "compile"])
def test_a_fifo_as_input_is_refused_without_blocking(tmp_path, command):
  fifo = tmp_path / "fifo"
  os.mkfifo(fifo)
  args = [str(fifo)] + (["--out", str(tmp_path / "m.safetensors")] if command == "compile" else [])
  r = subprocess.run([sys.executable, "-m", "tracr_decompiler.cli", command, *args], capture_output=True, text=True,
                     timeout=120)  # a hang would block forever; the timeout only turns it into a failure
  assert r.returncode == 2 and "FIFO" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_fifo_or_device_as_out_is_never_replaced(tmp_path, capsys):
  (tmp_path / "p.py").write_text(SOURCE)
  fifo = tmp_path / "fifo"
  os.mkfifo(fifo)
  for target in (fifo, pathlib.Path("/dev/null")):
    code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", target)
    _assert_one_line(code, err, "refusing to replace")
  assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_directory_as_out_is_refused_by_name(tmp_path, capsys):
  (tmp_path / "p.py").write_text(SOURCE)
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path)
  _assert_one_line(code, err, f"{tmp_path} is a directory")


def test_a_symlink_as_out_is_written_through(tmp_path, capsys):
  (tmp_path / "p.py").write_text(SOURCE)
  (tmp_path / "real.safetensors").write_bytes(b"old")
  (tmp_path / "link.safetensors").symlink_to("real.safetensors")
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path / "link.safetensors")
  assert code == 0, err
  assert (tmp_path / "link.safetensors").is_symlink()
  assert model_io.load_model(str(tmp_path / "real.safetensors")).num_layers == 2
  assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _tl_export(tmp_path, capsys) -> pathlib.Path:
  (tmp_path / "p.py").write_text(SOURCE)
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--format", "transformerlens", "--out", tmp_path / "m.safetensors")
  assert code == 0, err
  return tmp_path / "m.safetensors"


@pytest.mark.parametrize("case", ["report_is_model", "report_is_settings", "report_is_linked_model",
                                  "out_is_source", "settings_out_is_out", "report_in_missing_folder"])
def test_an_output_never_destroys_an_input_and_is_refused_before_any_work(tmp_path, capsys, case):
  model = _tl_export(tmp_path, capsys)
  (tmp_path / "link.html").symlink_to(model)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
  args = {"report_is_model": ("decompile", model, "--report", model),
          "report_is_settings": ("decompile", model, "--report", tmp_path / "m.json"),
          "report_is_linked_model": ("decompile", model, "--report", tmp_path / "link.html"),
          "out_is_source": ("compile", tmp_path / "p.py", "--out", tmp_path / "p.py"),
          "settings_out_is_out": ("compile", tmp_path / "p.py", "--format", "transformerlens",
                                  "--out", tmp_path / "n.safetensors", "--settings-out", tmp_path / "n.safetensors"),
          "report_in_missing_folder": ("decompile", model, "--report", tmp_path / "nodir" / "r.html")}[case]
  code, err = _cli(capsys, *args)
  _assert_one_line(code, err, {"settings_out_is_out": "also given as", "report_in_missing_folder": "does not exist"}
                   .get(case, "one of this command's inputs"))
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
  assert not (tmp_path / "n.safetensors").exists()


@pytest.mark.parametrize("case", ["settings vocab", "settings input_encoding", "--vocab flag"])
def test_settings_that_disagree_with_each_other_are_one_clean_line(tmp_path, capsys, case):
  model = _tl_export(tmp_path, capsys)
  doc = json.loads((tmp_path / "m.json").read_text())
  if case == "settings vocab":
    doc["vocab"] = doc["vocab"][:-1] + [99]
  elif case == "settings input_encoding":
    doc["input_encoding"] = [[t + 10 if isinstance(t, int) else t, i] for t, i in doc["input_encoding"]]
  (tmp_path / "m.json").write_text(json.dumps(doc))
  flags = ["--vocab", "0,1,2,3,7"] if case == "--vocab flag" else []
  code, err = _cli(capsys, "decompile", model, "--no-verify", *flags)
  _assert_one_line(code, err, "is not the input encoding's tokens")


def test_a_lone_surrogate_token_still_gets_its_report(tmp_path, capsys):
  model = _tl_export(tmp_path, capsys)
  doc = json.loads((tmp_path / "m.json").read_text())
  first = doc["vocab"][0]
  doc["vocab"] = ["\ud800" if t == first else t for t in doc["vocab"]]
  doc["input_encoding"] = [["\ud800" if t == first else t, i] for t, i in doc["input_encoding"]]
  (tmp_path / "m.json").write_text(json.dumps(doc))
  code, err = _cli(capsys, "decompile", model, "--no-verify", "--report", tmp_path / "r.html")
  assert code == 0, err
  assert "\\ud800" in (tmp_path / "r.html").read_text()


def test_a_legal_long_name_gives_a_legal_temporary_name(tmp_path):
  name = "r" * 245 + ".html"  # 250 bytes: legal; the temporary name once passed 255 bytes
  assert files.atomic_write_text(tmp_path / name, "x") == str(tmp_path / name)
  assert (tmp_path / name).read_text() == "x" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_respect_the_umask(tmp_path, mask):
  old = os.umask(mask)
  try:
    files.atomic_write_text(tmp_path / "x.txt", "hi")
  finally:
    os.umask(old)
  assert stat.S_IMODE(os.stat(tmp_path / "x.txt").st_mode) == 0o666 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
  (tmp_path / "x.txt").write_text("old")
  def fail(tmp):
    pathlib.Path(tmp).write_text("half")
    raise OSError(28, "No space left on device")
  with pytest.raises(errors.FileError, match="No space left"):
    files.atomic_write(tmp_path / "x.txt", fail)
  assert (tmp_path / "x.txt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("args", [["generate", "--n", "0"], ["generate", "--n", "5", "--workers", "0"],
                                  ["generate", "--n", "5", "--min-sops", "5", "--max-sops", "2"],
                                  ["generate", "--n", "5", "--max-seq-len", "0"],
                                  ["train", "--data", "MISSING"], ["train", "--data", "EMPTY"],
                                  *[["train", "--data", "EMPTY", flag, value] for flag, value in (
                                      ("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--grad-clip", "nan"),
                                      ("--min-lr", "-inf"), ("--weight-decay", "nan"), ("--max-minutes", "nan"))],
                                  *[["train", "--data", "EMPTY", "--config", doc] for doc in (
                                      '{"lr": NaN}', '{"lr": 1e400}', '{"lr": -1}', '{"grad_clip": Infinity}',
                                      '{"lr": 1' + "0" * 400 + '}')]])
def test_rejected_arguments_create_no_output_folder(tmp_path, capsys, args):
  empty = tmp_path / "empty"
  empty.mkdir()
  from tracr_decompiler.dataset import schema
  (empty / "manifest.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION, "shards": [],
                                                   "splits": {"train": 0, "val": 0, "test": 0}}))
  key = None
  if "--config" in args:  # a config file's values pass the flags' checks
    key = args[-1].split('"')[1]
    (tmp_path / "c.json").write_text(args[-1])
    args = args[:-1] + [str(tmp_path / "c.json")]
  args = [{"MISSING": str(tmp_path / "nothing"), "EMPTY": str(empty)}.get(a, a) for a in args]
  code, err = _cli(capsys, *args, "--out", tmp_path / "out")
  assert code == 2 and "Traceback" not in err and "internal error" not in err, err
  assert len(err.splitlines()) == 1, err
  flag = next((a for a in args if a.startswith("--") and a not in ("--data", "--n", "--config")), None)
  if args[0] == "train" and flag:  # refused for the value itself, not for the empty data behind it
    assert flag in err, err
  elif key:
    assert f"{key}:" in err, err
  assert not (tmp_path / "out").exists()


def test_evaluate_on_an_empty_split_is_a_clear_error(tmp_path, capsys):
  from tracr_decompiler.dataset import schema
  (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION, "shards": []}))
  code, err = _cli(capsys, "evaluate", "--data", tmp_path, "--split", "test", "--out", tmp_path / "r")
  _assert_one_line(code, err, "is empty")
  assert "nan" not in err


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> pathlib.Path:
  folder = tmp_path_factory.mktemp("data") / "d"
  assert cli.main(["generate", "--n", "4", "--out", str(folder), "--workers", "1", "--seed", "0", "--quiet"]) == 0
  return folder


def _corrupt_first_row(folder: pathlib.Path, change) -> None:
  import pyarrow.parquet as pq
  from tracr_decompiler.dataset import schema
  shard = folder / json.loads((folder / "manifest.json").read_text())["shards"][0]
  rows = pq.read_table(shard).to_pylist()
  table = change(rows)
  if table is not None:
    pq.write_table(table if not isinstance(table, list) else __import__("pyarrow").Table.from_pylist(
        table, schema=schema.SCHEMA), shard)


def _row_with(**fields):
  def change(rows):
    rows[0].update(fields)
    return rows
  return change


def _row_weight_with(**fields):
  def change(rows):
    rows[0]["weights"][0].update(fields)
    return rows
  return change


@pytest.mark.parametrize("case,change", [
    ("num_layers 10^9", _row_with(num_layers=10 ** 9)),
    ("shape 2^30 x 2^30", _row_weight_with(shape=[1 << 30, 1 << 30])),
    ("index 10^9", _row_weight_with(rows=[10 ** 9], cols=[0], values=[1.0])),
    ("negative index", _row_weight_with(rows=[-1], cols=[0], values=[1.0])),
    ("bad settings JSON", _row_with(settings="{not json")),
    ("settings of the wrong type", _row_with(settings='{"vocab": 5}')),
    ("input encoding of the wrong type", _row_with(input_encoding='"abc"')),
    ("truncated shard", lambda rows: None),
    ("dropped column", lambda rows: __import__("pyarrow").Table.from_pylist(
        [{k: v for k, v in r.items() if k != "weights"} for r in rows])),
])
def test_a_malformed_dataset_row_is_one_clean_line(small_dataset, tmp_path, capsys, case, change):
  import shutil
  folder = tmp_path / "d"
  shutil.copytree(small_dataset, folder)
  _corrupt_first_row(folder, change)
  if case == "truncated shard":
    shard = next((folder / "data").glob("shard-*.parquet"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
  code, err = _cli(capsys, "evaluate", "--data", folder, "--split", "all", "--limit", "1", "--beam", "1",
                   "--out", tmp_path / "r", "--quiet")
  _assert_one_line(code, err, str(folder))
  assert ("row 0" in err) or case in ("truncated shard", "dropped column"), err


def test_skip_bad_rows_leaves_malformed_rows_out_with_a_count(small_dataset, tmp_path, capsys):
  import shutil
  folder = tmp_path / "d"
  shutil.copytree(small_dataset, folder)
  _corrupt_first_row(folder, _row_with(num_layers=10 ** 9))
  args = ["evaluate", "--data", folder, "--split", "all", "--beam", "1", "--quiet", "--skip-bad-rows"]
  for run in ("featurised", "again"):  # a part with a skipped row is not cached: the second run says so too
    code, err = _cli(capsys, *args, "--out", tmp_path / "r")
    assert code == 0, err
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("warning: 1 malformed row")]
    assert len(err.splitlines()) == 1 and "row 0" in err and str(folder) in err, (run, err)
  summary = json.loads((tmp_path / "r" / "report.json").read_text())
  assert len(summary["malformed_rows_skipped"]) == 1
  assert summary["programs"] == 3  # the three other rows are all evaluated


# ---------------------------------------------------------------------------
# memory bombs


_PEAK = """
import resource, sys
from tracr_decompiler.loading import model_io
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
  model_io.load_model(sys.argv[1])
  print("LOADED")
except model_io.ModelFileError as e:
  print("REFUSED", e)
print("GROWTH_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _load_in_subprocess(path: pathlib.Path) -> tuple[str, int]:
  r = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  growth = int(r.stdout.split("GROWTH_KB")[1])
  return r.stdout, growth


def test_sparse_file_bomb_is_refused_without_reading_it(good_model, tmp_path):
  bomb = tmp_path / "bomb.safetensors"
  bomb.write_bytes(good_model.read_bytes())
  os.truncate(bomb, 1 << 30)  # 1 GiB apparent, a few KB on disk
  out, growth = _load_in_subprocess(bomb)
  assert "REFUSED" in out and "claim" in out
  assert growth < 4 * 1024  # KB: the header, not the file


def test_a_header_claiming_one_gib_of_tensors_is_refused_without_allocating(good_model, tmp_path):
  header, meta, data = _split(good_model)
  name = "transformer/layer_0/mlp/linear_1/w"
  d = header[name]["shape"][0]
  hidden = (1 << 30) // (4 * d)  # a 1 GiB MLP, offsets consistent with a sparse file of that size
  start = max(e["data_offsets"][1] for e in header.values())
  header[name] = {"dtype": "F32", "shape": [d, hidden], "data_offsets": [start, start + 4 * d * hidden]}
  path = _join(header, meta, data, tmp_path / "claim.safetensors")
  os.truncate(path, path.stat().st_size + 4 * d * hidden)
  out, growth = _load_in_subprocess(path)
  assert "REFUSED" in out
  assert growth < 4 * 1024


def test_a_rank_3_bias_gets_a_clean_message(good_model, tmp_path, capsys):
  header, meta, data = _split(good_model)
  entry = header["transformer/layer_0/attn/query/b"]
  entry["shape"] = [1, 1, entry["shape"][0]]
  code, err = _cli(capsys, "decompile", _join(header, meta, data, tmp_path / "b.safetensors"))
  _assert_one_line(code, err, "has shape (1, 1,")


# ---------------------------------------------------------------------------
# malformed metadata (the thirteen kinds of the issue, and a few more)


def _set(meta, dotted: str, value):
  meta = json.loads(json.dumps(meta))
  *path, last = dotted.split(".")
  target = meta
  for key in path:
    target = target[key]
  if value is KeyError:
    del target[last]
  else:
    target[last] = value
  return meta


METADATA_CASES = {
    "compiler_bos a list": ("settings.compiler_bos", ["BOS"]),
    "num_layers 1e309": ("num_layers", float("inf")),
    "float max_seq_len": ("max_seq_len_float", None),
    "output_values missing": ("output_values", KeyError),
    "output_values empty (categorical)": ("output_values_categorical", []),
    "output_values short": ("output_values_short", [1]),
    "output_values strings": ("output_values_categorical", ["a", "b", "c"]),
    "output_dims out of range": ("output_dims", [10 ** 6]),
    "output_dims strings": ("output_dims", ["14"]),
    "output_dims floats": ("output_dims", [14.0]),
    "integer residual labels": ("residual_labels", list(range(15))),
    "vocab a dict": ("settings.vocab", {"0": 1}),
    "vocab nested": ("settings.vocab", [[0, 1], 2, 3, 4, 5]),
    "causal a string": ("settings.causal", "yes"),
    "bool num_heads": ("num_heads", True),
    "unknown setting": ("settings.eval", "x"),
    "vocab too large": ("settings.vocab", list(range(limits.MAX_VOCAB + 1))),
    "max_seq_len too large": ("settings.max_seq_len", 100000),
}


@pytest.mark.parametrize("case", list(METADATA_CASES), ids=list(METADATA_CASES))
def test_malformed_metadata_is_exit_2(good_model, tmp_path, capsys, case):
  header, meta, data = _split(good_model)
  key, value = METADATA_CASES[case]
  if key == "max_seq_len_float":
    meta = _set(meta, "settings.max_seq_len", float(meta["settings"]["max_seq_len"]))
  elif key == "output_values_categorical":
    meta = _set(_set(meta, "categorical_output", True), "output_values", value)
  elif key == "output_values_short":  # two output dims, one value
    meta = _set(_set(_set(meta, "categorical_output", True), "output_dims", [13, 14]), "output_values", value)
  else:
    meta = _set(meta, key, value)
  path = tmp_path / "m.safetensors"
  text = json.dumps({"__metadata__": {model_io.META_KEY: json.dumps(meta)}, **header}).encode()  # inf -> Infinity
  path.write_bytes(struct.pack("<Q", len(text)) + text + data)
  code, err = _cli(capsys, "decompile", path, "--no-verify")
  _assert_one_line(code, err, str(path))


def test_files_written_today_and_without_causal_still_load(good_model, tmp_path):
  header, meta, data = _split(good_model)
  del meta["settings"]["causal"]
  model = model_io.load_model(str(_join(header, meta, data, tmp_path / "old.safetensors")))
  assert model.settings.causal is False and model.num_layers == 2


# ---------------------------------------------------------------------------
# flags


@pytest.mark.parametrize("args", [
    ["compile", "P", "--out", "M", "--vocab", ",".join(map(str, range(1000)))],
    ["compile", "P", "--out", "M", "--max-seq-len", "100000"],
    ["compile", "P", "--out", "M", "--vocab", "1,1"],
    ["decompile", "M", "--beam", "0"], ["decompile", "M", "--beam", "-5"],
    ["decompile", "M", "--beam", "5000"], ["decompile", "M", "--beam", "5000", "--mode", "ar"],
    ["decompile", "M", "--beam", "100", "--mode", "ar"],
    ["generate", "--n", "3", "--out", "OUT", "--workers", "0"],
    ["generate", "--n", "3", "--out", "OUT", "--workers", "-2"],
], ids=lambda a: " ".join(a[:1] + a[-2:])[:40])
def test_flags_out_of_range_are_refused(tmp_path, capsys, good_model, args):
  (tmp_path / "p.py").write_text(SOURCE)
  subs = {"P": str(tmp_path / "p.py"), "M": str(good_model), "OUT": str(tmp_path / "out")}
  code, err = _cli(capsys, *[subs.get(a, a) for a in args])
  _assert_one_line(code, err)
  assert not (tmp_path / "out").exists()


def test_workers_are_capped_at_cpus_and_shards():
  assert cli._workers(32, 1) == 1
  assert cli._workers(32, 1000) <= (os.cpu_count() or 1)
  assert cli._workers(1, 1000) == 1


# ---------------------------------------------------------------------------
# sources


@pytest.mark.parametrize("text,fragment", [
    ("v1 = " + "-" * 200_000 + "1\n", "nests deeper"),
    ("v1 = rasp.Map(lambda x: " + "(" * 300 + "x" + ")" * 300 + ", rasp.tokens)\n", "not valid Python"),
    ("v1 = " + "[" * 150 + "]" * 150 + "\n", "nests deeper"),
    ("v1 = rasp.Map(lambda x: x + 1, rasp.tokens)\n" * (limits.MAX_SOURCE_LINES + 1), "lines"),
    ("v1 = rasp.Map(lambda x: x + 1, rasp.tokens)\nprogram = tokens\n", "the output is the input `tokens`"),
])
def test_hostile_sources_give_one_line(tmp_path, capsys, text, fragment):
  (tmp_path / "p.py").write_text(text)
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path / "m.safetensors")
  _assert_one_line(code, err, fragment)


def test_a_source_larger_than_the_limit_is_refused_before_reading(tmp_path, capsys):
  path = tmp_path / "big.py"
  with open(path, "wb") as f:
    f.truncate(limits.MAX_SOURCE_BYTES + 1)
  code, err = _cli(capsys, "compile", path, "--out", tmp_path / "m.safetensors")
  _assert_one_line(code, err, "more than")


def test_a_utf8_bom_is_accepted(tmp_path, capsys):
  (tmp_path / "p.py").write_bytes(b"\xef\xbb\xbf" + SOURCE.encode())
  code, err = _cli(capsys, "compile", tmp_path / "p.py", "--out", tmp_path / "m.safetensors")
  assert code == 0, err


# ---------------------------------------------------------------------------
# signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_to_generate_stops_the_pool_and_keeps_whole_shards(tmp_path, signum):
  import pyarrow.parquet as pq
  out = tmp_path / "data"
  proc = subprocess.Popen([sys.executable, "-m", "tracr_decompiler.cli", "generate", "--n", "400", "--shard-size",
                           "1", "--workers", "2", "--max-sops", "3", "--out", str(out), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
  try:
    deadline, seen = time.time() + 120, set()
    while time.time() < deadline and proc.poll() is None:
      seen |= processes.descendants(proc.pid)
      if len(list((out / "data").glob("shard-*.parquet"))) >= 1 and len(seen) >= 2:
        break
      time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    seen |= processes.descendants(proc.pid)
    os.kill(proc.pid, signum)  # the parent alone, as `kill PID` does
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 128 + signum
  assert len(err.strip().splitlines()) == 1 and signal.Signals(signum).name in err, err
  deadline = time.time() + 30
  while time.time() < deadline and any(map(processes.alive, seen)):
    time.sleep(0.2)
  assert not any(map(processes.alive, seen)), [open(f"/proc/{p}/cmdline").read()
                                                for p in seen if processes.alive(p)]
  shards = list((out / "data").glob("shard-*.parquet"))
  assert shards and all(pq.ParquetFile(s).metadata.num_rows == 1 for s in shards)


def _moments(seed: int, n: int, end: float) -> list[float]:
  rng = random.Random(seed)  # fixed, so a failure names a moment that can be replayed
  return sorted(rng.uniform(0.05, end) for _ in range(n))


@pytest.mark.parametrize("command", ["evaluate", "decompile"])
def test_sigterm_at_random_moments_is_answered_and_never_lost(small_dataset, good_model, tmp_path, command):
  """SIGTERM anywhere in a run (imports, loading, JAX's compile, a gc callback) stops it with one line.

  A stop raised inside a gc callback is dropped by Python ("Exception ignored"), and the command used
  to run on to its end and exit 0 (stopping.py): so every signal sent while the process is alive must
  give 128 + 15 (or -15, the default action, before the CLI installs its handler), never 0."""
  end = 10.0 if command == "evaluate" else 3.0  # about each run's length on one free core
  for i, moment in enumerate(_moments(len(command), 4, end)):
    out = tmp_path / f"run{i}"
    args = (["evaluate", "--data", str(small_dataset), "--split", "all", "--beam", "1", "--out", str(out), "--quiet"]
            if command == "evaluate" else ["decompile", str(good_model), "--report", str(out) + ".html"])
    proc = subprocess.Popen([sys.executable, "-m", "tracr_decompiler.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(moment)
    if proc.poll() is not None:  # past its end: this moment tells nothing
      assert proc.returncode == 0, proc.communicate()[1]
      continue
    proc.send_signal(signal.SIGTERM)
    try:
      _, err = proc.communicate(timeout=90)  # a lost signal runs on to the end: far less than this
    finally:
      if proc.poll() is None:
        proc.kill()
    assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), (moment, proc.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err, (moment, err)
    if proc.returncode > 0:
      assert err.strip().splitlines() == [
          "error: interrupted by SIGTERM; finished work is kept, rerun to continue"], (moment, err)
    left = [p.name for p in tmp_path.rglob("*.tmp")]
    assert not left, (moment, left)


# ---------------------------------------------------------------------------
# corrupt checkpoints


@pytest.fixture()
def run_folder(tmp_path):
  """A run folder with two checkpoints (steps 1 and 2) of a tiny decompiler."""
  import torch
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.model.model import Decompiler
  from tracr_decompiler.training import checkpoint
  cfg = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
  model = Decompiler(cfg)
  opt = torch.optim.AdamW(model.parameters())
  model.zero_grad()
  sum(p.sum() for p in model.parameters()).backward()
  opt.step()
  for step in (1, 2):
    checkpoint.save(model, opt, cfg, tmp_path, step, {"minutes": 0.0})
  return tmp_path


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "trainer_state.json",
                                     "config.json"])
def test_a_damaged_last_checkpoint_resumes_from_prev(run_folder, damaged, capsys):
  from tracr_decompiler.training import checkpoint
  path = run_folder / "last" / damaged
  os.truncate(path, path.stat().st_size // 2)
  folder, state = checkpoint.find_resumable(run_folder)
  assert folder == run_folder / "prev" and state["step"] == 1
  assert str(path) in capsys.readouterr().err


def test_a_flipped_byte_is_caught_by_the_recorded_hash(run_folder):
  from tracr_decompiler.training import checkpoint
  path = run_folder / "last" / "model.safetensors"
  raw = bytearray(path.read_bytes())
  raw[-3] ^= 0xFF
  path.write_bytes(bytes(raw))
  with pytest.raises(checkpoint.CheckpointError, match="SHA-256"):
    checkpoint.validate(run_folder / "last")


def test_no_usable_checkpoint_names_the_file_and_the_remedy(run_folder):
  from tracr_decompiler.training import checkpoint
  for folder in ("last", "prev"):
    os.truncate(run_folder / folder / "optimizer.safetensors", 10)
  with pytest.raises(checkpoint.CheckpointError) as e:
    checkpoint.find_resumable(run_folder)
  assert "last/optimizer.safetensors" in str(e.value) and "to start over" in str(e.value)


def test_saving_after_a_damaged_last_keeps_the_good_prev(run_folder):
  import torch
  from tracr_decompiler.model.config import ModelConfig
  from tracr_decompiler.model.model import Decompiler
  from tracr_decompiler.training import checkpoint
  os.truncate(run_folder / "last" / "model.safetensors", 100)
  folder, state = checkpoint.find_resumable(run_folder)
  cfg = ModelConfig.from_json(state["model_config"])
  model = Decompiler(cfg)
  opt = torch.optim.AdamW(model.parameters())
  checkpoint.load_weights(model, folder)
  checkpoint.save(model, opt, cfg, run_folder, 3, {})
  assert checkpoint.validate(run_folder / "prev")["step"] == 1
  assert checkpoint.validate(run_folder / "last")["step"] == 3


@pytest.mark.parametrize("damaged", ["model.safetensors", "config.json"])
def test_decompile_with_a_bad_checkpoint_is_exit_2_naming_the_file(run_folder, good_model, capsys, damaged):
  path = run_folder / "last" / damaged
  os.truncate(path, path.stat().st_size // 2)
  code, err = _cli(capsys, "decompile", good_model, "--checkpoint", run_folder / "last", "--no-verify")
  _assert_one_line(code, err, str(path))


# ---------------------------------------------------------------------------
# property: malformed safetensors headers and metadata


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


@hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(data=st.data())
def test_property_malformed_files_are_refused_cleanly(good_model, tmp_path_factory, data):
  header, meta, payload = _split(good_model)
  names = sorted(header)
  kind = data.draw(st.sampled_from(["meta value", "meta delete", "settings value", "tensor entry", "raw header",
                                    "header length", "truncate"]))
  raw_header = None
  if kind == "meta value":
    meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(json_values)
  elif kind == "meta delete":
    del meta[data.draw(st.sampled_from(sorted(meta)))]
  elif kind == "settings value":
    meta["settings"][data.draw(st.sampled_from(sorted(meta["settings"]) + ["extra"]))] = data.draw(json_values)
  elif kind == "tensor entry":
    name = data.draw(st.sampled_from(names))
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
    header[name][field] = data.draw(json_values | st.lists(st.integers(-10, 2 ** 40), max_size=4)
                                    | st.sampled_from(["F64", "I32", "BF16", "F16"]))
  elif kind == "raw header":
    raw_header = data.draw(st.binary(max_size=200))
  path = tmp_path_factory.mktemp("prop") / "m.safetensors"
  if raw_header is not None:
    path.write_bytes(struct.pack("<Q", len(raw_header)) + raw_header + payload)
  else:
    _join(header, meta, payload, path)
  if kind == "header length":
    raw = bytearray(path.read_bytes())
    raw[:8] = struct.pack("<Q", data.draw(st.integers(0, 2 ** 64 - 1)))
    path.write_bytes(bytes(raw))
  elif kind == "truncate":
    os.truncate(path, data.draw(st.integers(0, path.stat().st_size - 1)))
  try:
    model = model_io.load_model(str(path))
  except model_io.ModelFileError as e:
    assert str(path) in str(e) and "\n" not in str(e)
    return
  # Accepted: then it is a coherent model (the mutation was harmless, e.g. an equal value).
  assert model.params["token_embed"]["embeddings"].shape[0] == len(model.input_encoding)
