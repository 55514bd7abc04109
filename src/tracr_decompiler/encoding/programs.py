"""Programs <-> training targets, aligned with the weight graph's nodes.

Node i of the weight graph (i >= 2; 0 and 1 are tokens and indices) is one
line of the program. Targets per node, for the non-autoregressive head:
    op, encoding, fn  class ids (vocabularies below, derived from the registry)
    args              pointers to earlier nodes, -100 where the op has fewer args
For the autoregressive decoder the same lines become a token sequence, one
line per op node in node order: OP ENC FN ARG ARG ARG, then EOS.
"""

from __future__ import annotations

import numpy as np

from tracr_decompiler.encoding.weights import WeightGraph
from tracr_decompiler.program import ir, ops as op_table, registry, to_rasp

IGNORE = -100
MAX_ARGS = 3
OPS = op_table.KINDS
ENCODINGS = op_table.ENCODINGS
FNS = registry.ALL_NAMES
FN_INDEX = {f: i for i, f in enumerate(FNS)}
MAX_NODES = 32  # pointer vocabulary of the decoder

# Autoregressive vocabulary: specials, then every field value, then node refs.
SPECIALS = ("<pad>", "<bos>", "<eos>", "<none>")
AR_VOCAB = SPECIALS + tuple(f"op:{o}" for o in OPS) + tuple(f"enc:{e}" for e in ENCODINGS) + \
    tuple(f"fn:{f}" for f in FNS) + tuple(f"ref:{i}" for i in range(MAX_NODES))
AR_INDEX = {t: i for i, t in enumerate(AR_VOCAB)}
PAD, BOS, EOS, NONE = (AR_INDEX[s] for s in SPECIALS)
TOKENS_PER_LINE = 3 + MAX_ARGS


class AlignmentError(ValueError):
  """The weight graph's nodes do not correspond one-to-one to the program's lines."""


def node_names(graph: WeightGraph, residual_labels: list[str]) -> list[str]:
  """The SOp name each node writes, read from residual labels (training only)."""
  names = ["tokens", "indices"]
  for n in graph.nodes[2:]:
    labels = {residual_labels[d].split(":")[0] for d in n.writes}
    if len(labels) != 1:
      raise AlignmentError(f"node writes {len(labels)} SOps")
    names.append(labels.pop().rsplit("_", 1)[0])
  return names


def targets(graph: WeightGraph, program: ir.Program, residual_labels: list[str]) -> dict[str, np.ndarray]:
  """Per-node targets for `program` compiled with default (line-order) names."""
  label_to_line = {to_rasp.default_label(i, len(program.lines)): line for i, line in enumerate(program.lines, 1)}
  names = node_names(graph, residual_labels)
  if len(names) != len(program) + 2 or set(names[2:]) != set(label_to_line):
    raise AlignmentError("nodes and lines do not match")
  line_to_node = {"tokens": 0, "indices": 1}
  line_to_node.update({label_to_line[name].out: i for i, name in enumerate(names) if i >= 2})
  # Order-free arguments follow node order, which the model sees (ir.order_symmetric).
  program = ir.order_symmetric(program, lambda name: line_to_node[name])
  label_to_line = {to_rasp.default_label(i, len(program.lines)): line for i, line in enumerate(program.lines, 1)}
  s = len(names)
  op, enc, fn = (np.full(s, IGNORE, np.int64) for _ in range(3))
  args = np.full((s, MAX_ARGS), IGNORE, np.int64)
  for i, name in enumerate(names[2:], 2):
    line = label_to_line[name]
    op[i], enc[i] = OPS.index(line.op), ENCODINGS.index(line.encoding)
    # A table function (tables.py) has no name to learn: its fn is left without a target, and at
    # decode time the readers (decompiling/read_functions.py) replace whatever the decoder guesses.
    fn[i] = FN_INDEX.get(line.fn, IGNORE)
    for k, a in enumerate(line.args):
      args[i, k] = line_to_node[a]
      if args[i, k] >= i:
        raise AlignmentError("an argument is not an earlier node")
  return {"op": op, "enc": enc, "fn": fn, "args": args}


def ar_sequence(t: dict[str, np.ndarray]) -> np.ndarray:
  """Autoregressive token ids for the per-node targets (without BOS)."""
  seq = []
  for i in range(2, len(t["op"])):
    seq += [AR_INDEX[f"op:{OPS[t['op'][i]]}"], AR_INDEX[f"enc:{ENCODINGS[t['enc'][i]]}"],
            AR_INDEX[f"fn:{FNS[t['fn'][i]]}"] if t["fn"][i] != IGNORE else NONE]  # a table (see targets)
    seq += [AR_INDEX[f"ref:{a}"] if a != IGNORE else NONE for a in t["args"][i]]
  return np.array(seq + [EOS], np.int64)


def program_from_fields(ops, encs, fns, args) -> ir.Program:
  """Lines for op nodes 2.. from predicted fields; node j is named n{j}.

  Raises ir.ProgramError if the prediction is not a well-formed program.
  """
  lines = []
  name = lambda j: ("tokens", "indices")[j] if j < 2 else f"n{j}"
  for i in range(2, len(ops)):
    op = OPS[ops[i]]
    arity = op_table.SPECS[op].arity
    lines.append(ir.Line(op, ENCODINGS[encs[i]], FNS[fns[i]], tuple(name(int(a)) for a in args[i][:arity]),
                         name(i)))
  return ir.canonicalize(ir.Program(tuple(lines)))


def program_from_ar(tokens: list[int]) -> ir.Program:
  """Parses an autoregressive token sequence (without BOS) into a program."""
  ops, encs, fns = [0, 0], [0, 0], [0, 0]
  args: list[list[int]] = [[], []]
  i = 0
  while i + TOKENS_PER_LINE <= len(tokens) and tokens[i] != EOS:
    chunk = [AR_VOCAB[t] for t in tokens[i:i + TOKENS_PER_LINE]]
    if not (chunk[0].startswith("op:") and chunk[1].startswith("enc:") and chunk[2].startswith("fn:")):
      raise ir.ProgramError("malformed line tokens")
    ops.append(OPS.index(chunk[0][3:]))
    encs.append(ENCODINGS.index(chunk[1][4:]))
    fns.append(FNS.index(chunk[2][3:]))
    args.append([int(t[4:]) if t.startswith("ref:") else -1 for t in chunk[3:]])
    i += TOKENS_PER_LINE
  if len(ops) == 2:
    raise ir.ProgramError("no lines decoded")
  return program_from_fields(ops, encs, fns, args)
