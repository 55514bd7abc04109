"""Reads a dataset folder written by writer.py (any Parquet reader works too)."""

from __future__ import annotations

import json
import pathlib

import pyarrow as pa
import pyarrow.dataset as ds

from tracr_decompiler.dataset import schema
from tracr_decompiler.errors import TracrDecompilerError


class DatasetError(TracrDecompilerError, ValueError):
  """Missing, foreign or incompatible dataset folder."""


def manifest(path: str | pathlib.Path) -> dict:
  path = pathlib.Path(path)
  try:
    data = json.loads((path / "manifest.json").read_text())
  except (OSError, ValueError):
    raise DatasetError(f"{path} is not a finished dataset (no readable manifest.json)") from None
  if data.get("schema_version") != schema.SCHEMA_VERSION:
    raise DatasetError(f"{path}: schema version {data.get('schema_version')} is not {schema.SCHEMA_VERSION}")
  return data


def generation_config(path: str | pathlib.Path) -> dict | None:
  """The generator settings a dataset was drawn with (dataset_config.json), or None if absent."""
  try:
    value = json.loads((pathlib.Path(path) / "dataset_config.json").read_text()).get("generation")
  except (OSError, ValueError, AttributeError):
    return None
  return value if isinstance(value, dict) else None


def program_ids(path: str | pathlib.Path) -> tuple[set[str], int]:
  """(ids of every program in the dataset's shards, shards read), finished or not.

  For excluding a training set from a test set: a dataset whose generation
  was stopped still names programs that must not count as unseen, so every
  whole shard present is read (shards are written atomically).
  """
  files = sorted((pathlib.Path(path) / "data").glob("shard-*.parquet"))
  if not files:
    raise DatasetError(f"{path} has no shards")
  table = ds.dataset([str(f) for f in files], format="parquet", schema=schema.SCHEMA).to_table(columns=["id"])
  return set(table.column("id").to_pylist()), len(files)


def split_ids(path: str | pathlib.Path, split: str) -> list[str]:
  """Program ids of one split of a finished dataset, in shard order (reads the id column alone)."""
  return [row["id"] for row in read_split(path, split, columns=["id"])]


def read_split(path: str | pathlib.Path, split: str | None = None, columns=None,
               limit: int | None = None) -> list[dict]:
  """Rows of one split (or all), in shard order."""
  path = pathlib.Path(path)
  files = [str(path / name) for name in manifest(path)["shards"]]
  try:
    dataset = ds.dataset(files, format="parquet", schema=schema.SCHEMA)
    table = dataset.to_table(columns=columns, filter=(ds.field("split") == split) if split else None)
  except (pa.ArrowException, OSError) as e:  # a truncated shard, a dropped column, a foreign file
    raise DatasetError(f"{path}: a shard cannot be read as this dataset's Parquet "
                       f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
  if limit is not None:
    table = table.slice(0, limit)
  return table.to_pylist()
