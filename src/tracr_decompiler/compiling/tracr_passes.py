"""tracr's compiler passes without JAX: `tracr.compiler`'s package `__init__` runs on first use.

tracr's pass modules (`rasp_to_graph`, `basis_inference`, `expr_to_craft_graph`,
`craft_graph_to_model`, `validating`, `nodes`, `lib`) need only NumPy and
networkx. But `tracr/compiler/__init__.py` imports `compiling`, hence
`assemble`, hence JAX, Haiku and chex (about 1.4 s, a third of the CLI's
`decompile` of a file), and Python runs a package's `__init__` before any of
its submodules. `defer_init()` registers the package without running its
`__init__`: a submodule's name imports that submodule alone, and the first
lookup of any other name (`tracr.compiler.compile_rasp_to_model`) runs the
`__init__` on the same module object. So what is visible is what tracr gives;
only when JAX is imported changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

PACKAGE = "tracr.compiler"
_lock = threading.Lock()


def defer_init() -> None:
  """Registers `tracr.compiler` with its `__init__` deferred, unless it is already imported."""
  if PACKAGE in sys.modules:
    return
  import tracr  # an empty __init__
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or spec.loader is None:
    return  # no tracr.compiler: the import that needs it reports that, as before
  module = importlib.util.module_from_spec(spec)  # __path__ and __spec__ set, __init__ not run
  loader = spec.loader

  def run_init(name: str):
    # A submodule is imported alone: `from tracr.compiler import nodes` looks the name up here first.
    if not name.startswith("__") and importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
      return importlib.import_module(f"{PACKAGE}.{name}")
    with _lock:
      if module.__dict__.pop("__getattr__", None) is not None:  # first caller runs tracr's __init__
        try:
          loader.exec_module(module)
        except BaseException:
          vars(module)["__getattr__"] = run_init  # a failed __init__ runs again on the next lookup
          raise
    return getattr(module, name)  # AttributeError, as usual, for a name tracr does not define

  vars(module)["__getattr__"] = run_init  # PEP 562: called only for names not (yet) in the module
  if sys.modules.setdefault(PACKAGE, module) is module:
    setattr(tracr, "compiler", module)  # as import sets a submodule on its parent


def init_deferred() -> bool:
  """Whether `tracr.compiler`'s `__init__` is still waiting to run (for tests)."""
  module = sys.modules.get(PACKAGE)
  return isinstance(module, types.ModuleType) and "__getattr__" in module.__dict__
