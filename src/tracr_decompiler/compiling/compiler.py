"""Fast, deterministic compilation of programs to Tracr weights.

We run tracr's own passes up to the craft graph (rasp_to_graph ->
basis_inference -> expr_to_craft_graph, then tracr's layer allocation) and then
build the parameter arrays with NumPy exactly as `tracr.compiler.assemble`
does. That skips the haiku `init` whose random values tracr throws away (about
93 % of a first compile), and tracr's `craft_graph_to_model`, whose
`MLP.combine_in_parallel` builds each layer's joint MLP one basis vector at a
time (an `np.eye(n)` per direction: O(n^3), 60 % of data generation on larger
programs). The blocks go straight into the parameter arrays at the positions
that joint MLP would give them. Parameters are bit-identical (`compiler_test.py`).
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
from tracr.compiler import (basis_inference, craft_graph_to_model, expr_to_craft_graph, nodes,
                            rasp_to_graph, validating)
from tracr.craft import bases, vectorspace_fns
from tracr.rasp import rasp

from tracr_decompiler import limits
from tracr_decompiler.compiling import layout
# The types this compiler returns live in a tracr-free leaf, so reading a model file never imports tracr.
from tracr_decompiler.compiling.compiled import (COMPILER_BOS, COMPILER_PAD, CompiledModel, CompileError,
                                                 CompileSettings)
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.program import ir, to_rasp as to_rasp_lib

def _project(src: bases.VectorSpaceWithBasis, dst: bases.VectorSpaceWithBasis) -> np.ndarray:
  return vectorspace_fns.project(src, dst).matrix


@dataclasses.dataclass
class _Layers:
  """tracr's craft blocks per half-layer (even: attention, odd: MLP), as craft_graph_to_model groups them."""
  blocks: list[tuple[int, list]]  # (half-layer, blocks), in half-layer order
  residual_space: bases.VectorSpaceWithBasis


def _layers(graph, sources) -> tuple[_Layers, dict]:
  """craft_graph_to_model's grouping, without combining each layer's MLPs into one (see module docstring)."""
  allocation = craft_graph_to_model._allocate_modules_to_layers(graph, sources)  # pylint: disable=protected-access
  by_layer: dict[int, list] = {}
  spaces = []
  for node_id, layer in allocation.items():
    block = graph.nodes[node_id].get(nodes.MODEL_BLOCK)
    if craft_graph_to_model._node_is_residual_block(graph.nodes[node_id]):  # pylint: disable=protected-access
      spaces += [block.blocks[0].residual_space, block.blocks[1].residual_space]
      by_layer.setdefault(layer, []).append(block.blocks[0])
      by_layer.setdefault(layer + 1, []).append(block.blocks[1])
    elif block:
      spaces.append(block.residual_space)
      by_layer.setdefault(layer, []).append(block)
  residual = bases.join_vector_spaces(*spaces) if spaces else bases.VectorSpaceWithBasis([])
  return _Layers(sorted((k, v) for k, v in by_layer.items() if v), residual), allocation


class _ReversibleByView(nx.DiGraph):
  """A graph whose reverse() is a read-only view, not a copy.

  tracr's basis_inference walks `graph.reverse()` only to visit predecessors
  first; the default copy deep-copies every node's attributes (5 % of data
  generation). Any postorder gives the same value sets, since each is computed
  from its predecessors' alone (compiler_test pins the parameters to tracr's).
  """

  def reverse(self, copy=True):
    return super().reverse(copy=False)


def _craft_model(expr: rasp.SOp, settings: CompileSettings):
  unsupported = validating.static_validate(expr)
  if unsupported:
    raise CompileError("; ".join(f"{u.expr.label}: {u.reason}" for u in unsupported))
  extracted = rasp_to_graph.extract_rasp_graph(expr)
  graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
  graph.__class__ = _ReversibleByView  # our own fresh graph: only its reverse() changes
  basis_inference.infer_bases(graph, sink, set(settings.vocab), settings.max_seq_len)
  largest = max((len(graph.nodes[n].get(nodes.VALUE_SET) or ()) for n in graph.nodes), default=0)
  if largest > limits.MAX_VALUE_SET:
    raise CompileError(f"an SOp can take {largest} values (tracr's value-set inference), more than "
                       f"{limits.MAX_VALUE_SET}: its MLPs would need gigabytes")
  expr_to_craft_graph.add_craft_components_to_rasp_graph(
      graph, bos_dir=bases.BasisDirection(rasp.tokens.label, settings.compiler_bos),
      mlp_exactness=settings.mlp_exactness)
  layers, allocation = _layers(graph, sources)
  return layers, graph, sink, allocation


def compile_expr(expr: rasp.SOp, settings: CompileSettings = CompileSettings()) -> CompiledModel:
  """Compiles any tracr SOp (e.g. a `tracr.compiler.lib` program)."""
  try:
    layers, graph, sink, half_layers = _craft_model(expr, settings)
  except CompileError:
    raise
  except (NotImplementedError, ValueError, TypeError, KeyError, AssertionError) as e:
    raise CompileError(f"tracr cannot compile this program: {e}") from None
  if rasp.tokens.label not in graph.nodes:
    raise CompileError("the program does not use rasp.tokens")

  tokens_space = bases.VectorSpaceWithBasis.from_values(
      rasp.tokens.label,
      graph.nodes[rasp.tokens.label][nodes.VALUE_SET] | {settings.compiler_bos, settings.compiler_pad})
  indices_space = bases.VectorSpaceWithBasis.from_values(rasp.indices.label, range(settings.max_seq_len))
  output_space = bases.VectorSpaceWithBasis(sink[nodes.OUTPUT_BASIS])
  try:
    model = _assemble(layers, tokens_space, indices_space, output_space, settings)
  except ValueError as e:  # tracr's assemble fails the same way (e.g. value size > key size)
    raise CompileError(f"tracr cannot assemble this program: {e}") from None
  model.categorical_output = rasp.is_categorical(sink[nodes.EXPR])
  model.output_values = ([d.value for d in output_space.basis] if model.categorical_output else [])
  # Half-layer numbers from tracr's allocation -> (layer, sublayer): even = attention.
  for label, half in half_layers.items():
    if graph.nodes[label].get(nodes.MODEL_BLOCK) is not None:
      model.allocation[label] = (half // 2, "attn" if half % 2 == 0 else "mlp")
  return model


def tracr_compile(program: ir.Program | rasp.SOp, settings: CompileSettings = CompileSettings()):
  """The user's door: tracr's own `compile_rasp_to_model`, returning its AssembledTransformerModel.

  Slow (a first compile of each weight shape spends seconds in haiku's init),
  so it is for measuring what users get, never for building training data.
  """
  from tracr.compiler import compiling  # imports JAX/haiku: only where a real tracr model is wanted
  expr = to_rasp_lib.to_rasp(program) if isinstance(program, ir.Program) else program
  try:
    return compiling.compile_rasp_to_model(
        expr, set(settings.vocab), settings.max_seq_len, causal=settings.causal,
        compiler_bos=settings.compiler_bos, compiler_pad=settings.compiler_pad,
        mlp_exactness=settings.mlp_exactness)
  except (NotImplementedError, ValueError, TypeError, KeyError, AssertionError) as e:
    raise CompileError(f"tracr cannot compile this program: {e}") from None


def compile_program(program: ir.Program, settings: CompileSettings = CompileSettings(),
                    names: dict[str, str] | None = None) -> CompiledModel:
  """Compiles one of our programs; same program and names -> same weights, in any process."""
  return compile_expr(to_rasp_lib.to_rasp(program, names), settings)


def _assemble(layers: _Layers, tokens_space, indices_space, output_space,
              settings: CompileSettings) -> CompiledModel:
  """NumPy twin of tracr.compiler.assemble.assemble_craft_model (same arithmetic, float32)."""
  residual = bases.join_vector_spaces(layers.residual_space, tokens_space, indices_space, output_space)
  d = residual.num_dims

  # Which module each half-layer goes to: attention and MLP alternate per layer
  # (assemble's rule: the next module of the block's kind).
  module_names, heads_per_block, mlps = [], [], []
  candidates = iter([sub(i) for i in range(2 * len(layers.blocks) + 2) for sub in (layout.attn, layout.mlp)])
  for half, blocks in layers.blocks:
    kind = "attn" if half % 2 == 0 else "mlp"
    name = next(candidates)
    while not name.endswith(kind):
      name = next(candidates)
    module_names.append(name)
    if kind == "mlp":
      mlps.append(blocks)
    else:
      heads_per_block.append([h for b in blocks for h in b.as_multi().heads()])
  num_layers = (layout.layer_of(module_names[-1]) or 0) + 1 if module_names else 1
  all_heads = sum(heads_per_block, [])
  num_heads = max((len(h) for h in heads_per_block), default=1)
  key_size = max((max(h.w_qk.matrix.shape) for h in all_heads), default=1)
  # A layer's joint MLP has the sorted union of its MLPs' hidden directions (tracr's join_vector_spaces).
  hidden_bases = [sorted(set().union(*(m.fst.output_space.basis for m in group))) for group in mlps]
  hidden = max((len(h) for h in hidden_bases), default=1)

  f32 = lambda x: np.asarray(x, dtype=np.float32)
  params: dict[str, dict[str, np.ndarray]] = {}
  for layer in range(num_layers):
    for name in ("query", "key", "value"):
      params[layout.attn(layer, name)] = {"w": np.zeros((d, num_heads * key_size), np.float32),
                                          "b": np.zeros(num_heads * key_size, np.float32)}
    params[layout.attn(layer, "linear")] = {"w": np.zeros((num_heads * key_size, d), np.float32),
                                            "b": np.zeros(d, np.float32)}
    params[layout.mlp(layer, "linear_1")] = {"w": np.zeros((d, hidden), np.float32), "b": np.zeros(hidden, np.float32)}
    params[layout.mlp(layer, "linear_2")] = {"w": np.zeros((hidden, d), np.float32), "b": np.zeros(d, np.float32)}

  # Embeddings: tokens (+ the constant `one` direction) and positions (row 0 is BOS).
  tokens_to_res = vectorspace_fns.project(tokens_space, residual)
  one_dir = bases.BasisDirection("one")
  if one_dir in residual:
    one_to_res = vectorspace_fns.Linear.from_action(
        tokens_space, residual, lambda x: residual.vector_from_basis_direction(one_dir))
    tokens_to_res = vectorspace_fns.Linear.combine_in_parallel([tokens_to_res, one_to_res])
  params[layout.TOKEN_EMBED] = {layout.EMBEDDINGS: f32(tokens_to_res.matrix)}
  pos = np.concatenate([np.zeros((1, d)), _project(indices_space, residual)], axis=0)
  params[layout.POS_EMBED] = {layout.EMBEDDINGS: f32(pos)}

  project = lambda space: _project(residual, space)
  index = residual.index_by_direction
  mlp_groups, head_groups = iter(zip(mlps, hidden_bases)), iter(heads_per_block)
  for module_name, (half, blocks) in zip(module_names, layers.blocks):
    if half % 2 == 1:
      group, hidden_basis = next(mlp_groups)
      column = {direction: i for i, direction in enumerate(hidden_basis)}
      w1, w2 = np.zeros((d, hidden)), np.zeros((hidden, d))
      for mlp in group:  # each MLP's blocks where the joint MLP has them (float64 sums, as tracr's)
        ins = [index[b] for b in mlp.fst.input_space.basis]
        units = [column[b] for b in mlp.fst.output_space.basis]
        outs = [index[b] for b in mlp.snd.output_space.basis]
        w1[np.ix_(ins, units)] += mlp.fst.matrix
        w2[np.ix_(units, outs)] += mlp.snd.matrix
      params[f"{module_name}/linear_1"]["w"][:] = w1
      params[f"{module_name}/linear_2"]["w"][:] = w2
      continue
    for i, head in enumerate(next(head_groups)):
      cols = slice(i * key_size, (i + 1) * key_size)
      qk, ov = head.w_qk.matrix, head.w_ov.matrix
      q = np.zeros((d, key_size)); q[:, :qk.shape[1]] = project(head.w_qk.left_space) @ qk
      k = np.zeros((d, key_size)); k[:, :qk.shape[1]] = project(head.w_qk.right_space)
      v = np.zeros((d, key_size)); v[:, :ov.shape[1]] = project(head.w_ov.input_space) @ ov
      o = np.zeros((key_size, d)); o[:ov.shape[1], :] = project(head.w_ov.output_space).T
      params[f"{module_name}/query"]["w"][:, cols] = q
      params[f"{module_name}/key"]["w"][:, cols] = k
      params[f"{module_name}/value"]["w"][:, cols] = v
      params[f"{module_name}/linear"]["w"][cols, :] = o

  labels = [str(b) for b in residual.basis]
  output_dims = [residual.basis.index(b) for b in output_space.basis]
  encoding = {b.value: i for i, b in enumerate(tokens_space.basis)}
  return CompiledModel(params=params, settings=settings, num_heads=num_heads, num_layers=num_layers,
                       key_size=key_size, residual_labels=labels, input_encoding=encoding,
                       output_values=[], output_dims=output_dims, categorical_output=True)
