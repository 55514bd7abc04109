"""Weights -> RASP program: the user-facing entry point.

Example usage:
    >>> from tracr.compiler import compiling, lib
    >>> model = compiling.compile_rasp_to_model(lib.make_hist(), {0, 1, 2, 3, 4}, 5, compiler_bos="BOS")
    >>> result = tracr_decompiler.decompile(model)
    >>> print(result.source)            # runs with tracr
    >>> result.verified, result.status
    (True, 'proved')
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from typing import Iterable, Iterator

import numpy as np

from tracr_decompiler import stopping
from tracr_decompiler.loading import reading as reading_lib
from tracr_decompiler.decompiling import circuit as circuit_lib, read_functions
from tracr_decompiler.decompiling.verify import Check, Verifier
from tracr_decompiler.encoding import weights
from tracr_decompiler import limits
from tracr_decompiler.errors import TracrDecompilerError, UsageError
from tracr_decompiler.program import ir, registry, source
from tracr_decompiler.model import decode, numpy_nar, release
from tracr_decompiler.model.config import ModelConfig

PRETRAINED = pathlib.Path(__file__).resolve().parent.parent / "pretrained"


@dataclasses.dataclass
class DecompileResult:
  program: ir.Program
  source: str  # Python RASP source in tracr's API
  line_confidence: list[float]  # probability of each line's fields under the model (NAR), canonical order
  verified: bool  # True only when proved or checked on every valid input (see verify.py)
  verification: str  # what was checked, in words
  candidates_tried: int
  seconds: float
  mode: str
  check: Check | None = None
  output_block: str = ""  # where the output SOp was found in the weights (TransformerLens inputs: never W_U)
  warnings: list[str] = dataclasses.field(default_factory=list)  # e.g. a model outside what the decompiler saw
  # Of the chosen program's lines: how many functions were read from the weights (read_functions.py), and how
  # many of those disagreed with the decoder's registry guess and were replaced by the table (or a matching name).
  functions_read: int = 0
  functions_replaced: int = 0
  # Which head and MLP computes which SOp and which reads which (circuit.py); exact when proved.
  circuit: circuit_lib.Circuit | None = None

  @property
  def status(self) -> str:
    """proved / verified / sampled / different / untrusted (verify.py), or "unchecked"."""
    return self.check.status if self.check is not None else "unchecked"

  def to_rasp(self):
    """The program as tracr `rasp` objects (its output SOp)."""
    from tracr_decompiler.program import to_rasp
    return to_rasp.to_rasp(self.program)


class DecompileError(TracrDecompilerError, ValueError):
  """The input cannot be decompiled (not a Tracr model, too large, ...)."""


def checkpoint_folder(path: str | None) -> pathlib.Path:
  """The folder holding the decompiler's weights: the shipped model's for None, else a run's or a checkpoint's."""
  folder = pathlib.Path(path) if path else PRETRAINED
  if not (folder / "config.json").exists() and not (folder / "last").exists():
    raise release.CheckpointError(f"no decompiler checkpoint at {folder}")
  return release.model_folder(folder)


@functools.lru_cache(maxsize=4)
def load_decompiler(path: str | None = None):
  """The shipped decompiler, or a checkpoint / run folder, as a torch module (imports torch)."""
  from tracr_decompiler.model import pretrained
  return pretrained.load_decompiler(checkpoint_folder(path))


@functools.lru_cache(maxsize=4)
def _config(path: str | None) -> tuple[ModelConfig, dict | None]:
  return release.read_config(checkpoint_folder(path))


@functools.lru_cache(maxsize=4)
def _nar_model(path: str | None) -> numpy_nar.NarModel:
  return numpy_nar.NarModel.from_folder(checkpoint_folder(path))


def _nar_logits(path: str | None, params, graph: weights.WeightGraph) -> dict[str, np.ndarray]:
  """The NAR heads' logits: in NumPy for graph-mode decompilers, so decompiling never imports torch
  (numpy_nar.py); the flat baseline only through its torch model."""
  if _config(path)[0].input_mode == "graph":
    return _nar_model(path).logits(graph)
  return _with_torch_model(path, params, graph, lambda model, memory, mask, batch: {
      k: v.float().numpy() for k, v in model.nar(memory, mask, batch).items()})


def _ar_candidates(path: str | None, params, graph: weights.WeightGraph, beam: int) -> list[tuple[float, ir.Program]]:
  """The AR decoder's beam."""
  from tracr_decompiler.model.beam import ar_beam
  return _with_torch_model(path, params, graph, lambda model, memory, mask, batch: ar_beam(
      model, memory, mask, len(graph.nodes), beam=beam))


def _with_torch_model(path: str | None, params, graph: weights.WeightGraph, run):
  """`run(model, memory, mask, batch)` on the torch decompiler's encoding of the graph, without gradients.

  torch is imported here, not for the default NAR path: importing it takes longer than a whole decompile.
  """
  import torch  # pylint: disable=import-outside-toplevel
  from tracr_decompiler.model.batch import inference_batch
  model = load_decompiler(path)
  batch = inference_batch(params, graph, model.cfg)
  with torch.no_grad():
    memory, mask = model.encode(batch)
    return run(model, memory, mask, batch)


def decompile(model, *, checkpoint_path: str | None = None, mode: str = "nar", beam: int = 16,
              verify: bool = True, read: bool = True, **reading) -> DecompileResult:
  """Decompiles a compiled Tracr model into a RASP program.

  Args:
    model: a tracr AssembledTransformerModel, a TransformerLens 4 TransformerBridge or legacy
      HookedTransformer or either's state dict (loading/transformerlens.py), a model file's path (ours
      or a TransformerLens safetensors file with its settings JSON), or our CompiledModel.
    checkpoint_path: decompiler weights (default: the shipped model).
    mode: "nar" (one pass, per-line predictions) or "ar" (autoregressive).
    beam: candidates to consider; with `verify`, the first one that matches
      the given model is returned. In NAR mode with beam > 1, up to `beam`
      more follow the wiring of the weights (decode.wiring). Each candidate is also tried with its
      functions read from the weights where they pin them down
      (read_functions.py), so functions outside the registry come back exact.
    verify: check candidates against the given model (see verify.py). Without
      it, the decoder's best program is returned with its functions read from
      the weights (what the model computes, where the reading fits).
    read: read candidates' functions from the weights (read_functions.py); False
      gives the decoder's own programs (what `evaluate` scores as greedy).
    **reading: for TransformerLens inputs, what the weights do not say: tracr's
      `input_encoder`/`output_encoder`, or vocab, bos, pad, causal, output_values, n_heads, ...

  Returns:
    DecompileResult; `verified` is True only after a successful check.
  Raises:
    DecompileError: if the weights are not a Tracr model this decompiler can read.
  """
  start = time.time()
  if mode not in ("nar", "ar"):
    raise UsageError(f"mode must be 'nar' or 'ar', got {mode!r}")
  if not isinstance(beam, int) or isinstance(beam, bool) or not 1 <= beam <= limits.MAX_BEAM:
    raise UsageError(f"beam must be an integer in 1..{limits.MAX_BEAM}, got {beam!r}")
  compiled = reading_lib.as_compiled(model, **reading)
  try:
    graph = weights.encode_model(compiled)
  except weights.NotTracrError as e:
    raise DecompileError(f"not a Tracr-compiled model: {e}") from None
  cfg, trained_on = _config(checkpoint_path)
  s = len(graph.nodes)
  if s > cfg.max_nodes:
    raise DecompileError(f"{s - 2} ops is more than this decompiler reads ({cfg.max_nodes - 2})")
  warnings = outside_training(trained_on, compiled, s - 2)
  # Made before decoding: a tracr model's own forward pass (one XLA compile) runs meanwhile (verify.py).
  verifier = Verifier(model, compiled) if verify else None
  if mode == "nar":
    logits = _nar_logits(checkpoint_path, compiled.params, graph)
    free = decode.nar_candidates(logits, s, k=max(1, beam))
    # The same search with each node's op kind and arguments taken from its wiring in the weights: where
    # the decoder points an argument at the wrong SOp, the wiring says which it reads. The decoder's own
    # best guess stays first (most programs need nothing else), then the wired ones, then its other guesses.
    wired = decode.nar_candidates(logits, s, k=max(1, beam), graph=graph) if beam > 1 else []
    candidates = _distinct(free[:1] + wired + free[1:])
  else:
    candidates = _ar_candidates(checkpoint_path, compiled.params, graph, max(1, beam))
  if not candidates:
    raise DecompileError("the decompiler produced no well-formed program")
  confidence = _line_confidence(logits, candidates[0][1], s) if mode == "nar" else []
  chosen, check, tried, chosen_read = candidates[0][1], None, 0, None
  if read and not verify:
    chosen_read = _read_variant(candidates[0][1], compiled, graph)
    chosen = chosen_read.program if chosen_read is not None else chosen
  if verifier is not None:
    # (program, check, read): the first verified match, else the first sampled match (outputs equal on a
    # sample only: a later candidate may still be proved, e.g. a read table where a registry name agreed
    # on the sample), else the first program tried (the best guess).
    best, sampled = None, None
    options: Iterable[tuple[ir.Program, read_functions.ReadVariant | None]] = (
        _with_read_variants(candidates, compiled, graph) if read else [(program, None) for _, program in candidates])
    for program, info in options:
      stopping.check()
      tried += 1
      result = verifier.check(program)
      best = best or (program, result, info)
      if result.verified:
        best = (program, result, info)
        break
      if result.status == "sampled" and sampled is None:
        sampled = (program, result, info)
    else:
      best = sampled or best
    if best is not None:
      chosen, check, chosen_read = best
  verified = check is not None and check.verified
  if check is None:
    text = "unverified: verification was not run"
  elif verified or check.status == "sampled":
    text = check.describe()
  else:
    text = f"unverified: none of {tried} candidates matched the model ({check.describe()}; best guess shown)"
  if chosen_read is not None and chosen_read.read:
    text += (f"; {chosen_read.read} function(s) read from the weights, {chosen_read.disagreed} of them "
             f"different from the decoder's guess")
  return DecompileResult(program=chosen, source=source.to_source(chosen), line_confidence=confidence,
                         verified=verified, verification=text, candidates_tried=tried,
                         seconds=time.time() - start, mode=mode, check=check, output_block=compiled.output_name,
                         warnings=warnings, functions_read=chosen_read.read if chosen_read else 0,
                         functions_replaced=chosen_read.disagreed if chosen_read else 0,
                         circuit=circuit_lib.read_circuit(compiled, chosen, exact=check is not None and
                                                          check.status == "proved", graph=graph))


def _distinct(candidates: list[tuple[float, ir.Program]]) -> list[tuple[float, ir.Program]]:
  seen: set[str] = set()
  out = []
  for score, program in candidates:
    if repr(program.lines) not in seen:
      seen.add(repr(program.lines))
      out.append((score, program))
  return out


def _read_variant(program: ir.Program, compiled, graph) -> read_functions.ReadVariant | None:
  try:
    return read_functions.read_variant(program, compiled, graph)
  except (ValueError, KeyError, IndexError, TypeError):  # a guess the reading cannot follow: left as guessed
    return None


def _with_read_variants(candidates, compiled, graph) -> Iterator[tuple[ir.Program, read_functions.ReadVariant | None]]:
  """The order verification tries programs in: decoded candidates and their read variants, each once.

  A candidate's read variant (read_functions.py) comes just before it, since
  where a guess and the weights disagree the model computes what the weights
  say; the decoded candidate stays in the list, so verification alone decides.
  Programs whose functions are all registry names come before any with a
  table: an intermediate SOp's value labels are not in the weights, so a
  table over guessed labels can be right (even weight-identical) where a later
  candidate says the same with names (`x - 1` and `EQ` rather than `x + 1` and
  a shifted truth table).

  Lazy, in that order: registry-only programs are yielded as each candidate is read, those with a table
  after all candidates are; the first match usually ends the search after one reading, not all of them.
  """
  with_tables: list[tuple[ir.Program, read_functions.ReadVariant | None]] = []
  seen: set[str] = set()
  for _, program in candidates:
    read = _read_variant(program, compiled, graph)
    pair: list[tuple[ir.Program, read_functions.ReadVariant | None]] = (
        [(read.program, read)] if read is not None and read.disagreed else [])
    pair.append((program, dataclasses.replace(read, program=program, disagreed=0, replaced={}) if read else None))
    for option, info in pair:
      key = repr(option.lines)
      if key in seen:
        continue
      seen.add(key)
      if any(registry.written(line.fn) is not None for line in option.lines):
        with_tables.append((option, info))
      else:
        yield option, info
  yield from with_tables


def outside_training(trained_on: dict | None, model, n_ops: int) -> list[str]:
  """Ways the model lies outside what the decompiler was trained on (its accuracy there is unmeasured).

  trained_on["parts"] holds each training dataset's ranges ("covers", see
  generation/settings.coverage); a model inside any one part gets no warning,
  else the part it is closest to (fewest warnings) is reported. Older configs
  hold one "generation" with fixed settings.
  """
  if not trained_on:
    return []
  warnings = []
  if trained_on.get("feature_version") != weights.FEATURE_VERSION:
    warnings.append(f"the decompiler was trained on features v{trained_on.get('feature_version')}, "
                    f"this code computes v{weights.FEATURE_VERSION}")
  parts = [p.get("covers") for p in trained_on.get("parts") or () if isinstance(p, dict)]
  if "generation" in trained_on:  # a config written before parts
    parts.append(_legacy_covers(trained_on.get("generation") or {}))
  per_part = [_outside(c, model, n_ops) for c in parts if isinstance(c, dict)]
  return warnings + (min(per_part, key=len) if per_part else [])


def _outside(covers: dict, model, n_ops: int) -> list[str]:
  s = model.settings
  checks = (("vocab_size", len(s.vocab), "vocab of {} tokens"), ("max_seq_len", s.max_seq_len, "max_seq_len {}"),
            ("n_ops", n_ops, "{} ops"))
  out = []
  for key, value, text in checks:
    lo_hi = covers.get(key)
    if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
      trained = f"{lo_hi[0]}" if lo_hi[0] == lo_hi[1] else f"{lo_hi[0]}-{lo_hi[1]}"
      out.append(f"{text.format(value)}; trained on {trained}")
  exactness = covers.get("mlp_exactness")
  if exactness and s.mlp_exactness not in exactness:
    out.append(f"mlp_exactness {s.mlp_exactness}; trained on {', '.join(map(str, exactness))}")
  return out


def _legacy_covers(gen: dict) -> dict:
  settings = gen.get("settings") or {}
  vocab, n = settings.get("vocab"), settings.get("max_seq_len")
  return {"vocab_size": [len(vocab)] * 2 if vocab is not None else None, "max_seq_len": [n, n] if n else None,
          "mlp_exactness": [settings["mlp_exactness"]] if settings.get("mlp_exactness") else None,
          "n_ops": [gen.get("min_sops", 1), gen["max_sops"]] if gen.get("max_sops") is not None else None}


def _line_confidence(logits: dict[str, np.ndarray], program: ir.Program, s: int) -> list[float]:
  """Max-probability of each node's predicted fields (a rough per-line confidence)."""
  probs = []
  for i in range(2, s):
    p = 1.0
    for k in ("op", "enc", "fn"):
      p *= float(np.exp(decode.log_softmax(logits[k][0, i]).max()))
    probs.append(round(p, 3))
  return probs[:len(program)]
