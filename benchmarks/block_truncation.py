"""How often the encoder's fixed-size blocks truncate what a node holds, per compile setting.

Run:  python benchmarks/block_truncation.py --data data/mixed_fresh [--limit 200]

The encoder keeps MAX_BLOCK values per SOp block (encoding/weights.py); a
block with more values (a vocabulary of 20, an SOp with 24 values) is cut
there, wherever it is read. This counts, over a dataset's models, the nodes
whose block is larger, and the models with at least one such node, overall
and by vocab size and max_seq_len.
"""

from __future__ import annotations

import argparse
import collections
import json

from tracr_decompiler.dataset import reader, rows
from tracr_decompiler.encoding import weights


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True)
  parser.add_argument("--limit", type=int, default=200)
  args = parser.parse_args(argv)
  nodes = cut_nodes = models = cut_models = unreadable = 0
  by: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for row in reader.read_split(args.data, limit=args.limit):
    model = rows.model_from_row(row)
    try:
      graph = weights.encode_model(model)
    except weights.NotTracrError:
      unreadable += 1
      continue
    # Every block a node reads is another node's own block (tokens and indices included), so a block is
    # cut exactly when its writer's block is larger than MAX_BLOCK.
    cut = sum(1 for n in graph.nodes if len(n.writes) > weights.MAX_BLOCK)
    s = model.settings
    models += 1
    nodes += len(graph.nodes)
    cut_nodes += cut
    cut_models += cut > 0
    for key in (f"vocab {len(s.vocab)}", f"max_seq_len {s.max_seq_len}"):
      by[key]["models"] += 1
      by[key]["truncated"] += cut > 0
  result = {"data": args.data, "max_block": weights.MAX_BLOCK, "models": models, "unreadable": unreadable,
            "models_truncated": cut_models, "nodes": nodes, "nodes_truncated": cut_nodes,
            "by_setting": {k: dict(v) for k, v in sorted(by.items(), key=lambda kv: (kv[0].split()[0],
                                                                                     int(kv[0].split()[1])))}}
  print(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
