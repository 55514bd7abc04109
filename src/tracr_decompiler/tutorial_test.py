"""The tutorial notebook runs top to bottom, as a reader runs it, and says what it promises.

Run alone:  python -m pytest src/tracr_decompiler/tutorial_test.py -q   (about half a minute: plain tracr compiles)
"""

import pathlib

import nbclient
import nbformat

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "examples" / "tutorial.ipynb"


def _text(cell) -> str:
  parts = []
  for out in cell.get("outputs", []):
    parts.append(out.get("text", ""))
    parts.extend(str(v) for k, v in out.get("data", {}).items() if k == "text/plain")
  return "".join(parts)


def test_the_tutorial_runs_and_shows_proved_different_and_untrusted(tmp_path):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "commit it without outputs"
  nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  text = "\n".join(_text(c) for c in notebook.cells if c.cell_type == "code")
  assert "proved True" in text  # the tracr model
  assert "proved | residual dims" in text  # the TransformerLens 4 bridge
  assert "the clean program against the patched model: different" in text
  assert "untrusted False" in text
  assert any("text/html" in out.get("data", {}) for c in notebook.cells for out in c.get("outputs", []))
