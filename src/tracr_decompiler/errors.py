"""The project's user-facing errors: one base class, so the CLI can tell bad input from a bug.

Everything the user can cause (a bad file, an unsupported program, an argument
out of range) raises a subclass of `TracrDecompilerError`; the CLI prints it as
one line and exits 2. Any other exception is a bug of ours (exit 1, traceback
with `--debug`). Stage errors also subclass ValueError where they always did,
so existing `except ValueError` code keeps working.

    TracrDecompilerError
    ├── UsageError        arguments or settings out of range (cli.UserError)
    ├── FileError         a file we read or write: missing, special, too large, malformed
    │   ├── ModelFileError        loading/model_io.py
    │   └── CheckpointError       model/release.py
    ├── ProgramError      program/ir.py, program/source.py (parser)
    ├── EvaluationError   program/values.py
    ├── CompileError      compiling/compiler.py
    ├── NotTracrError     encoding/nodes.py
    ├── DecompileError    decompiling/decompile.py
    ├── DatasetError      dataset/reader.py
    └── GenerationError   generation/sampler.py (settings that admit no program; a shard that failed)
"""

from __future__ import annotations


class TracrDecompilerError(Exception):
  """A failure caused by the input or the environment, reported as one line (exit status 2)."""


class UsageError(TracrDecompilerError, ValueError):
  """An argument or setting outside its documented range."""


class FileError(TracrDecompilerError, ValueError):
  """A file that cannot be read or written as asked (special file, too large, malformed, ...)."""
