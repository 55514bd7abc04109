"""The HTML reports: every program line drawn at its weight node, the first difference shown, and a real browser
opens the pages without errors (skipped, with a message, where Chromium or its driver is not installed)."""

import dataclasses
import io

import numpy as np
import pytest

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling import circuit
from tracr_decompiler.decompiling.decompile import DecompileResult
from tracr_decompiler.decompiling.verify import Verifier
from tracr_decompiler.encoding import weights
from tracr_decompiler.program import ir, source
from tracr_decompiler.visual import browser, decompilation, evaluation

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")


def _result(model, program: ir.Program) -> DecompileResult:
  """What decompile() returns for `program` as the chosen candidate (without running the neural decoder)."""
  check = Verifier(model).check(program)
  return DecompileResult(program=program, source=source.to_source(program), line_confidence=[0.9] * len(program),
                         verified=check.verified, verification=check.describe(), candidates_tried=1, seconds=0.1,
                         mode="nar", check=check, output_block="residual dims 3..7 (test)",
                         circuit=circuit.read_circuit(model, program, exact=check.status == "proved"))


def _wrong(program: ir.Program) -> ir.Program:
  """The program with its first Select comparison changed: same graph, different outputs."""
  for i, line in enumerate(program.lines):
    if line.op in ("aggregate", "selector_width"):
      fn = "GT" if line.fn != "GT" else "LT"
      return ir.Program(program.lines[:i] + (dataclasses.replace(line, fn=fn),) + program.lines[i + 1:])
  raise AssertionError("no select")


@pytest.mark.parametrize("name", list(test_cases.PROGRAMS))
def test_every_line_is_located_at_its_weight_node(name):
  program = ir.canonicalize(test_cases.PROGRAMS[name])
  graph = weights.encode_model(compiler.compile_program(program, SETTINGS))
  at = circuit.match_lines(program, graph)
  assert all(line.out in at for line in program.lines)
  assert len({at[l.out] for l in program.lines}) == len(program)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
  folder = tmp_path_factory.mktemp("reports")
  out = {}
  for name in ("mixed", "sort_unique"):
    program = ir.canonicalize(test_cases.PROGRAMS[name])
    model = compiler.compile_program(program, SETTINGS)
    out[name] = (program, decompilation.write(_result(model, program), model, folder / f"{name}.html"))
    wrong = _wrong(program)
    out[name + "_wrong"] = (wrong, decompilation.write(_result(model, wrong), model, folder / f"{name}_wrong.html"))
  summary = {"split": "test", "data": "data/x", "programs": 2, "beam": 16, "overall": {}, "records": [
      {"id": "a", "n_sops": 2, "ops": ["aggregate", "selector_width"], "settings": "vocab 5, max_seq_len 5",
       "verified": {"functional": 1.0, "exact": 1.0, "line_accuracy": 1.0}, "check": "proved",
       "source": "v1 = ...", "truth_source": "v1 = ..."},
      {"id": "b", "n_sops": 6, "ops": ["map", "aggregate"], "settings": "vocab 5, max_seq_len 5",
       "verified": {"functional": 0.0, "exact": 0.0, "line_accuracy": 0.5}, "check": "different",
       "source": "v1 = <x>", "truth_source": "v1 = ...", "verification": "outputs differ"}]}
  out["evaluation"] = (None, evaluation.write(summary, folder / "evaluation.html"))
  return out


def test_the_page_is_self_contained_and_shows_the_difference(pages):
  _, path = pages["sort_unique_wrong"]
  text = open(path).read()
  assert "http://" not in text and "https://" not in text and "<script" not in text  # nothing to fetch
  assert "First input where the model and the program differ" in text and "different" in text
  _, path = pages["sort_unique"]
  text = open(path).read()
  assert "proved" in text and 'alt="QK circuit' in text and 'alt="OV circuit' in text and "First input" not in text
  assert "<h2>Circuit</h2>" in text and "exact (the program is proved)" in text and "hook_resid_post" in text


def test_the_browser_draws_every_node_without_errors(pages):
  reason = browser.missing()
  if reason:
    pytest.skip(f"{reason}; the browser test needs it")
  from PIL import Image
  for name, (program, path) in pages.items():
    shown = browser.render(path)
    assert shown.errors == [], (name, shown.errors)
    if program is not None:
      assert set(shown.nodes) == {line.out for line in program.lines}, name
      assert all(w > 50 and h > 20 for w, h in shown.nodes.values()), name
    image = np.asarray(Image.open(io.BytesIO(shown.screenshot)).convert("L"), dtype=float)
    assert image.shape[0] > 300 and image.std() > 5 and (image < 128).mean() > 0.001, name  # not blank


def test_the_browser_reports_console_errors_exceptions_and_failed_loads(tmp_path):
  """The driver's error list can fail the test above: a page with each kind of error yields each one."""
  reason = browser.missing()
  if reason:
    pytest.skip(f"{reason}; the browser test needs it")
  page = tmp_path / "broken.html"
  page.write_text("<html><body><p>x</p><img src='missing.png'>"
                  "<script>console.error('logged'); throw new Error('thrown');</script></body></html>")
  errors = " | ".join(browser.render(page).errors)
  assert "logged" in errors and "thrown" in errors and "missing.png" in errors, errors
