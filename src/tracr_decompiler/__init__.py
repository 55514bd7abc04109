"""tracr-decompiler: turn Tracr-compiled transformer weights back into RASP programs.

    >>> import tracr_decompiler
    >>> result = tracr_decompiler.decompile(assembled_model)   # a tracr AssembledTransformerModel
    >>> print(result.source, result.verified)

Imports are lazy, so `import tracr_decompiler` stays cheap.
"""

__all__ = ["decompile", "load_decompiler", "DecompileResult", "compile_program", "parse_source"]
__version__ = "0.1.0"


def __getattr__(name):
  if name in ("decompile", "load_decompiler", "DecompileResult"):
    from tracr_decompiler.decompiling import decompile as module
    return getattr(module, name)
  if name == "compile_program":
    from tracr_decompiler.compiling.compiler import compile_program
    return compile_program
  if name == "parse_source":
    from tracr_decompiler.program.source import parse_source
    return parse_source
  raise AttributeError(f"module 'tracr_decompiler' has no attribute {name!r}")
