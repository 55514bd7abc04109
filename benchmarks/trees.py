"""A temporary git worktree of a base revision, for benchmarks that run it side by side with this tree.

Benchmarks are run as scripts (`python benchmarks/X.py`), so this folder is on sys.path and they import it as
`trees`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Any, Iterator

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


def run_child(src: pathlib.Path, code: str, *args: object, env: dict[str, str] | None = None) -> Any:
  """What a child Python process running `code` with the package from `src` prints as JSON on stdout.

  env: variables set for the child beside this process's own (e.g. one BLAS thread)."""
  done = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                        env={**os.environ, **(env or {}), "PYTHONPATH": str(src)},
                        capture_output=True, text=True, check=True)
  return json.loads(done.stdout)
