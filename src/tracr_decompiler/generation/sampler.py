"""Typed random RASP programs, rejection-sampled until they compile correctly.

Example usage:
    >>> cfg = GenerationConfig()
    >>> sample = sample_program(cfg, np.random.default_rng(0))
    >>> print(source.to_source(sample.program))

Every candidate op is evaluated on all inputs as soon as it is drawn (the
vectorised evaluator makes that cheap), so bad ops are rejected one at a time
rather than whole programs: ops that fail, are constant, duplicate an existing
SOp, have too many values, or would be compiled wrong by tracr.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tracr_decompiler.compiling import checking, compiler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate, ir, registry, to_rasp
from tracr_decompiler.program.evaluate import EvaluationError, Values

CATEGORICAL_KINDS = (registry.INT, registry.BOOL)


@dataclasses.dataclass
class Sample:
  program: ir.Program  # canonical
  model: compiler.CompiledModel
  attempts: int  # candidate programs drawn to get this one


@dataclasses.dataclass
class _Var:
  name: str
  encoding: str
  values: dict[int, Values]  # per input length


class _Builder:
  """Grows one program op by op over a fixed input set."""

  def __init__(self, cfg: GenerationConfig, rng: np.random.Generator, batches: dict[int, np.ndarray]):
    self.cfg, self.rng, self.batches = cfg, rng, batches
    self.lines: list[ir.Line] = []
    self.vars: list[_Var] = []
    inputs = {n: evaluate.input_values(b) for n, b in batches.items()}
    for name in ir.INPUTS:
      self.vars.append(_Var(name, "categorical", {n: env[name] for n, env in inputs.items()}))
    self.consumed: set[str] = set()
    self.must_merge = False

  def kind(self, var: _Var) -> str:
    return next(iter(var.values.values())).kind

  def pick(self, candidates: list[_Var], exclude=()) -> Optional[_Var]:
    candidates = [v for v in candidates if v.name not in exclude]
    if not candidates:
      return None
    fresh = [v for v in candidates if v.name not in self.consumed and v.name not in ir.INPUTS]
    prefer = 1.0 if self.must_merge else self.cfg.prefer_unused
    pool = fresh if fresh and self.rng.random() < prefer else candidates
    return pool[self.rng.integers(len(pool))]

  @property
  def unused(self) -> list[str]:
    return [v.name for v in self.vars[2:] if v.name not in self.consumed]

  def plan(self, n_ops: int) -> None:
    """Every SOp must reach the output: merge unused SOps when ops run short."""
    self.must_merge = len(self.unused) > 1 and len(self.unused) >= n_ops - len(self.lines)

  def draw_op(self) -> str:
    kinds = list(self.cfg.op_weights)
    p = np.array([self.cfg.op_weights[k] for k in kinds], dtype=float)
    if self.must_merge:  # ops with two or more arguments
      p = p * np.array([k != "map" for k in kinds])
      if p.sum() == 0:
        p = np.ones(len(kinds))
    return kinds[self.rng.choice(len(kinds), p=p / p.sum())]

  def propose(self, op: str) -> Optional[ir.Line]:
    cfg, rng = self.cfg, self.rng
    cat = [v for v in self.vars if v.encoding == "categorical"]
    num = [v for v in self.vars if v.encoding == "numerical"]
    out = f"x{len(self.lines)}"
    comparisons = [c for c in registry.COMPARISONS if c != "FALSE"]  # FALSE selects nothing
    if op == "map":
      x = self.pick(self.vars)
      fns = [f for f in registry.MAP_FUNCTIONS if self.kind(x) in f.accepts]
      fn = fns[rng.integers(len(fns))]
      enc = "numerical" if rng.random() < cfg.numerical_map_fraction else "categorical"
      return ir.Line("map", enc, fn.name, (x.name,), out)
    if op == "sequence_map":
      x = self.pick(cat)
      y = self.pick([v for v in cat if self.kind(v) == self.kind(x)], exclude=(x.name,))
      fns = [f for f in registry.SEQUENCE_MAP_FUNCTIONS if y and self.kind(x) in f.accepts]
      if not fns:
        return None
      return ir.Line("sequence_map", "categorical", fns[rng.integers(len(fns))].name, (x.name, y.name), out)
    if op == "linear_sequence_map":
      x = self.pick(num)
      y = x and self.pick(num, exclude=(x.name,))
      if not y:  # make a numerical SOp first; it can be combined later
        x = self.pick(self.vars)
        fns = [f for f in registry.MAP_FUNCTIONS if self.kind(x) in f.accepts]
        return ir.Line("map", "numerical", fns[rng.integers(len(fns))].name, (x.name,), out)
      w = registry.LINEAR_WEIGHTS[rng.integers(len(registry.LINEAR_WEIGHTS))]
      return ir.Line("linear_sequence_map", "numerical", w.name, (x.name, y.name), out)
    keys, queries = self.pick(cat), self.pick(cat)
    cmp = comparisons[rng.integers(len(comparisons))]
    if op == "selector_width":
      return ir.Line("selector_width", "categorical", cmp, (keys.name, queries.name), out)
    if op == "numerical_aggregate":
      vals = self.pick([v for v in num if self._binary(v)])
      if vals is None:  # make a 0/1 SOp first; it can be aggregated later
        x = self.pick(cat)
        preds = [f for f in registry.MAP_FUNCTIONS if self.kind(x) in f.accepts and f.name[:2] in ("eq", "ne", "gt", "lt")]
        if not preds:
          return None
        return ir.Line("map", "numerical", preds[rng.integers(len(preds))].name, (x.name,), out)
      return ir.Line("aggregate", "numerical", cmp, (keys.name, queries.name, vals.name), out)
    vals = self.pick(cat)
    if rng.random() < 0.5:
      # Most random selectors pick several values, which tracr cannot aggregate
      # categorically; selecting by equality with indices (or with the values
      # themselves) picks one position (or one value).
      keys, cmp = (self.vars[1], "EQ") if rng.random() < 0.7 else (vals, "EQ")
    return ir.Line("aggregate", "categorical", cmp, (keys.name, queries.name, vals.name), out)

  def _binary(self, var: _Var) -> bool:
    return all(np.isin(v.data, (0.0, 1.0)).all() for v in var.values.values())

  def try_add(self, line: ir.Line) -> bool:
    env = {v.name: v for v in self.vars}
    if line.op == "map":  # write the first of any registry functions that agree on these values
      x = env[line.args[0]]
      seen = np.unique(np.concatenate([v.data.ravel() for v in x.values.values()]))
      seen = [evaluate.py_value(v, self.kind(x)) for v in seen[~np.isnan(seen)]]
      line = dataclasses.replace(line, fn=registry.canonical_alias(line.fn, seen, self.kind(x)))
    try:
      values = {n: evaluate.eval_line(line, {a: env[a].values[n] for a in line.args})
                for n in self.batches}
    except EvaluationError:
      return False
    if not self._acceptable(line, env, values):
      return False
    self.lines.append(line)
    self.vars.append(_Var(line.out, line.encoding, values))
    self.consumed.update(line.args)
    return True

  def _acceptable(self, line: ir.Line, env, values: dict[int, Values]) -> bool:
    flat = np.concatenate([v.data.ravel() for v in values.values()])
    known = flat[~np.isnan(flat)]
    distinct = np.unique(known)
    if len(distinct) < 2 or np.isnan(flat).mean() > self.cfg.max_none_fraction:
      return False
    if line.encoding == "categorical" and len(distinct) > self.cfg.max_values:
      return False
    if line.encoding == "numerical" and len(distinct) > self.cfg.max_numerical_values:
      return False
    for other in self.vars:  # a duplicate of an existing SOp adds nothing
      if other.encoding == line.encoding and all(
          np.array_equal(other.values[n].data, values[n].data, equal_nan=True) for n in values):
        return False
    if line.op == "aggregate" and line.encoding == "categorical":
      # tracr averages one-hot vectors: only correct if every query selects one value.
      for n, v in values.items():
        sel = evaluate.selector(env[line.args[0]].values[n], env[line.args[1]].values[n], line.fn)
        vals = np.broadcast_to(env[line.args[2]].values[n].data[:, None, :], sel.shape)
        hi = np.where(sel, vals, -np.inf).max(-1)
        lo = np.where(sel, vals, np.inf).min(-1)
        if (sel.any(-1) & (hi != lo)).any():
          return False
    return True


def _input_sets(settings: compiler.CompileSettings, rng: np.random.Generator, n_probe: int = 400):
  """(probe batches for drawing ops, batches of every input for the final check)."""
  everything = evaluate.all_inputs(settings.vocab, settings.max_seq_len)
  if len(everything) > 50_000:
    everything = evaluate.sample_inputs(settings.vocab, settings.max_seq_len, 5_000, rng)
  short = [s for s in everything if len(s) <= 2]
  probe = short + [everything[i] for i in rng.choice(len(everything), size=min(n_probe, len(everything)), replace=False)]
  return evaluate.length_batches(probe), evaluate.length_batches(everything)


def sample_program(cfg: GenerationConfig, rng: np.random.Generator,
                   blocklist: frozenset[str] = frozenset()) -> Sample:
  """Draws programs until one passes every check (see module docstring)."""
  from tracr_decompiler.program import source
  probe, batches = _input_sets(cfg.settings, rng)
  n_ops = int(rng.integers(cfg.min_sops, cfg.max_sops + 1))  # fixed, so long programs keep their share
  for attempt in range(1, cfg.max_attempts + 1):
    if attempt % cfg.redraw_after == 0:  # some random draws admit almost no valid program: start over
      n_ops = int(rng.integers(cfg.min_sops, cfg.max_sops + 1))
    builder = _Builder(cfg, rng, probe)
    for _ in range(n_ops * 3):
      if len(builder.lines) == n_ops:
        break
      builder.plan(n_ops)
      op = builder.draw_op()  # retry the same kind, so ops that are often rejected keep their share
      for _ in range(cfg.proposals_per_op):
        line = builder.propose(op)
        if line is not None and builder.try_add(line):
          break
    if len(builder.lines) != n_ops:
      continue
    program = ir.Program(tuple(builder.lines))
    if len(program.used()) != n_ops:  # every SOp must reach the output
      continue
    program = ir.canonicalize(program)
    try:  # on every input now: the probe inputs may have missed a failing one
      expected = {n: evaluate.evaluate_batch(program, b).data for n, b in batches.items()}
    except EvaluationError:
      continue
    if all(np.array_equal(expected[n], batches[n]) for n in batches):  # the identity
      continue
    if source.to_source(program) in blocklist:
      continue
    try:
      model = compiler.compile_program(program, cfg.settings)
    except compiler.CompileError:
      continue
    if model.num_layers * 2 > cfg.max_half_layers or max(
        p["w"].shape[1] for k, p in model.params.items() if k.endswith("linear_1")) > cfg.max_mlp_hidden:
      continue
    if not checking.compiled_matches_batches(model, batches, expected):
      continue
    if cfg.tracr_dynamic_checks and checking.dynamic_reasons(
        to_rasp.to_rasp(program), [tuple(int(t) for t in b[-1]) for b in list(batches.values())[-cfg.tracr_dynamic_checks:]]):
      continue
    return Sample(program, model, attempt)
  raise RuntimeError(f"no valid program in {cfg.max_attempts} attempts; loosen the settings")
