"""A temporary git worktree of a base revision, for benchmarks that run it side by side with this tree.

Benchmarks are run as scripts (`python benchmarks/X.py`), so this folder is on sys.path and they import it as
`trees`.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import tempfile
from typing import Iterator

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[pathlib.Path]:
  """The `src` folder of a temporary git worktree of `rev`, removed afterwards."""
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    try:
      yield path / "src"
    finally:
      subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
