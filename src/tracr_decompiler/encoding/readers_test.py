"""Readers: the table read from the weights is the function applied to its input's values, in block order."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from tracr.compiler import basis_inference, nodes as tracr_nodes, rasp_to_graph

from tracr_decompiler.compiling import compiler
from tracr_decompiler.encoding import programs, readers, weights
from tracr_decompiler.program import ir, registry, tables, to_rasp

L = ir.Line
SETTINGS = compiler.CompileSettings(vocab=(0, 1, 2, 3, 4), max_seq_len=5)


def _compiled(program: ir.Program):
  """(model, graph, node of each line, sorted value set of each line and input)."""
  model = compiler.compile_program(program, SETTINGS)
  graph = weights.encode_model(model)
  names = programs.node_names(graph, model.residual_labels)
  label = {line.out: to_rasp.default_label(i, len(program)) for i, line in enumerate(program.lines, 1)}
  node = {out: names.index(lab) for out, lab in label.items()}
  extracted = rasp_to_graph.extract_rasp_graph(to_rasp.to_rasp(program))
  basis_inference.infer_bases(extracted.graph, extracted.sink, set(SETTINGS.vocab), SETTINGS.max_seq_len)
  by_label = {key.rsplit("_", 1)[0] if key not in ir.INPUTS else key: key for key in extracted.graph.nodes}
  label.update({x: x for x in ir.INPUTS})
  values = {name: sorted(extracted.graph.nodes[by_label[lab]][tracr_nodes.VALUE_SET])
            for name, lab in label.items() if lab in by_label}
  return model, graph, node, values


def _check_mlp(program: ir.Program):
  """The last line's MLP table equals its function on its inputs' values."""
  line = program.output
  model, graph, node, values = _compiled(program)
  table = readers.read_mlp(model, graph, node[line.out])
  function = registry.function(line.fn)
  assert function is not None
  f = function.fn
  ins = [values[a] for a in line.args]
  outs = values[line.out]
  for k, arg in enumerate(line.args):
    probes = table.probe_x if k == 0 else table.probe_y
    is_numerical = program.by_name()[arg].encoding == "numerical" if arg not in ir.INPUTS else False
    assert len(probes) == (len(ins[k]) if is_numerical else 0)
  one_value = line.encoding == "categorical" and len(outs) == 1  # one dimension: reads like a number
  assert table.categorical_output == (line.encoding == "categorical" and not one_value)
  # tracr's categorical -> numerical MLP puts f(x) before its ReLU: the weights compute max(f(x), 0).
  relu = line.encoding == "numerical" and all(
      arg in ir.INPUTS or program.by_name()[arg].encoding == "categorical" for arg in line.args)
  for idx in np.ndindex(table.outputs.shape):
    want = f(*(vs[i] for vs, i in zip(ins, idx)))
    got = table.outputs[idx]
    if table.categorical_output:
      assert outs[got] == want and type(outs[got]) is type(want)
    elif one_value:
      assert got == pytest.approx(1.0)
    else:
      assert got == pytest.approx(max(float(want), 0.0) if relu else float(want), abs=1e-3)


def _number_valued(f) -> bool:
  return not isinstance(f.fn(1), bool)


@pytest.mark.parametrize("name", [f.name for f in registry.MAP_FUNCTIONS])
def test_every_registry_map(name):
  f = registry.FUNCTIONS[name]
  if registry.INT in f.accepts:  # categorical -> categorical, and -> numerical when it gives numbers
    _check_mlp(ir.make_program([L("map", "categorical", name, ("tokens",), "y")]))
    if _number_valued(f):
      _check_mlp(ir.make_program([L("map", "numerical", name, ("tokens",), "y")]))
  if registry.BOOL in f.accepts:
    _check_mlp(ir.make_program([L("map", "categorical", "gt2", ("tokens",), "x"), L("map", "categorical", name, ("x",), "y")]))
  if registry.NUM in f.accepts:  # tracr's discretising MLP, read at its probe points
    enc = "numerical" if _number_valued(f) else "categorical"
    _check_mlp(ir.make_program([L("map", "numerical", "ident", ("tokens",), "x"), L("map", enc, name, ("x",), "y")]))


@pytest.mark.parametrize("name", [f.name for f in registry.SEQUENCE_MAP_FUNCTIONS])
def test_every_registry_sequence_map(name):
  f = registry.FUNCTIONS[name]
  if registry.BOOL in f.accepts:
    _check_mlp(ir.make_program([L("map", "categorical", "gt2", ("tokens",), "a"),
                                L("map", "categorical", "lt2", ("indices",), "b"),
                                L("sequence_map", "categorical", name, ("a", "b"), "y")]))
  else:
    _check_mlp(ir.make_program([L("sequence_map", "categorical", name, ("tokens", "indices"), "y")]))


def _check_predicate(program: ir.Program):
  line = program.output
  model, graph, node, values = _compiled(program)
  truth = readers.read_predicate(model, graph, node[line.out])
  keys, queries = values[line.args[0]], values[line.args[1]]
  predicate = registry.predicate(line.fn)
  assert predicate is not None
  want = np.array([[bool(predicate(k, q)) for k in keys] for q in queries])
  if not want.any():  # false everywhere: no query or key block is read
    assert truth.size == 0
  else:
    np.testing.assert_array_equal(truth, want)


@pytest.mark.parametrize("name", list(registry.COMPARISONS))
def test_every_comparison(name):
  _check_predicate(ir.make_program([L("selector_width", "categorical", name, ("tokens", "indices"), "y")]))
  _check_predicate(ir.make_program([L("map", "numerical", "eq1", ("tokens",), "x"),
                                    L("aggregate", "numerical", name, ("indices", "tokens", "x"), "y")]))


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(st.lists(st.integers(-3, 3), min_size=5, max_size=5),
                  st.lists(st.integers(0, 2), min_size=25, max_size=25),
                  st.lists(st.booleans(), min_size=25, max_size=25),
                  st.lists(st.sampled_from([-1.5, 0, 0.25, 1, 2]), min_size=5, max_size=5))
def test_random_tables(map_values, pair_values, truth, numbers):
  grid = [(x, y) for x in range(5) for y in range(5)]
  map_fn = tables.lookup(dict(zip(range(5), map_values))).source
  _check_mlp(ir.make_program([L("map", "categorical", map_fn, ("tokens",), "y")]))
  _check_mlp(ir.make_program([L("sequence_map", "categorical", tables.lookup(dict(zip(grid, pair_values))).source,
                                ("tokens", "indices"), "y")]))
  _check_predicate(ir.make_program([L("selector_width", "categorical",
                                      tables.predicate([p for p, t in zip(grid, truth) if t]).source,
                                      ("tokens", "indices"), "y")]))
  # A numerical Map of a numerical SOp with uneven values: tracr's discretising MLP.
  _check_mlp(ir.make_program([L("map", "numerical", tables.lookup({0: 0, 1: 0.25, 2: 0.5, 3: 2, 4: 3.5}).source,
                                ("tokens",), "x"),
                              L("map", "numerical", tables.lookup({0: numbers[0], 0.25: numbers[1], 0.5: numbers[2],
                                                                   2: numbers[3], 3.5: numbers[4]}).source,
                                ("x",), "y")]))


@pytest.mark.parametrize("encoding", ["numerical", "categorical"])
def test_dense_numerical_inputs_keep_one_probe_per_value(encoding):
  """At max_seq_len 12 a prefix mean takes values 1/12 and 1/11 apart by less than the 0.02 the encoder's
  features cluster unit crossings by; the reader pairs tracr's units exactly, one probe per value."""
  settings = compiler.CompileSettings(vocab=(0, 1, 2), max_seq_len=12)
  program = ir.make_program([L("map", "numerical", "eq0", ("tokens",), "a"),
                             L("aggregate", "numerical", "LEQ", ("indices", "indices", "a"), "b"),
                             L("map", encoding, "lthalf", ("b",), "c")])
  model = compiler.compile_program(program, settings)
  graph = weights.encode_model(model)
  names = programs.node_names(graph, model.residual_labels)
  node = names.index(to_rasp.default_label(3, 3))
  extracted = rasp_to_graph.extract_rasp_graph(to_rasp.to_rasp(program))
  basis_inference.infer_bases(extracted.graph, extracted.sink, set(settings.vocab), settings.max_seq_len)
  b = next(k for k in extracted.graph.nodes if k.startswith(to_rasp.default_label(2, 3)))
  values = sorted(extracted.graph.nodes[b][tracr_nodes.VALUE_SET])
  assert min(np.diff(values)) < 0.02
  table = readers.read_mlp(model, graph, node)
  assert len(table.probe_x) == len(values)
  got = [bool(v) for v in table.outputs]  # a categorical block {False, True}: index 1 is True
  assert got == [v < 0.5 for v in values]
