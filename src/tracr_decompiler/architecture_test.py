"""The import graph: layers point one way, no cycles, and no function-local import hides one.

Run alone:  python -m pytest src/tracr_decompiler/architecture_test.py -q
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent
NAME = "tracr_decompiler"
# What inference (`decompile()` and the CLI's decompile) may reach; training is above it.
INFERENCE = ("decompiling", "model", "loading", "compiling", "encoding", "program")
# The one package order, lowest first: a module imports only from its own stage or the ones before it, function-
# local imports counted. The folders read as the pipeline: the language, the compiler, the weights read as a
# graph, the models users hand us, random programs, datasets, the decompiler's network, decompiling, training,
# evaluation, pictures; then the entry points. Top-level modules name their own stage.
ORDER = (
    ("errors", "limits", "short_axis", "files", "machine", "cli_config", "stopping", "parallel"),  # leaves
    ("program", "test_cases"),
    ("compiling",),
    ("encoding",),
    ("loading", "tl_testing"),
    ("generation",),
    ("dataset",),
    ("model",),
    ("decompiling",),
    ("training",),
    ("evaluation",),
    ("visual",),
    ("cli", "demo", "processes_testing", NAME),  # entry points (and the package itself, whose imports are lazy)
)


def _module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(PACKAGE.parent).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
  return {_module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")
          if not p.name.endswith("_test.py") and "pretrained" not in p.parts}


def _resolve(node: ast.ImportFrom | ast.Import, known: set[str]) -> list[str]:
  """Project modules an import statement loads (the project uses absolute imports only)."""
  if isinstance(node, ast.Import):
    names = [a.name for a in node.names]
  else:
    base = node.module or ""
    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
  return [n for n in names if n in known]


def _imports(tree: ast.Module, module: str, known: set[str]) -> tuple[set[str], set[str]]:
  """(module-level imports, imports inside functions), TYPE_CHECKING blocks excluded."""
  top: set[str] = set()
  local: set[str] = set()

  def visit(node: ast.AST, in_function: bool) -> None:
    for child in ast.iter_child_nodes(node):
      if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
        continue
      if isinstance(child, (ast.Import, ast.ImportFrom)):
        (local if in_function else top).update(_resolve(child, known))
      visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

  visit(tree, False)
  return top - {module}, local - {module}


@pytest.fixture(scope="module")
def graph():
  modules = _modules()
  known = set(modules)
  return {m: _imports(tree, m, known) for m, tree in modules.items()}


def _reach(graph, start: str, include_local: bool = True) -> set[str]:
  seen, stack = set(), [start]
  while stack:
    m = stack.pop()
    if m in seen:
      continue
    seen.add(m)
    top, local = graph.get(m, (set(), set()))
    stack.extend(top | (local if include_local else set()))
  return seen


def test_inference_never_reaches_training(graph):
  for m in graph:
    stage = m.split(".")[1] if m.count(".") else ""
    if stage in INFERENCE:
      bad = sorted(r for r in _reach(graph, m) if r.startswith(f"{NAME}.training"))
      assert not bad, f"{m} reaches {bad}"


def test_no_import_cycles_even_counting_function_local_imports(graph):
  for m in graph:
    for dep in graph[m][0] | graph[m][1]:
      assert m not in _reach(graph, dep), f"cycle: {m} -> {dep} -> ... -> {m}"


def _stage(module: str) -> int:
  parts = module.split(".")
  name = parts[1] if len(parts) > 1 else parts[0]
  for level, names in enumerate(ORDER):
    if name in names:
      return level
  raise AssertionError(f"{module} is in no stage of ORDER: add its folder or module there")


def test_one_package_order_with_no_import_climbing_it(graph):
  climbs = sorted(f"{m} -> {dep}" for m, (top, local) in graph.items() for dep in top | local
                  if _stage(dep) > _stage(m))
  assert not climbs, "imports that climb the package order:\n" + "\n".join(climbs)


def test_the_checker_sees_imports():
  """The graph is not empty by accident: known arrows are found."""
  modules = _modules()
  g = {m: _imports(t, m, set(modules)) for m, t in modules.items()}
  assert f"{NAME}.model.numpy_nar" in g[f"{NAME}.decompiling.decompile"][0]
  assert f"{NAME}.model.pretrained" in g[f"{NAME}.decompiling.decompile"][1]  # torch: imported where used
  assert f"{NAME}.program.ops" in g[f"{NAME}.program.ir"][0]


def test_a_climbing_import_is_caught():
  """The order check can fail: an arrow from compiling up to loading is reported."""
  fake = {f"{NAME}.compiling.x": (set(), {f"{NAME}.loading.reading"}), f"{NAME}.loading.reading": (set(), set())}
  with pytest.raises(AssertionError, match="compiling.x -> tracr_decompiler.loading.reading"):
    test_one_package_order_with_no_import_climbing_it(fake)


def test_the_compiled_types_are_a_tracr_free_leaf():
  """CompiledModel and CompileSettings (compiling/compiled.py) import neither tracr nor JAX: reading a model file
  or a dataset row needs only NumPy."""
  tree = ast.parse((PACKAGE / "compiling" / "compiled.py").read_text())
  imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
      {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
  assert not {m for m in imported if m.split(".")[0] in ("tracr", "jax", "haiku", "torch")}, imported
  assert {m for m in imported if m.startswith(NAME)} <= {f"{NAME}.errors"}, imported
