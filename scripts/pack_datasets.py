"""Copies finished dataset parts into one compact Parquet file each (zstd level 19: about half the size of the
generator's shards), e.g. to carry them to a GPU machine whose transfer is size-limited.

Run:  python scripts/pack_datasets.py --out DIR PART [PART ...]      -> DIR/<part name>/

The copy keeps the part's dataset_config.json and manifest (content hash included), so a run trained on the
copy records the same data, and its caches and `evaluate --exclude` treat it as the same dataset.
"""

import argparse
import json
import pathlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq


def pack(part: pathlib.Path, out: pathlib.Path) -> int:
  manifest = json.loads((part / "manifest.json").read_text())  # finished parts only
  table = pa.concat_tables([pq.read_table(part / name) for name in manifest["shards"]], promote_options="none")
  dest = out / part.name
  (dest / "data").mkdir(parents=True, exist_ok=True)
  pq.write_table(table, dest / "data" / "shard-00000.parquet", compression="zstd", compression_level=19,
                 row_group_size=1 << 20)
  shutil.copy(part / "dataset_config.json", dest / "dataset_config.json")
  manifest["shards"] = ["data/shard-00000.parquet"]
  (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
  return table.num_rows


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("parts", nargs="+")
  args = ap.parse_args()
  for part in args.parts:
    n = pack(pathlib.Path(part), pathlib.Path(args.out))
    print(f"{part}: {n} programs -> {args.out}/{pathlib.Path(part).name}")


if __name__ == "__main__":
  main()
