"""Program -> tracr `rasp` expression, with labels that do not depend on the process.

tracr labels every expression `{name}_{unique_id}`, where the id comes from a
process-wide counter, and sorts residual dimensions by label. We overwrite the
cached id with the line number and name SOps with fixed-width names (`v01`..),
so the same program always compiles to the same weights.
"""

from __future__ import annotations

from tracr.rasp import rasp

from tracr_decompiler.program import ir, ops, registry


def _fix_label(expr: rasp.RASPExpr, name: str, uid: int) -> rasp.RASPExpr:
  expr = expr.named(name)
  expr.__dict__["unique_id"] = uid  # overrides the functools.cached_property
  return expr


def default_label(i: int, n_lines: int) -> str:
  """The label of line i (1-based) of an n-line program: fixed width, so labels sort in line order."""
  return f"v{i:0{len(str(n_lines))}d}"


def to_rasp(program: ir.Program, names: dict[str, str] | None = None) -> rasp.SOp:
  """Builds the tracr expression of `program`; returns the output SOp.

  Args:
    program: the program.
    names: optional label for each line's `out` (default: fixed-width `v01`, `v02`, ...
      in line order). Labels decide the residual order, so pass them only to
      reproduce a particular naming.
  """
  width = len(str(len(program.lines)))
  env: dict[str, rasp.SOp] = {"tokens": rasp.tokens, "indices": rasp.indices}
  for i, line in enumerate(program.lines, 1):

    def select(keys: rasp.SOp, queries: rasp.SOp, comparison: str, i: int = i) -> rasp.Select:
      return _fix_label(rasp.Select(keys, queries, registry.predicate(comparison)), f"select{i:0{width}d}", 1000 + i)

    expr = ops.SPECS[line.op].build(line, [env[x] for x in line.args], select)
    expr = rasp.numerical(expr) if line.encoding == "numerical" else rasp.categorical(expr)
    name = names[line.out] if names else default_label(i, len(program.lines))
    env[line.out] = _fix_label(expr, name, i)
  return env[program.output.out]
