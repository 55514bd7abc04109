"""CLI start-up: commands that never run tracr's JAX model never import JAX or Haiku; NAR decompiling never
imports torch.

Each command runs in a fresh interpreter, which then reports what is in
`sys.modules`: a behaviour, not a time (benchmarks/cli_startup.py measures the time).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import model_io
from tracr_decompiler.program import source

JAX = ("jax", "haiku", "chex", "tracr.compiler.assemble")

# Runs one command like the console script, then prints its exit status and the modules it imported.
CHILD = r"""
import json, sys
from tracr_decompiler import cli
sys.argv = ["tracr-decompiler", *sys.argv[1:]]
try:
  code = cli.main()  # argv None: the process is ours, as for the console script
except SystemExit as e:  # --help
  code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imports(*args: str) -> set[str]:
  done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
  report = json.loads(done.stderr.strip().splitlines()[-1])
  assert report["code"] in (0, None), done.stderr
  return set(report["modules"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("startup")
  program = test_cases.PROGRAMS["sort_unique"]
  (folder / "sort.py").write_text(source.to_source(program))
  model_io.save_model(compiler.compile_program(program), str(folder / "sort.safetensors"))
  return folder


@pytest.mark.parametrize("args", [
    ["--help"],
    ["generate", "--help"],
    ["decompile", "{dir}/sort.safetensors"],  # verifies by recompiling candidates: tracr's passes, not its model
    ["decompile", "{dir}/sort.safetensors", "--no-verify"],
    ["compile", "{dir}/sort.py", "--out", "{dir}/again.safetensors"],
    ["generate", "--n", "2", "--workers", "1", "--out", "{dir}/data", "--quiet"],
], ids=lambda a: " ".join(x for x in a if "{dir}" not in x))
def test_command_never_imports_jax(args, files):
  imported = _imports(*(a.format(dir=files) for a in args))
  assert not imported & set(JAX), sorted(imported & set(JAX))


@pytest.mark.parametrize("args", [["decompile", "{dir}/sort.safetensors"],
                                  ["decompile", "{dir}/sort.safetensors", "--no-verify"]],
                         ids=lambda a: " ".join(x for x in a if "{dir}" not in x))
def test_nar_decompile_never_imports_torch(args, files):
  """The default NAR pass runs in NumPy (model/numpy_nar.py); importing torch alone took longer than the rest."""
  imported = _imports(*(a.format(dir=files) for a in args))
  assert not {m for m in imported if m.split(".")[0] == "torch"}


def test_help_imports_neither_torch_nor_tracr():
  imported = _imports("--help")
  assert not {m for m in imported if m.split(".")[0] in ("torch", "numpy")}
  assert {m for m in imported if m.split(".")[0] == "tracr"} <= {"tracr", "tracr.compiler"}  # empty / deferred


DEFERRED = r"""
import json, sys
from tracr_decompiler.compiling import tracr_passes
tracr_passes.defer_init()  # what the CLI does in its own process
from tracr_decompiler.compiling import compiler
from tracr.compiler import basis_inference, nodes  # passes: imported alone
out = {"jax_after_passes": "jax" in sys.modules, "deferred_after_passes": tracr_passes.init_deferred()}
import tracr.compiler
from tracr.compiler import compiling
out["jax_after_compiling"] = "jax" in sys.modules
fn = tracr.compiler.compile_rasp_to_model  # defined by tracr's __init__: runs it
out["same_function"] = fn is compiling.compile_rasp_to_model
out["deferred_after_init"] = tracr_passes.init_deferred()
out["same_module"] = sys.modules["tracr.compiler"] is tracr.compiler
try:
  tracr.compiler.no_such_name
  out["missing"] = "found"
except AttributeError:
  out["missing"] = "AttributeError"
print(json.dumps(out))
"""


def test_tracr_compiler_init_runs_on_first_use_of_its_own_names():
  done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert json.loads(done.stdout) == {
      "jax_after_passes": False, "deferred_after_passes": True, "jax_after_compiling": True,
      "same_function": True, "deferred_after_init": False, "same_module": True, "missing": "AttributeError"}


def test_importing_the_library_leaves_tracr_as_tracr_made_it():
  # Deferring tracr.compiler's __init__ is the CLI's choice for its own process, never a library side effect.
  code = ("import sys; from tracr_decompiler.compiling import compiler; "
          "print('jax' in sys.modules, 'compile_rasp_to_model' in vars(sys.modules['tracr.compiler']))")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert done.stdout.split() == ["True", "True"]
