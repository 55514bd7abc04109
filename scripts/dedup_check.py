"""Checks that a test set shares no program with the training splits of given parts, and rescores a report without
the programs those parts also drew (a proxy for "often drawn").

Run:  python scripts/dedup_check.py --test DATASET --parts PART,PART,... [--report reports/X/report.json]

Every dataset part splits its programs by a hash of their source (`dataset/rows.split_of`), so a set drawn with
`--val-percent 0 --test-percent 10` has in its test split exactly the programs that no part with the default 5 %
val / 5 % test puts in its train split. This prints how many test programs are in a train split of the given
parts (0 is the claim) and in any split of them; with a report from `evaluate --split test` on the same set, the
NAR greedy exact rate on the test programs none of the parts drew.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from tracr_decompiler.dataset import reader


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--test", required=True, help="dataset folder whose test split is checked")
  parser.add_argument("--parts", required=True, help="training-like parts, comma-separated")
  parser.add_argument("--report", help="report.json of `evaluate --split test` on --test")
  args = parser.parse_args(argv)
  test = set(reader.split_ids(args.test, "test"))
  parts = [p for p in args.parts.split(",") if p]
  train = set().union(*(reader.split_ids(p, "train") for p in parts))
  drawn = set().union(*(reader.program_ids(p)[0] for p in parts))
  result: dict = {"test_programs": len(test), "parts_distinct_programs": len(drawn),
                  "in_a_train_split": len(test & train), "in_any_split": len(test & drawn)}
  if args.report:
    records = json.loads(pathlib.Path(args.report).read_text())["records"]
    rest = [r for r in records if r["id"] not in drawn]
    result["nar_exact_not_drawn"] = {"exact": sum(bool(r["nar"]["exact"]) for r in rest), "programs": len(rest)}
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
