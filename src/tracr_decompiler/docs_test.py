"""The README and docs/ say only what is true of this tree: their links and paths exist, the README's commands run.

A fenced command block in the README runs as written unless the line before it is
`<!-- docs-check: not run: REASON -->` (the reason is required: it is what a reader would ask). The README's Python
example runs too, and must print the `text` block that follows it.

Run alone:  python -m pytest src/tracr_decompiler/docs_test.py -q   (about half a minute: it runs the README's commands)
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tracr_decompiler"
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!-- docs-check: not run: (\S.*?) -->")
# What the documented commands write or read from the user's own folders, not files of this tree.
OUTPUT_PREFIXES = ("data/", "reports/", "runs/", "last/", "prev/")
OUTPUT_FILES = {"model.safetensors", "model.json", "other.json", "program.py", "report.html", "circuit.json",
                "hist.safetensors", "hist.json", "reverse.safetensors", "reverse.html", "reverse.json", "page.html",
                "train_config.json", "trainer_state.json", "config.json", "file.json", "ckpt.pt", "lib_report.json"}


def _blocks(text: str) -> list[tuple[str, str, str | None]]:
  """(language, body, not-run reason or None) of every fenced block."""
  out = []
  for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M):
    before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    reason = NOT_RUN.fullmatch(before.strip())
    out.append((m.group(1), m.group(2), reason.group(1) if reason else None))
  return out


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
  text = re.sub(r"[`*_]", "", heading.strip().lower())
  return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def _anchors(path: pathlib.Path) -> set[str]:
  text = re.sub(r"^```.*?^```$", "", path.read_text(), flags=re.S | re.M)
  return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def _tree_file_names() -> set[str]:
  names = set()
  for folder, subfolders, files in os.walk(ROOT):
    subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in ("data", "runs", "reports")]
    names.update(files)
  return names


def _exists(name: str, doc: pathlib.Path, tree: set[str]) -> bool:
  """A path from the root, the package or the document; a bare file name (in a table of one folder) anywhere."""
  name = name.rstrip("/")
  return any((base / name).exists() for base in (ROOT, PACKAGE, doc.parent)) or ("/" not in name and name in tree)


def _path_like(token: str) -> bool:
  token = token.strip("`'\",;()")
  if token.startswith(("http", "-", "$", "<", "~")) or "*" in token or "{" in token or "=" in token:
    return False
  return bool(re.fullmatch(r"[\w.\-]+(/[\w.\-]+)*/?", token)) and (
      "/" in token or bool(re.search(r"\.(py|md|sh|ipynb|png|csv|toml|json|safetensors|html)$", token)))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_exists(doc):
  for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
    if target.startswith(("http://", "https://", "mailto:")):
      continue
    file, _, anchor = target.partition("#")
    path = (doc.parent / file).resolve() if file else doc
    assert path.exists(), f"{doc.name}: link to missing {target}"
    if anchor and path.suffix == ".md":
      assert anchor in _anchors(path), f"{doc.name}: no heading #{anchor} in {path.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_path_named_exists(doc):
  text = doc.read_text()
  named = set(re.findall(r"`([^`\n]+)`", text))
  for lang, body, _ in _blocks(text):
    if lang in ("bash", "sh", ""):
      named |= set(body.split())
  missing, tree = [], _tree_file_names()
  for token in named:
    token = token.strip("`'\",;()")
    if not _path_like(token) or token.startswith(OUTPUT_PREFIXES) or token.rsplit("/", 1)[-1] in OUTPUT_FILES:
      continue
    if not _exists(token, doc, tree):
      missing.append(token)
  assert not missing, f"{doc.name} names files that do not exist: {sorted(missing)}"


def test_every_readme_command_block_runs_or_says_why_not(tmp_path):
  blocks = [(body, reason) for lang, body, reason in _blocks((ROOT / "README.md").read_text())
            if lang in ("bash", "sh")]
  assert blocks, "the README has command blocks"
  (tmp_path / "examples").symlink_to(ROOT / "examples")
  env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
  for body, reason in blocks:
    if reason is not None:
      continue
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"README block failed:\n{body}\n{run.stderr[-2000:]}"


def test_the_readme_python_example_prints_what_the_readme_says(tmp_path):
  blocks = _blocks((ROOT / "README.md").read_text())
  (i, (_, code, _)), = [(i, b) for i, b in enumerate(blocks) if b[0] == "python"]
  lang, printed, _ = blocks[i + 1]
  assert lang == "text", "the Python example is followed by what it prints"
  run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  assert run.stdout == printed


def test_the_transformerlens_4_example_is_shown_whole_in_the_usage_guide():
  example = (ROOT / "examples" / "transformerlens4.py").read_text()
  assert f"```python\n{example}```" in (ROOT / "docs" / "usage.md").read_text()


def test_the_architecture_guide_lists_every_stage_of_the_enforced_order():
  from tracr_decompiler import architecture_test
  text = (ROOT / "docs" / "architecture.md").read_text()
  section = text[text.index("## The package order"):text.index("## One home for each concept")]
  listed = set(re.findall(r"`(\w+)/?`", section))
  missing = [n for stage in architecture_test.ORDER for n in stage if n != architecture_test.NAME and n not in listed]
  assert not missing, f"docs/architecture.md's package order lacks {missing}"


def test_the_readme_stays_a_five_minute_read():
  assert len((ROOT / "README.md").read_text().splitlines()) <= 200
