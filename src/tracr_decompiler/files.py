"""Files in and out, bounded and atomic: the one place that touches user-named paths.

Reading: regular files only (a FIFO or device would block or never end), and
the size is checked before a byte is read. Safetensors headers are parsed here
with `json` from a bounded read, so a file's claims (dtypes, shapes, offsets)
are checked against its real size before any tensor is allocated.

Writing: a temporary file in the target's folder, then `os.replace`, so a
reader never sees half a file; never over a device, FIFO or folder; through a
symlink to its target; with the mode the umask gives (mkstemp makes 0600).
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tempfile
from typing import Any, Callable

from tracr_decompiler.errors import FileError

# Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER_BYTES = 8 << 20  # safetensors' own cap is 100 MB; ours hold a few hundred names and labels
MAX_TENSOR_DIMS = 8


def _kind(mode: int) -> str:
  for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                     (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
    if test(mode):
      return name
  return "not a regular file"


def open_regular(path: str | os.PathLike, max_bytes: int, what: str = "file") -> tuple[io.BufferedReader, int]:
  """Opens a regular file for reading after checking its size; returns (file, size).

  O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a
  writer), and the type is checked on the open descriptor, so nothing can be
  swapped in between the check and the read.

  Raises:
    FileError: missing, unreadable, not a regular file, or larger than max_bytes.
  """
  try:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
  except OSError as e:
    raise FileError(f"cannot read {path}: {e.strerror}") from None
  try:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
      raise FileError(f"cannot read {path}: it is {_kind(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
      raise FileError(f"{path} is {st.st_size} bytes, more than a {what} may be ({max_bytes})")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st.st_size
  except BaseException:
    os.close(fd)
    raise


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str = "file") -> bytes:
  f, size = open_regular(path, max_bytes, what)
  with f:
    try:
      data = f.read(max_bytes + 1)
    except OSError as e:
      raise FileError(f"cannot read {path}: {e.strerror}") from None
  if len(data) > max_bytes:  # grew since the check
    raise FileError(f"{path} is more than {max_bytes} bytes; not a {what}")
  return data


def read_text(path: str | os.PathLike, max_bytes: int, what: str = "file") -> str:
  """UTF-8 text; a byte-order mark (as some Windows editors write) is dropped."""
  try:
    return read_bytes(path, max_bytes, what).decode("utf-8-sig")
  except UnicodeDecodeError:
    raise FileError(f"{path} is not UTF-8 text") from None


def read_json(path: str | os.PathLike, max_bytes: int = 16 << 20, what: str = "JSON file") -> Any:
  text = read_text(path, max_bytes, what)  # its own errors (missing, too large) say what is wrong
  try:
    return json.loads(text)
  except (ValueError, RecursionError) as e:
    raise FileError(f"{path} is not valid JSON ({type(e).__name__})") from None


# ---------------------------------------------------------------------------
# safetensors


def _is_int(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def read_safetensors_header(f: io.BufferedReader, size: int, path: str | os.PathLike) -> tuple[dict, dict, int]:
  """Parses and checks a safetensors header without touching the tensor data.

  Format: an 8-byte little-endian header length N, N bytes of JSON
  {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}},
  then the data. Every entry's byte count must equal prod(shape) * itemsize,
  and the entries must tile the data exactly up to the end of the file, so no
  claim can exceed what is really on disk.

  Returns:
    (tensors: name -> {"dtype", "shape", "data_offsets"}, metadata, data_start).
  Raises:
    FileError: for anything malformed, with the file name.
  """
  bad = lambda why: FileError(f"{path} is not a valid safetensors file ({why})")
  if size < 8:
    raise bad("shorter than its 8-byte header length")
  f.seek(0)
  n = int.from_bytes(f.read(8), "little")
  if n < 2 or n > min(MAX_HEADER_BYTES, size - 8):
    raise bad(f"header length {n} does not fit the file ({size} bytes)")
  raw = f.read(n)
  if len(raw) != n:
    raise bad("truncated header")
  try:
    header = json.loads(raw.decode("utf-8"))
  except (ValueError, RecursionError):
    raise bad("header is not JSON") from None
  if not isinstance(header, dict):
    raise bad("header is not a JSON object")
  metadata = header.pop("__metadata__", None) or {}
  if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
    raise bad("__metadata__ is not a map of strings")
  entries = []
  for name, entry in header.items():
    if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
      raise bad(f"entry {name[:80]!r} is not {{dtype, shape, data_offsets}}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
      raise bad(f"tensor {name[:80]!r} has unknown dtype {str(dtype)[:20]!r}")
    if not (isinstance(shape, list) and len(shape) <= MAX_TENSOR_DIMS and all(_is_int(d) and d >= 0 for d in shape)):
      raise bad(f"tensor {name[:80]!r} has a malformed shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
      raise bad(f"tensor {name[:80]!r} has malformed data offsets")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
      raise bad(f"tensor {name[:80]!r}: its shape and byte range disagree")
    entries.append((offsets[0], offsets[1], name))
  position = 0
  for begin, end, name in sorted(entries):
    if begin != position:
      raise bad(f"tensor {name[:80]!r} overlaps another or leaves a gap")
    position = end
  if position != size - 8 - n:
    raise bad(f"its tensors claim {position} bytes of data but the file holds {size - 8 - n}")
  return header, metadata, 8 + n


def read_tensor(f: io.BufferedReader, entry: dict, data_start: int, path: str | os.PathLike):
  """One tensor as a writable NumPy array (F16/BF16/F32/F64; BF16 comes back as float32), read into place."""
  import numpy as np
  dtypes = {"F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}
  if entry["dtype"] not in dtypes:
    raise FileError(f"{path}: tensor dtype {entry['dtype']} is not a float type")
  out = np.empty(entry["shape"], dtype=dtypes[entry["dtype"]])
  f.seek(data_start + entry["data_offsets"][0])
  if out.nbytes and f.readinto(out.reshape(-1).data.cast("B")) != out.nbytes:
    raise FileError(f"{path} was truncated while being read")
  if entry["dtype"] == "BF16":  # bfloat16 is the top half of a float32 (NumPy has no bfloat16)
    return (out.astype(np.uint32) << 16).view(np.float32)
  return out


# ---------------------------------------------------------------------------
# writing


def output_path(path: str | os.PathLike) -> str:
  """Where writing `path` will land: symlinks followed, special files and folders refused.

  Raises:
    FileError: naming the path, when it is a folder or not a regular file.
  """
  target = os.path.realpath(path)
  try:
    st = os.stat(target)
  except FileNotFoundError:
    return target
  except OSError as e:
    raise FileError(f"cannot write {path}: {e.strerror}") from None
  if stat.S_ISDIR(st.st_mode):
    raise FileError(f"{path} is a directory; give a file name to write")
  if not stat.S_ISREG(st.st_mode):
    raise FileError(f"{path} is {_kind(st.st_mode)}; refusing to replace it with a regular file")
  return target


def check_outputs(outputs: dict[str, str | os.PathLike | None], inputs: list[str | os.PathLike | None],
                  make_folders: tuple[str, ...] = ()) -> None:
  """Refuses, before any work, outputs that would destroy an input or each other, or land in no folder.

  outputs: flag -> path (None: not given); inputs: the command's input files (None or missing: skipped);
  make_folders: flags whose missing folder the command creates itself.
  Raises:
    FileError: naming the flag and the path.
  """
  given = {flag: (path, output_path(path)) for flag, path in outputs.items() if path is not None}
  sources = [os.path.realpath(p) for p in inputs if p is not None and os.path.exists(p)]
  seen: dict[str, str] = {}
  for flag, (path, target) in given.items():
    if target in sources or (os.path.exists(target) and any(os.path.samefile(target, s) for s in sources)):
      raise FileError(f"{flag} {path} is one of this command's inputs; writing it would destroy it")
    if target in seen:
      raise FileError(f"{flag} {path} is also given as {seen[target]}; each output needs its own file")
    seen[target] = flag
    folder = os.path.dirname(target)
    if flag not in make_folders and not os.path.isdir(folder):
      raise FileError(f"{flag} {path}: the folder {os.path.dirname(str(path)) or '.'} does not exist")


def _umask() -> int:
  """The process umask, read without changing it where Linux allows."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> str:
  """Calls write(tmp) on a temporary file beside the target, then renames it into place.

  The target's folder must exist. Returns the path written (symlinks resolved).
  Raises:
    FileError: the path is a folder or special file, or the write fails (disk full, permissions).
  """
  target = output_path(path)
  folder, name = os.path.split(target)
  try:
    # A legal final name (<= 255 bytes) must give a legal temporary one: at most 200 bytes of it are kept.
    stem = name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
  except OSError as e:
    raise FileError(f"cannot write {path}: {e.strerror}") from None
  os.close(fd)
  try:
    write(tmp)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)
  except OSError as e:
    _unlink(tmp)
    raise FileError(f"cannot write {path}: {e.strerror or e}") from None
  except BaseException:
    _unlink(tmp)
    raise
  return target


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
  def write(tmp: str) -> None:
    # A lone surrogate (a token read from JSON) cannot be UTF-8: it is written as its \ud800 escape.
    with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
      f.write(text)
  return atomic_write(path, write)


def _unlink(path: str) -> None:
  try:
    os.unlink(path)
  except OSError:
    pass


def make_dirs(path: str | os.PathLike) -> str:
  """Creates an output folder (and parents); says which path is in the way if it cannot."""
  try:
    os.makedirs(path, exist_ok=True)
  except FileExistsError:
    raise FileError(f"cannot create folder {path}: a file is in the way") from None
  except OSError as e:
    raise FileError(f"cannot create folder {path}: {e.strerror}") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise FileError(f"cannot write to {path}: permission denied")
  return str(path)
