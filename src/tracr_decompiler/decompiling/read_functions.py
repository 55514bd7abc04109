"""Candidate programs with their functions read from the weights.

The neural decoder predicts a program's structure (ops, arguments, encodings)
and a registry guess for each function. The weights hold the functions
themselves (encoding/readers.py), as tables over value *indices* in tracr's
block order. `read_variant` turns a candidate into its "read" variant: each
line whose node's table can be read and given real values gets that table,
unless its registry guess already agrees with it on every value its inputs
take (then the name stays: readable source). A table that some registry
function (or Comparison) matches is written as that name, else as the shortest
formula of a small grammar that matches, else it stays a table (registry.named).

Turning indices into values:
  inputs    tracr's value sets of the candidate's SOps (its basis inference on
            the candidate), sorted as tracr sorts a block. Tokens and indices
            are exact; an intermediate SOp's values are the candidate's, which
            must at least have as many values as the block has dimensions.
  linear    a LinearSequenceMap's two factors, named as the registry names them.
  outputs   a numerical output is the number the MLP writes; the model's
            output SOp's values are in its output encoder, and so are those
            of the SOps that categorical Aggregates copy into it; any other
            categorical output keeps the candidate's value labels when their
            count matches the block, else gets 0..n-1. Its true labels are not
            in the weights, their order is (tracr sorts a block by value), and
            any labels in that order, with the lines that read the SOp read
            over them, compile to the same weights up to renaming.

Lines are matched to weight-graph nodes by structure (op kind and the nodes
their arguments map to), so this works for any candidate, NAR or AR. Whatever
cannot be matched or read is left as guessed. Nothing here claims a program is
right: the read variant is one more candidate, and verification judges it.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools

import numpy as np
from tracr.compiler import basis_inference, nodes as tracr_nodes, rasp_to_graph
from tracr.craft import bases

from tracr_decompiler.compiling.compiled import CompiledModel
from tracr_decompiler.encoding import readers
from tracr_decompiler.encoding.weights import WeightGraph
from tracr_decompiler.program import ir, registry, tables, to_rasp
from tracr_decompiler.program.values import is_number, value_key

_MLP_OPS = ("map", "sequence_map")  # functions read as tables (a LinearSequenceMap's: two factors)
_NODE_KIND = {"map": "mlp", "sequence_map": "mlp", "linear_sequence_map": "mlp", "aggregate": "head",
              "selector_width": "selector_width"}
_TOLERANCE = 1e-4  # numbers read from float32 weights, compared with a guess
_MATCHINGS = 8  # line -> node assignments tried per candidate (more only when lines are interchangeable)
_SEARCH_STEPS = 20_000  # steps of the matching search per candidate (a 23-line program needs a few hundred)


@dataclasses.dataclass
class ReadVariant:
  program: ir.Program  # the candidate with read tables (the candidate itself when nothing changed)
  read: int  # lines whose function was read from the weights and given values
  disagreed: int  # of those, lines whose guess differed from the table (replaced)
  replaced: dict[str, str] = dataclasses.field(default_factory=dict)  # line out -> the guess it replaced


def match_nodes(program: ir.Program, graph: WeightGraph, limit: int = _MATCHINGS) -> list[dict[str, int]]:
  """Ways to give lines weight-graph nodes that match the most lines (at most `limit` of them).

  A line's node has the line's kind and reads exactly its arguments' nodes
  (keys, queries and values roles for a head; the MLP's inputs for a Map or
  SequenceMap); each node serves one line, and the output line takes the
  output node. Two Maps of `tokens` fit either of two nodes until a later
  line's arguments tell them apart, so this is a small backtracking search,
  bounded by the most lines matched so far (and _SEARCH_STEPS); a line that
  fits no node (a wrong argument, say) stays unmatched, and so do the lines
  built on it.
  """
  output = int(np.flatnonzero(graph.is_output)[0]) if graph.is_output.any() else -1
  lines = program.lines
  found: list[dict[str, int]] = []
  most, steps = [0], [0]

  def search(i: int, node: dict[str, int], used: set[int], matched: int) -> None:
    steps[0] += 1
    # Branch and bound on lines matched: interchangeable early lines (four Maps of `tokens`) are told apart
    # only many lines later, so the matchings worth keeping can lie deep in the search.
    if (steps[0] > _SEARCH_STEPS or matched + len(lines) - i < most[0]
        or (most[0] == len(lines) and len(found) >= limit)):  # nothing better left to find
      return
    if i == len(lines):
      if matched > most[0]:
        most[0] = matched
        found.clear()
      if len(found) < limit:
        found.append({k: v for k, v in node.items() if k not in ir.INPUTS})
      return
    line = lines[i]
    if all(a in node for a in line.args):
      for j, n in enumerate(graph.nodes):
        if (j not in used and n.kind == _NODE_KIND[line.op] and _reads(n, line, [node[a] for a in line.args])
            and (j == output) == (i == len(lines) - 1)):
          search(i + 1, {**node, line.out: j}, used | {j}, matched + 1)
    search(i + 1, node, used, matched)  # the line unmatched

  search(0, {"tokens": 0, "indices": 1}, set(), 0)
  return [m for m in found if m]


def _reads(n, line: ir.Line, args: list[int]) -> bool:
  """Whether node n reads exactly the argument nodes `args` in the line's roles."""
  if line.op in ("aggregate", "selector_width"):
    want = {"key": [args[0]], "query": [args[1]]}
    if line.op == "aggregate":
      want["value"] = [args[2]]
    return all(n.inputs.get(role, []) == nodes for role, nodes in want.items())
  return n.inputs.get("mlp", []) == sorted(set(args))


def value_sets(program: ir.Program, vocab, max_seq_len: int) -> dict[str, list]:
  """Each line's (and input's) value set as tracr infers it, in tracr's block order."""
  return {name: list(values) for name, values in _value_sets(program, tuple(vocab), max_seq_len).items()}


@functools.lru_cache(maxsize=4096)
def _value_sets(program: ir.Program, vocab: tuple, max_seq_len: int) -> dict[str, tuple]:
  # Cached: reading infers each prefix of each candidate, and candidates share most of their prefixes
  # (tracr's inference deep-copies its graph; uncached, it was a quarter of a decompile).
  expr = to_rasp.to_rasp(program, {line.out: line.out for line in program.lines})
  extracted = rasp_to_graph.extract_rasp_graph(expr)
  basis_inference.infer_bases(extracted.graph, extracted.sink, set(vocab), max_seq_len)
  out = {}
  for label, data in extracted.graph.nodes.items():  # labels are `{name}_{id}`; "tokens", "indices" as is
    name = label if label in ir.INPUTS else label.rsplit("_", 1)[0]
    if data.get(tracr_nodes.VALUE_SET) is not None:
      out[name] = tuple(_block_order(data[tracr_nodes.VALUE_SET]))
  return out


def _block_order(values) -> list:
  """Values in the order of their dimensions in a tracr block."""
  return [_py(d.value) for d in sorted(bases.BasisDirection("x", v) for v in set(values))]


def _py(v):
  """A plain Python value (tables hold ints, floats, bools and strings, not NumPy scalars)."""
  return v.item() if isinstance(v, np.generic) else v


def _number(v: float):
  """A number read from float32 weights: a simple fraction when it is one, else rounded."""
  f = fractions.Fraction(float(v)).limit_denominator(64)
  if abs(float(f) - float(v)) <= 1e-5:
    return int(f) if f.denominator == 1 else float(f)
  return round(float(v), 6)


def _same(a, b) -> bool:
  if is_number(a) and is_number(b):
    return abs(float(a) - float(b)) <= _TOLERANCE * max(1.0, abs(float(b)))
  return value_key(a) == value_key(b)


def _kind(values: list, encoding: str) -> str:
  if encoding == "numerical":
    return registry.NUM
  if values and all(isinstance(v, (bool, np.bool_)) for v in values):
    return registry.BOOL
  return registry.INT


class _Skip(Exception):
  """This line's table cannot be read or given values: leave the guess."""


def _mlp_table(line: ir.Line, model: CompiledModel, graph: WeightGraph, j: int, arg_nodes: list[int],
               values: dict[str, list], encodings: dict[str, str], is_output: bool) -> dict:
  """{input value(s): output value} of MLP node j for a Map or SequenceMap line."""
  t = readers.read_mlp(model, graph, j)
  domains = []
  for k, arg in enumerate(line.args):
    vs = values.get(arg)
    block = len(graph.nodes[arg_nodes[k]].writes)
    probes = t.probe_x if arg_nodes[k] == min(arg_nodes) else t.probe_y
    numerical = encodings[arg] == "numerical"
    if vs is None or (numerical and len(probes) != len(vs)) or (not numerical and (block < 2 or len(vs) != block)):
      raise _Skip(f"{arg}'s values do not fit its block")
    domains.append(vs)
  table = t.outputs
  if line.op == "sequence_map":
    if arg_nodes[0] == arg_nodes[1]:
      raise _Skip("a SequenceMap of one SOp with itself")
    if arg_nodes[0] > arg_nodes[1]:  # the table's axes are in node order
      table = table.T
  if table.shape != tuple(len(d) for d in domains):
    raise _Skip("table shape")
  if line.encoding == "numerical":
    if t.categorical_output:
      raise _Skip("a numerical line on a categorical block")
    out = lambda x: _number(x)
  else:
    if not t.categorical_output:
      raise _Skip("a categorical block of one value")
    labels = _output_labels(line, model, graph, j, values, is_output)
    if (table < 0).any():
      raise _Skip("an input value with no output")
    out = lambda x: labels[int(x)]
  return {idx if len(idx) > 1 else idx[0]: out(table[pos])
          for pos, idx in ((pos, tuple(d[p] for d, p in zip(domains, pos))) for pos in np.ndindex(table.shape))}


def _output_labels(line: ir.Line, model: CompiledModel, graph: WeightGraph, j: int, values: dict[str, list],
                   is_output: bool) -> list:
  """The value of each dimension of node j's categorical block.

  `is_output`: the line's SOp holds the output's values (it is the output, or
  reaches it through categorical Aggregates, which copy values): they are in the
  model's output encoder, in the block's order (both sorted by value).
  """
  writes = graph.nodes[j].writes
  if is_output and model.categorical_output and len(model.output_values) == len(model.output_dims):
    where = {d: v for d, v in zip(model.output_dims, model.output_values)}
    if all(d in where for d in writes):  # the output's own block: each dimension's value
      return [_py(where[d]) for d in writes]
    if not any(d in where for d in writes) and len(writes) == len(model.output_values):
      # a block that Aggregates copy into the output: the same values, in the same (sorted) order
      return [_py(v) for v in model.output_values]
  guess = values.get(line.out)
  if guess is not None and len(guess) == len(writes):
    return guess
  # The labels are not in the weights, their order is (tracr sorts a block by value): 0..n-1 keep it, and the
  # lines that read this SOp are read over the same labels, so the program compiles to the same weights.
  return list(range(len(writes)))


def _predicate_pairs(line: ir.Line, model: CompiledModel, graph: WeightGraph, j: int,
                     values: dict[str, list]) -> tuple[list, list, set]:
  """(key values, query values, the (key, query) pairs the head's QK circuit selects)."""
  truth = readers.read_predicate(model, graph, j)
  keys, queries = values.get(line.args[0]), values.get(line.args[1])
  if keys is None or queries is None or truth.shape != (len(queries), len(keys)) or truth.size == 0:
    raise _Skip("the predicate's blocks do not fit the key and query values")
  return keys, queries, {(keys[k], queries[q]) for q, k in zip(*np.nonzero(truth))}


def _agrees(line: ir.Line, table: dict) -> bool:
  f = registry.function(line.fn)
  if f is None:
    return False
  try:
    return all(_same(f.fn(*(x if isinstance(x, tuple) else (x,))), y) for x, y in table.items())
  except Exception:  # pylint: disable=broad-except  (a guess that fails on a value disagrees)
    return False


def _read_line(line: ir.Line, model: CompiledModel, graph: WeightGraph, j: int, node: dict[str, int],
               values: dict[str, list], encodings: dict[str, str], is_output: bool) -> str | None:
  """The line's fn read from node j: the guess when it agrees, else a registry name or table; None: unread."""
  arg_nodes = [0 if a == "tokens" else 1 if a == "indices" else node[a] for a in line.args]
  kinds = [_kind(values.get(a, []), encodings[a]) for a in line.args]
  try:
    if line.op in _MLP_OPS:
      table = _mlp_table(line, model, graph, j, arg_nodes, values, encodings, is_output)
      if _agrees(line, table):
        return line.fn
      domains = [values[a] for a in line.args]
      return registry.named(tables.lookup(table).source, domains, kinds, search_formulas=True, encoding=line.encoding)
    if line.op == "linear_sequence_map":
      if arg_nodes[0] == arg_nodes[1]:
        raise _Skip("a LinearSequenceMap of one SOp with itself")
      a, b = readers.read_linear(model, graph, j)
      factors = (_number(a), _number(b)) if arg_nodes[0] < arg_nodes[1] else (_number(b), _number(a))
      found = registry.LINEAR_BY_FACTORS.get(factors)
      return found.name if found is not None else None
    if line.op in ("aggregate", "selector_width"):
      keys, queries, pairs = _predicate_pairs(line, model, graph, j, values)
      guess = registry.predicate(line.fn)
      try:
        if guess is not None and all(bool(guess(k, q)) == ((k, q) in pairs) for k in keys for q in queries):
          return line.fn
      except TypeError:
        pass
      return registry.named(tables.predicate(pairs).source, [keys, queries], kinds[:2], search_formulas=True)
  except (_Skip, tables.TableError, ValueError, IndexError, KeyError):
    return None
  return None


def read_variant(program: ir.Program, model: CompiledModel, graph: WeightGraph) -> ReadVariant:
  """`program` with each readable line's function taken from the weights (see the module docstring).

  Of several ways to match lines to nodes, the one under which most guesses
  agree with the weights wins (then the one that reads most lines).
  """
  best = ReadVariant(program, 0, 0)
  for node in match_nodes(program, graph):
    variant = _read_variant(program, model, graph, node)
    if (variant.read - variant.disagreed, variant.read) > (best.read - best.disagreed, best.read):
      best = variant
  return best


def _holds_output_values(program: ir.Program) -> set[str]:
  """The output SOp and the SOps whose values categorical Aggregates copy into it unchanged."""
  by_out = {line.out: line for line in program.lines}
  held, line = set(), program.lines[-1]
  while True:
    held.add(line.out)
    if line.op != "aggregate" or line.encoding != "categorical" or line.args[2] not in by_out:
      return held
    line = by_out[line.args[2]]


def _read_variant(program: ir.Program, model: CompiledModel, graph: WeightGraph, node: dict[str, int]) -> ReadVariant:
  output_node = int(np.flatnonzero(graph.is_output)[0]) if graph.is_output.any() else -1
  holds_output = _holds_output_values(program) if node.get(program.lines[-1].out) == output_node else set()
  encodings = {"tokens": "categorical", "indices": "categorical"}
  encodings.update({line.out: line.encoding for line in program.lines})
  s = model.settings
  lines = list(program.lines)
  read = 0
  replaced: dict[str, str] = {}
  # Value sets line by line, each once its function is final (read or left as guessed): a guess that fails
  # on its inputs (`x < y` of letters and numbers) then costs its own line and the lines built on it, not
  # the whole program's reading.
  known = {"tokens": _block_order(s.vocab), "indices": _block_order(range(s.max_seq_len))}

  def infer(upto: int) -> dict[str, list] | None:
    try:
      return value_sets(ir.Program(tuple(lines[:upto + 1])), s.vocab, s.max_seq_len)
    except Exception:  # pylint: disable=broad-except  (tracr cannot infer this prefix's values)
      return None

  for i, line in enumerate(lines):
    readable = line.out in node  # every op kind has a reader (_read_line); a line without a node has none
    values = infer(i) if readable else None
    if readable:
      fn = _read_line(line, model, graph, node[line.out], node, {**known, **(values or {})}, encodings,
                      line.out in holds_output)
      if fn is not None:
        read += 1
        if fn != line.fn:
          try:
            lines[i] = dataclasses.replace(line, fn=fn)
            ir.Program(tuple(lines))
            replaced[line.out] = line.fn
            values = None
          except ir.ProgramError:
            lines[i] = line
    values = values if values is not None else infer(i)
    if values is not None:
      known.update({k: v for k, v in values.items() if k not in known or k == line.out})
  if not replaced:
    return ReadVariant(program, read, 0)
  return ReadVariant(ir.canonicalize(ir.Program(tuple(lines))), read, len(replaced), replaced)
