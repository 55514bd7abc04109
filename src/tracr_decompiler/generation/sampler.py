"""Typed random RASP programs, rejection-sampled until they compile correctly.

Example usage:
    >>> cfg = GenerationConfig()
    >>> sample = sample_program(cfg, np.random.default_rng(0))
    >>> print(source.to_source(sample.program))

A program is grown one line at a time on a few hundred probe inputs (all input
lengths in one padded batch), and each drawn line is evaluated at once, so bad
lines are rejected one at a time rather than whole programs: lines that fail,
are constant, duplicate an SOp, have too many values, or that tracr would
compile wrong. Lines that leave SOps dangling are pruned and regrown (_grow).
Then the checks run cheapest first (sample_program): compile, the compiled
model on the probe inputs, then RASP and the compiled model on every checked
input and tracr's own validation. Settings come from cfg.settings or, with
cfg.mixed_settings, are drawn per program (settings.py); with
cfg.table_fraction, functions and predicates may be random tables.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import Callable, Optional

import numpy as np

from tracr_decompiler import limits, short_axis
from tracr_decompiler.compiling import checking, compiler, inputs as inputs_lib
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.generation import settings as settings_lib
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate, ir, ops, registry, tables, to_rasp
from tracr_decompiler.program.evaluate import EvaluationError, Values

CATEGORICAL_KINDS = (registry.INT, registry.BOOL)


class GenerationError(TracrDecompilerError, RuntimeError):
  """No program could be drawn (settings that admit none), or a generation worker failed."""


# Largest product of input value sets a SequenceMap may have (see _Builder._domain).
MAX_DOMAIN_PRODUCT = 1 << 16


@dataclasses.dataclass
class Sample:
  program: ir.Program  # canonical
  model: compiler.CompiledModel
  attempts: int  # candidate programs drawn to get this one
  time_budget_hits: int = 0  # times cfg.max_program_seconds ran out and a new length was drawn
  checked_inputs: int = 0  # inputs the compiled model was checked on (all of them when that is <= MAX_EXHAUSTIVE)


@dataclasses.dataclass
class _Var:
  name: str
  encoding: str
  values: Values  # on the probe inputs, all lengths in one padded batch
  # The value set tracr's basis inference gives this SOp (a table function
  # must cover it; its size bounds the MLPs); None only before it is known.
  domain: frozenset | None = None

  def __post_init__(self):
    # Facts the proposers filter by, computed once: a Select on an SOp holding
    # None fails, and tracr has no None for numerical SOps, so drawing such
    # arguments would only make candidates that are rejected. (Padding holds
    # copies of real positions, so whole-array tests are exact.)
    self.complete = not np.isnan(self.values.data).any()
    self.binary = bool(np.isin(self.values.data, (0.0, 1.0)).all())


class _Builder:
  """Grows one program op by op over a fixed input set (one padded batch: evaluate.padded_batch)."""

  def __init__(self, cfg: GenerationConfig, rng: np.random.Generator, probe: "_Batch",
               settings: compiler.CompileSettings):
    self.cfg, self.rng, self.settings, self.causal = cfg, rng, settings, settings.causal
    self.valid = probe.valid
    self.lines: list[ir.Line] = []
    inputs = evaluate.input_values(probe.tokens, probe.labels, probe.valid)
    self.vars = [_Var("tokens", "categorical", inputs["tokens"], frozenset(settings.vocab)),
                 _Var("indices", "categorical", inputs["indices"], frozenset(range(settings.max_seq_len)))]
    self.consumed: set[str] = set()
    self.must_merge = False
    self.names = 0  # lines ever added: new names never collide with kept ones after a prune

  def kind(self, var: _Var) -> str:
    return var.values.kind

  def pick(self, candidates: list[_Var], exclude=()) -> Optional[_Var]:
    candidates = [v for v in candidates if v.name not in exclude]
    if not candidates:
      return None
    fresh = [v for v in candidates if v.name not in self.consumed and v.name not in ir.INPUTS]
    prefer = 1.0 if self.must_merge else self.cfg.prefer_unused
    pool = fresh if fresh and self.rng.random() < prefer else candidates
    return pool[self.rng.integers(len(pool))]

  def pick_from(self, candidates: list[_Var]) -> _Var:
    """`pick` from a list that is never empty (both inputs are categorical SOps)."""
    var = self.pick(candidates)
    assert var is not None, "picked from an empty list"
    return var

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

  def propose(self, kind: str) -> Optional[ir.Line]:
    """A candidate line of generator kind `kind` (a GenerationConfig.op_weights key), or None."""
    proposer = PROPOSERS.get(kind)
    out = f"x{self.names}"
    return proposer(self, out) if proposer is not None else _propose_any(self, out, kind)

  def categorical(self) -> list[_Var]:
    return [v for v in self.vars if v.encoding == "categorical"]

  def numerical(self) -> list[_Var]:
    return [v for v in self.vars if v.encoding == "numerical"]

  @staticmethod
  def complete(candidates: list[_Var]) -> list[_Var]:
    """Those that never hold None (tokens and indices always qualify)."""
    return [v for v in candidates if v.complete]

  def choose(self, items: list):
    return items[self.rng.integers(len(items))]

  def try_add(self, line: ir.Line) -> bool:
    env = {v.name: v for v in self.vars}
    x = env[line.args[0]]
    if line.op == "map" and x.values.labels is None:  # write the first registry function that agrees on these values
      codes = np.unique(x.values.data)
      seen = [evaluate.py_value(v, self.kind(x)) for v in codes[~np.isnan(codes)]]
      line = dataclasses.replace(line, fn=registry.canonical_alias(line.fn, seen, self.kind(x)))
    try:
      # tracr averages one-hot vectors, so a categorical Aggregate is only correct
      # if every query selects one value. Most random selectors do not: checked
      # before the Aggregate is computed, since most such lines fail here.
      if line.op == "aggregate" and line.encoding == "categorical" and not _one_value_per_query(
          evaluate.selector(env[line.args[0]].values, env[line.args[1]].values, line.fn, self.causal),
          env[line.args[2]].values, self.valid):
        return False
      values = evaluate.eval_line(line, {a: env[a].values for a in line.args}, self.causal)
    except EvaluationError:
      return False
    if not self._acceptable(line, values):
      return False
    domain = self._domain(line, env)
    if domain is None or len(domain) > limits.MAX_VALUE_SET:
      return False  # tracr's compile would fail, or its value-set inference would explode (see _domain)
    self.lines.append(line)
    self.vars.append(_Var(line.out, line.encoding, values, domain))
    self.consumed.update(line.args)
    self.names += 1
    return True

  def _domain(self, line: ir.Line, env: dict[str, _Var]) -> frozenset | None:
    """The value set tracr's basis_inference will give this line (its rules, mirrored), or None.

    None where tracr's compile would fail or stall: a function that raises on
    a value of its inputs' sets (only ArithmeticError is ignored, as tracr
    does), or a SequenceMap whose product of input sets is larger than
    MAX_DOMAIN_PRODUCT. tracr enumerates that product; chains of
    LinearSequenceMaps over numerical SOps grew it past 10^5 values, and
    compiling one such candidate ran for minutes (24-SOp mixed settings).
    Knowing every set up front also rejects a categorical SequenceMap whose
    MLP (one hidden unit per pair of input values) is wider than
    cfg.max_mlp_hidden before it is compiled.
    """
    domains = [env[a].domain for a in line.args]
    if any(d is None for d in domains):
      return None
    n = self.settings.max_seq_len
    if line.op == "selector_width":
      return frozenset(range(n + 1))
    if line.op == "aggregate":
      values = domains[2]
      if line.encoding == "categorical":
        return values
      return frozenset(v / length for v in values for length in range(1, n + 1))  # type: ignore[union-attr]
    size = int(np.prod([len(d) for d in domains]))  # type: ignore[arg-type]
    if size > MAX_DOMAIN_PRODUCT:
      return None
    if line.op == "sequence_map" and all(env[a].encoding == "categorical" for a in line.args) \
        and size > self.cfg.max_mlp_hidden:
      return None
    if line.op == "linear_sequence_map":
      w = registry.LINEAR[line.fn]
      f: Callable | None = lambda x, y: w.fst * x + w.snd * y
    else:
      fn = registry.function(line.fn)
      f = fn.fn if fn is not None else None
    if f is None:
      return None
    out = set()
    try:
      for args in itertools.product(*domains):  # type: ignore[arg-type]
        try:
          value = f(*args)
        except ArithmeticError:  # tracr's errors.ignoring_arithmetic_errors
          continue
        if value is not None:
          out.add(value)
    except Exception:  # tracr's compile fails on it too
      return None
    return frozenset(out)

  def prune(self, keep: set[str]) -> None:
    """Keeps only the lines named in `keep` (the output's ancestors), so growing can go on from them."""
    self.lines = [line for line in self.lines if line.out in keep]
    self.vars = [v for v in self.vars if v.name in ir.INPUTS or v.name in keep]
    self.consumed = {a for line in self.lines for a in line.args}

  def _acceptable(self, line: ir.Line, values: Values) -> bool:
    existing = values.data[self.valid]
    none = np.isnan(existing)
    distinct = np.unique(existing[~none])
    if len(distinct) < 2 or none.mean() > self.cfg.max_none_fraction:
      return False
    if line.encoding == "categorical" and len(distinct) > self.cfg.max_values:
      return False
    if line.encoding == "numerical" and len(distinct) > self.cfg.max_numerical_values:
      return False
    if line.encoding == "numerical" and none.any():
      # tracr has no None for numerical SOps (its MLPs write 0 there): the
      # compiled model would disagree, so reject now rather than after compiling.
      return False
    for other in self.vars:  # a duplicate of an existing SOp adds nothing
      if other.encoding == line.encoding and np.array_equal(other.values.data, values.data, equal_nan=True):
        return False
    return True


def _one_value_per_query(sel: np.ndarray, values: Values, valid: np.ndarray) -> bool:
  """Whether every existing query of selector `sel` [N, Lq, Lk] selects keys of one value (None never is)."""
  distinct, codes = values.unique
  if len(distinct) > 62:  # more values than bits: compare the largest and smallest selected value
    vals = np.broadcast_to(values.data[:, None, :], sel.shape)
    hi = short_axis.amax(np.where(sel, vals, -np.inf))
    lo = short_axis.amin(np.where(sel, vals, np.inf))
    return not (short_axis.any_(sel) & (hi != lo) & valid).any()
  # Each value is one bit, None two; a query selects one value iff the OR of
  # its selected keys' bits has at most one bit set.
  codes = codes.reshape(values.data.shape)
  bits = np.left_shift(np.int64(1), codes)
  if np.isnan(distinct[-1]):
    bits[codes == len(distinct) - 1] = 0b11 << 61
  seen = short_axis.fold_or(np.where(sel, bits[:, None, :], 0))
  return not (((seen & (seen - 1)) != 0) & valid).any()


# --- proposers: one per generator kind (ops.GENERATOR_KINDS), each drawing one candidate line ---------


def _map_fns(b: _Builder, x: _Var) -> list:
  return [f for f in registry.MAP_FUNCTIONS if b.kind(x) in f.accepts]


def _random_outputs(b: _Builder, n: int, numerical: bool) -> list:
  """n random table outputs: a few small ints (tracr's categorical-to-numerical MLP cannot output negatives)."""
  k = int(b.rng.integers(2, 6))
  return [int(v) for v in b.rng.integers(0, k, size=n)] if not numerical or b.rng.random() < 0.5 \
      else [int(v) for v in b.rng.integers(0, 2, size=n)]


def _table(b: _Builder, *args: _Var) -> bool:
  """Whether to draw a table function (cfg.table_fraction) over these arguments' value sets."""
  return (b.rng.random() < b.cfg.table_fraction
          and all(a.domain is not None and a.encoding == "categorical" for a in args)
          and int(np.prod([len(a.domain) for a in args])) <= b.cfg.max_table_entries)  # type: ignore[arg-type]


def _propose_map(b: _Builder, out: str) -> Optional[ir.Line]:
  enc = "numerical" if b.rng.random() < b.cfg.numerical_map_fraction else "categorical"
  x = b.pick_from(b.vars if enc == "categorical" else b.complete(b.vars))
  if _table(b, x):  # a random lookup table over x's whole value set (issue 10)
    keys = sorted(x.domain, key=tables.sort_key)  # type: ignore[arg-type]
    fn = tables.lookup(dict(zip(keys, _random_outputs(b, len(keys), enc == "numerical"))))
    return ir.Line("map", enc, fn.source, (x.name,), out)
  fn = b.choose(_map_fns(b, x))
  return ir.Line("map", enc, fn.name, (x.name,), out)


def _propose_sequence_map(b: _Builder, out: str) -> Optional[ir.Line]:
  cat = b.categorical()
  x = b.pick_from(cat)
  y = b.pick([v for v in cat if b.kind(v) == b.kind(x)], exclude=(x.name,))
  fns = [f for f in registry.SEQUENCE_MAP_FUNCTIONS if y and b.kind(x) in f.accepts]
  if y is not None and _table(b, x, y):
    pairs = list(itertools.product(sorted(x.domain, key=tables.sort_key),  # type: ignore[arg-type]
                                   sorted(y.domain, key=tables.sort_key)))  # type: ignore[arg-type]
    fn = tables.lookup(dict(zip(pairs, _random_outputs(b, len(pairs), False))))
    return ir.Line("sequence_map", "categorical", fn.source, (x.name, y.name), out)
  if y is None or not fns:
    return None
  return ir.Line("sequence_map", "categorical", b.choose(fns).name, (x.name, y.name), out)


def _propose_linear_sequence_map(b: _Builder, out: str) -> Optional[ir.Line]:
  num = b.numerical()
  x = b.pick(num)
  y = b.pick(num, exclude=(x.name,)) if x is not None else None
  if x is None or y is None:  # make a numerical SOp first; it can be combined later
    x = b.pick_from(b.complete(b.vars))
    return ir.Line("map", "numerical", b.choose(_map_fns(b, x)).name, (x.name,), out)
  w = b.choose(list(registry.LINEAR_WEIGHTS))
  return ir.Line("linear_sequence_map", "numerical", w.name, (x.name, y.name), out)


def _selection(b: _Builder) -> tuple[_Var, _Var, str]:
  """Keys, queries and a comparison for a Select (FALSE selects nothing, so it is never drawn)."""
  cat = b.complete(b.categorical())
  keys, queries = b.pick_from(cat), b.pick_from(cat)
  if _table(b, keys, queries):  # a random truth table (never empty: an empty one selects nothing)
    pairs = list(itertools.product(sorted(keys.domain, key=tables.sort_key),  # type: ignore[arg-type]
                                   sorted(queries.domain, key=tables.sort_key)))  # type: ignore[arg-type]
    chosen = b.rng.random(len(pairs)) < b.rng.uniform(0.15, 0.6)
    chosen[b.rng.integers(len(pairs))] = True
    return keys, queries, tables.predicate(p for p, c in zip(pairs, chosen) if c).source
  return keys, queries, b.choose([c for c in registry.COMPARISONS if c != "FALSE"])


def _propose_selector_width(b: _Builder, out: str) -> Optional[ir.Line]:
  keys, queries, cmp = _selection(b)
  return ir.Line("selector_width", "categorical", cmp, (keys.name, queries.name), out)


def _propose_numerical_aggregate(b: _Builder, out: str) -> Optional[ir.Line]:
  keys, queries, cmp = _selection(b)
  vals = b.pick([v for v in b.numerical() if v.binary])
  if vals is None:  # make a 0/1 SOp first; it can be aggregated later
    x = b.pick_from(b.complete(b.categorical()))
    preds = [f for f in registry.MAP_FUNCTIONS if b.kind(x) in f.accepts and f.threshold]
    if not preds:
      return None
    return ir.Line("map", "numerical", b.choose(preds).name, (x.name,), out)
  return ir.Line("aggregate", "numerical", cmp, (keys.name, queries.name, vals.name), out)


def _propose_categorical_aggregate(b: _Builder, out: str) -> Optional[ir.Line]:
  keys, queries, cmp = _selection(b)
  vals = b.pick_from(b.categorical())
  if b.rng.random() < 0.5:
    # Most random selectors pick several values, which tracr cannot aggregate
    # categorically; selecting by equality with indices (or with the values
    # themselves) picks one position (or one value).
    keys, cmp = (b.vars[1], "EQ") if b.rng.random() < 0.7 else (vals, "EQ")
  return ir.Line("aggregate", "categorical", cmp, (keys.name, queries.name, vals.name), out)


PROPOSERS: dict[str, Callable[[_Builder, str], Optional[ir.Line]]] = {
    "map": _propose_map, "sequence_map": _propose_sequence_map,
    "linear_sequence_map": _propose_linear_sequence_map, "selector_width": _propose_selector_width,
    "numerical_aggregate": _propose_numerical_aggregate, "categorical_aggregate": _propose_categorical_aggregate,
}
assert set(PROPOSERS) <= set(ops.GENERATOR_KINDS), "a proposer for a generator kind the op table does not know"


def _propose_any(b: _Builder, out: str, kind: str) -> Optional[ir.Line]:
  """For an op kind with no proposer of its own: any arguments, function and encoding the op table allows.

  Lines that cannot be evaluated, or that would compile wrong, are rejected by
  try_add like any other, so a new op kind is drawn without touching this file.
  """
  spec = ops.SPECS[ops.GENERATOR_KINDS[kind]]
  args = [b.pick_from(b.vars) for _ in spec.roles]
  return ir.Line(spec.kind, b.choose(list(ops.ENCODINGS)), b.choose(list(spec.names)),
                 tuple(a.name for a in args), out)


@dataclasses.dataclass(frozen=True)
class _Batch:
  """Inputs of all lengths as one padded batch (evaluate.padded_batch)."""
  tokens: np.ndarray  # [N, L] token values, or codes into `labels`
  valid: np.ndarray  # [N, L] bool
  labels: tuple | None  # the vocabulary's code table when it is not all numbers

  @classmethod
  def of(cls, inputs: list[tuple], labels: tuple | None) -> "_Batch":
    return cls(*evaluate.padded_batch(inputs, labels), labels)

  def __len__(self) -> int:
    return len(self.tokens)


@functools.lru_cache(maxsize=64)
def _checked_inputs(vocab: tuple, max_seq_len: int, seed: int) -> tuple[list[tuple], _Batch]:
  # Exhaustive sets (seed 0) are the same for every program: built once per process (never mutated).
  inputs = inputs_lib.input_set(vocab, max_seq_len, seed).inputs
  return inputs, _Batch.of(inputs, evaluate.token_labels([vocab]))


def _input_sets(settings: compiler.CompileSettings, rng: np.random.Generator,
                n_probe: int = 400) -> tuple[_Batch, _Batch]:
  """(probe inputs for drawing ops, the checked inputs: compiling/inputs.py's one policy)."""
  exhaustive = inputs_lib.input_count(len(settings.vocab), settings.max_seq_len) <= inputs_lib.MAX_EXHAUSTIVE
  seed = 0 if exhaustive else int(rng.integers(2**31))  # not exhaustive: each program gets its own sample
  everything, checked = _checked_inputs(tuple(settings.vocab), settings.max_seq_len, seed)
  short = [s for s in everything if len(s) <= 2]
  probe = short + [everything[i] for i in rng.choice(len(everything), size=min(n_probe, len(everything)), replace=False)]
  return _Batch.of(probe, checked.labels), checked


def _grow(cfg: GenerationConfig, rng: np.random.Generator, probe: _Batch, n_ops: int,
          settings: compiler.CompileSettings) -> Optional[tuple[ir.Program, Values]]:
  """One candidate program of n_ops lines in which every SOp reaches the output, with its output's
  values on the probe inputs; or None.

  Lines are drawn one at a time. When they run out with SOps left dangling,
  the program is pruned to the last line's ancestors and grown again on top of
  them (up to cfg.refills times) instead of being thrown away: throwing it away
  was 84 % of all attempts.
  """
  builder = _Builder(cfg, rng, probe, settings)
  for _ in range(cfg.refills + 1):
    for _ in range(3 * (n_ops - len(builder.lines))):
      if len(builder.lines) == n_ops:
        break
      builder.plan(n_ops)
      op = builder.draw_op()  # retry the same kind, so ops that are often rejected keep their share
      for _ in range(cfg.proposals_per_op):
        line = builder.propose(op)
        if line is not None and builder.try_add(line):
          break
    if len(builder.lines) != n_ops:
      return None
    program = ir.Program(tuple(builder.lines))
    if len(program.used()) == n_ops:
      return program, builder.vars[-1].values  # the last line is the output
    builder.prune(program.used())
  return None


def _outputs(program: ir.Program, batch: _Batch, causal: bool) -> Optional[Values]:
  try:
    return evaluate.evaluate_batch(program, batch.tokens, labels=batch.labels, causal=causal, valid=batch.valid)
  except EvaluationError:
    return None


def _longest(batch: _Batch, k: int) -> list[tuple]:
  """The last input of each of the k longest lengths (for tracr's dynamic validation)."""
  lengths = batch.valid.sum(1)
  rows = [int(np.flatnonzero(lengths == n)[-1]) for n in sorted(set(lengths.tolist()))[-k:]]
  return [tuple(evaluate.py_value(t, registry.INT, batch.labels) for t in batch.tokens[r, :lengths[r]])
          for r in rows]


def sample_program(cfg: GenerationConfig, rng: np.random.Generator,
                   blocklist: frozenset[str] = frozenset()) -> Sample:
  """Draws programs until one passes every check (see module docstring).

  Checks run cheapest first: RASP on the probe inputs while the program grows,
  then compile and the compiled model on the probe inputs (which catches
  tracr's miscompiles in practice), and only then RASP and the compiled model
  on every checked input and tracr's own validation.
  After cfg.redraw_after candidates, or cfg.max_program_seconds, a new length
  is drawn (the attempt and time budgets), so no one draw can stall a shard;
  settings that admit no program at all fail after cfg.max_attempts.
  """
  from tracr_decompiler.program import source
  settings = settings_lib.draw(rng) if cfg.mixed_settings else cfg.settings
  probe, batches = _input_sets(settings, rng)
  n_ops = int(rng.integers(cfg.min_sops, cfg.max_sops + 1))  # fixed, so long programs keep their share
  deadline, time_budget_hits = time.monotonic() + cfg.max_program_seconds, 0
  for attempt in range(1, cfg.max_attempts + 1):
    out_of_time = time.monotonic() > deadline
    if attempt % cfg.redraw_after == 0 or out_of_time:  # some draws admit almost no valid program: start over
      n_ops = int(rng.integers(cfg.min_sops, cfg.max_sops + 1))
      if out_of_time:
        deadline, time_budget_hits = time.monotonic() + cfg.max_program_seconds, time_budget_hits + 1
    grown = _grow(cfg, rng, probe, n_ops, settings)
    if grown is None:
      continue
    program, probe_expected = ir.canonicalize(grown[0]), grown[1]  # renaming keeps the output's values
    if probe_expected.labels == probe.labels and np.array_equal(probe_expected.data, probe.tokens):
      continue  # the identity (padding copies real positions: exact)
    if source.to_source(program) in blocklist:
      continue
    try:
      model = compiler.compile_program(program, settings)
    except compiler.CompileError:
      continue
    if model.num_layers * 2 > cfg.max_half_layers or max(
        p["w"].shape[1] for k, p in model.params.items() if k.endswith("linear_1")) > cfg.max_mlp_hidden:
      continue
    if not checking.compiled_matches_padded(model, probe.tokens, probe.valid, probe_expected, probe.labels):
      continue
    expected = _outputs(program, batches, settings.causal)  # every checked input: the probe may have missed one
    if expected is None or not checking.compiled_matches_padded(model, batches.tokens, batches.valid, expected,
                                                                batches.labels):
      continue
    if cfg.tracr_dynamic_checks and checking.dynamic_reasons(
        to_rasp.to_rasp(program), _longest(batches, cfg.tracr_dynamic_checks)):
      continue
    return Sample(program, model, attempt, time_budget_hits, len(batches))
  raise GenerationError(f"no valid program in {cfg.max_attempts} attempts; loosen the settings")
