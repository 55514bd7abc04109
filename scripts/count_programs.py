"""Counts the programs of training parts: rows and distinct programs per split, over all the parts together.

Run:  python scripts/count_programs.py PART [PART ...]      (finished dataset folders)

Small programs recur across parts drawn with other seeds, so "trained on N programs" is the number of distinct
programs in the train splits, which this prints beside the row counts. A program's id is a hash of its source,
and its split follows from the id (`dataset/rows.split_of`), so a program is in the same split in every part.
"""

from __future__ import annotations

import argparse
import json

from tracr_decompiler.dataset import reader


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("parts", nargs="+", help="finished dataset folders")
  args = parser.parse_args(argv)
  result: dict = {"parts": len(args.parts)}
  for split in ("train", "val", "test"):
    ids = [i for part in args.parts for i in reader.split_ids(part, split)]
    result[split] = {"rows": len(ids), "distinct_programs": len(set(ids))}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
