"""Flags derived from the config dataclasses: no drift from the defaults, and defaults < --config file < flags."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from tracr_decompiler import cli, cli_config
from tracr_decompiler.compiling.compiled import CompileSettings
from tracr_decompiler.dataset.config import DatasetConfig
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.model.config import ModelConfig
from tracr_decompiler.training.config import TrainConfig

# The fields a subcommand deliberately does not expose (neither flag nor --config key), and why.
NOT_EXPOSED = {
    DatasetConfig: {"generation"},  # nested: its own section
    GenerationConfig: {"settings",  # nested: the compile-settings section
                       "proposals_per_op", "max_attempts", "refills", "max_program_seconds", "redraw_after", "tracr_dynamic_checks"},  # search budgets
    TrainConfig: set(),
}
REQUIRED = {"generate": ["--n", "1", "--out", "OUT"], "train": ["--data", "DATA", "--out", "OUT"],
            "sample": [], "compile": ["prog.py", "--out", "m.safetensors"]}


def _parse(*argv: str):
  return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_exposed_field_has_a_flag_whose_default_is_the_dataclass_default(command):
  args = _parse(command, *REQUIRED[command])
  parser = cli.build_parser()._subparsers._group_actions[0].choices[command].populated()
  actions = {a.dest: a for a in parser._actions}
  values = cli_config.resolve(args, args.sections)
  for section, resolved in zip(args.sections, values):
    fields = {f.name: f for f in dataclasses.fields(section.cls)}
    if section.cls in NOT_EXPOSED:  # a new field must be exposed or listed above, not forgotten
      assert set(section.fields) == set(fields) - NOT_EXPOSED[section.cls], section.cls
    for name in section.fields:
      spec = section.spec(name)
      action = actions[name]
      assert f"--{name.replace('_', '-')}" in action.option_strings
      assert spec.help and spec.help in action.help.replace("%%", "%")
      if spec.required:
        continue
      f = fields[name]
      default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
      assert resolved[name] == default, (section.cls.__name__, name)
      assert f"default: {cli_config._show(default)}" in action.help.replace("%%", "%")


def test_no_flags_build_the_dataclass_defaults():
  args = _parse("train", "--data", "d", "--out", "o")
  train, model = cli_config.resolve(args, args.sections)
  assert TrainConfig(**train) == TrainConfig(data="d", out="o")
  assert ModelConfig(**model, d_ff=4 * model["d_model"]) == ModelConfig()
  args = _parse("generate", "--n", "2000", "--out", "data/default")
  ds, gen, settings = cli_config.resolve(args, args.sections)
  assert GenerationConfig(**gen, settings=CompileSettings(**settings)) == GenerationConfig()
  assert DatasetConfig(**ds, generation=GenerationConfig()) == DatasetConfig()


def test_old_flag_names_still_work():
  args = _parse("train", "--data", "d", "--out", "o", "--layers", "3", "--heads", "4", "--input", "flat")
  _, model = cli_config.resolve(args, args.sections)
  assert (model["n_encoder_layers"], model["n_heads"], model["input_mode"]) == (3, 4, "flat")
  args = _parse("generate", "--n", "5", "--out", "o", "--ray", "auto")
  assert cli_config.resolve(args, args.sections)[0]["ray_address"] == "auto"


def test_config_file_sits_between_defaults_and_flags(tmp_path):
  path = tmp_path / "c.json"
  path.write_text(json.dumps({"data": "from-file", "out": "run", "steps": 7, "batch_size": 5, "lr": 0.1,
                              "bf16": False, "d_model": 64, "n_heads": 4}))
  args = _parse("train", "--config", str(path), "--steps", "9", "--d-model", "128")
  train, model = cli_config.resolve(args, args.sections)
  assert (train["steps"], model["d_model"]) == (9, 128)  # flags beat the file
  assert (train["data"], train["batch_size"], train["lr"], train["bf16"]) == ("from-file", 5, 0.1, False)
  assert model["n_heads"] == 4
  assert (train["warmup"], model["n_encoder_layers"]) == (200, 4)  # defaults where neither says
  path.write_text(json.dumps({"n": 12, "out": "o", "vocab": [0, 1, 2], "max_sops": 3}))
  args = _parse("generate", "--config", str(path), "--vocab", "a,b")
  ds, gen, settings = cli_config.resolve(args, args.sections)
  assert (ds["n"], gen["max_sops"], settings["vocab"], settings["max_seq_len"]) == (12, 3, ("a", "b"), 5)


def test_a_runs_train_config_json_reads_back(tmp_path):
  """A run writes its resolved TrainConfig as train_config.json; --config takes it as it is."""
  cfg = TrainConfig(data="d", out="r", steps=3, limit=4, bf16=False, max_minutes=1.5, mode="nar")
  (tmp_path / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
  args = _parse("train", "--config", str(tmp_path / "train_config.json"))
  assert TrainConfig(**cli_config.resolve(args, args.sections)[0]) == cfg


def _main(capsys, *argv) -> tuple[int, str]:
  try:
    code = cli.main([str(a) for a in argv])
  except SystemExit as e:
    code = int(e.code or 0)
  return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("content,fragment", [
    ({"n": 5, "bogus": 1}, "unknown setting 'bogus'"),
    ({"n": 5, "generation": {}}, "unknown setting 'generation'"),  # nested configs are flat keys here
    ({"n": 5, "max_attempts": 3}, "unknown setting 'max_attempts'"),
    ({"n": 0}, "n: 0 is out of range"),
    ({"n": "5"}, "n: expected an integer"),
    ({"n": True}, "n: expected an integer"),
    ({"n": 5, "max_seq_len": 1000}, "max_seq_len: 1000 is out of range"),
    ({"n": 5, "vocab": [1, 1]}, "vocab lists a token twice"),
    ({"n": 5, "vocab": list(range(100))}, "at most 64"),
    ({"n": 5, "prefer_unused": 2}, "prefer_unused: 2.0 is out of range"),
    ({"n": 5, "op_weights": {"map": "x"}}, "expected a finite number"),
    ({"n": 5, "min_sops": 5, "max_sops": 2}, "min_sops"),
    ({"n": None}, "must not be null"),
    ([1, 2], "one JSON object"),
    ("not json", "is not valid JSON"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, content, fragment):
  path = tmp_path / "c.json"
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  code, err = _main(capsys, "generate", "--config", path, "--out", tmp_path / "out")
  assert code == 2 and len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err, err
  assert not (tmp_path / "out").exists()


def test_unknown_key_in_train_config(tmp_path, capsys):
  (tmp_path / "c.json").write_text(json.dumps({"stepz": 10}))
  code, err = _main(capsys, "train", "--config", tmp_path / "c.json", "--data", tmp_path, "--out", tmp_path / "run")
  assert code == 2 and err.startswith("error: ") and "unknown setting 'stepz'" in err and len(err.splitlines()) == 1
  assert not (tmp_path / "run").exists()


def test_required_settings_may_come_from_the_file_or_are_refused(tmp_path, capsys):
  code, err = _main(capsys, "generate", "--out", tmp_path / "out")
  assert code == 2 and "required: --n" in err and len(err.splitlines()) == 1
  code, err = _main(capsys, "generate", "--config", tmp_path / "missing.json", "--n", "3", "--out", tmp_path / "o")
  assert code == 2 and "missing.json" in err and len(err.splitlines()) == 1
  assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_other_commands_do_not_import_the_configs():
  """Flags are added when their subcommand is parsed: decompile's errors need not import tracr (~1.5 s)."""
  code = ("import sys; from tracr_decompiler import cli; cli.build_parser().parse_args(['decompile', 'x']); "
          "print(sorted(m for m in ('tracr_decompiler.compiling.compiler', 'tracr_decompiler.training.config') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]"
