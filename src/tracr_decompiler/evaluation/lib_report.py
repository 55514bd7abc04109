"""Held-out real programs: tracr's own `lib`, compiled by plain tracr and decompiled.

Each program is compiled with tracr's own `compile_rasp_to_model` (the object a
user holds, BOS "BOS") and handed to `decompile()` as is.

None of these programs is in any training set (generation/heldout.py blocks
the ones our registry can express). Several use lambdas outside the registry,
so they can only match structurally and functionally, never token-exactly.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

from tracr.compiler import lib
from tracr.rasp import rasp

from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import DecompileError, decompile
from tracr_decompiler.compiling import inputs as inputs_lib
from tracr_decompiler.evaluation import metrics
from tracr_decompiler.generation import heldout
from tracr_decompiler.program import evaluate

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")  # vocab {0..4}, max_seq_len 5: the training world


def lib_programs() -> dict[str, rasp.SOp]:
  """tracr's lib programs with arguments that fit vocab {0..4}, max_seq_len 5."""
  t = rasp.tokens
  return {
      "make_length": lib.make_length(),
      "make_reverse": lib.make_reverse(t),
      "make_hist": lib.make_hist(),
      "make_sort_unique": lib.make_sort_unique(t, t),
      "make_sort": lib.make_sort(t, t, max_seq_len=5, min_key=1),
      "make_sort_freq": lib.make_sort_freq(5),
      "make_frac_prevs": lib.make_frac_prevs(t == 1),
      "make_pair_balance": lib.make_pair_balance(t, 0, 1),
      "make_shuffle_dyck": lib.make_shuffle_dyck([(0, 1)]),
      "make_shuffle_dyck2": lib.make_shuffle_dyck([(0, 1), (2, 3)]),
      "shift_by": lib.shift_by(1, t),
      "detect_pattern": lib.detect_pattern(t, [0, 1]),
      "make_count_less_freq": lib.make_count_less_freq(2),
      "make_count": lib.make_count(t, 1),
      # Three different SOps in turn: with (t, t, ...) the first SequenceMap reads one SOp twice, which tracr
      # itself warns against, and its MLP (hidden units over every pair, most never reached) is not split.
      "make_nary_sequencemap": lib.make_nary_sequencemap(lambda x, y, z: x * y - z, t, rasp.indices, t),
  }



def natural_programs() -> dict[str, tuple[rasp.SOp, compiler.CompileSettings]]:
  """tracr's lib programs at settings their authors' examples suggest: letters, brackets, longer inputs.

  All within the ranges the shipped model is trained on (generation/settings.py: vocab <= 16,
  max_seq_len <= 12). make_nary_sequencemap has no natural setting beyond the one above.
  """
  t = rasp.tokens
  letters = lambda n, length=8: compiler.CompileSettings(vocab=tuple("abcdefgh"[:n]), max_seq_len=length,
                                                         compiler_bos="BOS")
  ints = lambda lo, hi, length=8: compiler.CompileSettings(vocab=tuple(range(lo, hi + 1)), max_seq_len=length,
                                                           compiler_bos="BOS")
  brackets = lambda pairs, length=8: compiler.CompileSettings(vocab=tuple("".join(pairs)), max_seq_len=length,
                                                              compiler_bos="BOS")
  return {
      "make_length": (lib.make_length(), letters(3)),
      "make_reverse": (lib.make_reverse(t), letters(3)),
      "make_hist": (lib.make_hist(), letters(4)),
      "make_sort_unique": (lib.make_sort_unique(t, t), ints(1, 6)),
      "make_sort": (lib.make_sort(t, t, max_seq_len=8, min_key=1), ints(1, 5)),
      "make_sort_freq": (lib.make_sort_freq(8), ints(1, 4)),
      "make_frac_prevs": (lib.make_frac_prevs(t == "("), brackets(["()"], 10)),
      "make_pair_balance": (lib.make_pair_balance(t, "(", ")"), brackets(["()"], 10)),
      "make_shuffle_dyck": (lib.make_shuffle_dyck(["()"]), brackets(["()"])),
      "make_shuffle_dyck2": (lib.make_shuffle_dyck(["()", "{}"]), brackets(["()", "{}"], 6)),
      "shift_by": (lib.shift_by(2, t), letters(3)),
      "detect_pattern": (lib.detect_pattern(t, "abc"), letters(3)),
      "make_count_less_freq": (lib.make_count_less_freq(2), letters(4)),
      "make_count": (lib.make_count(t, "a"), letters(3)),
  }


def _rasp_outputs(expr: rasp.SOp, inputs) -> list[list] | None:
  try:
    return [list(expr(list(x))) for x in inputs]
  except Exception:  # some lib programs raise on some inputs; then no functional reference
    return None


def tracr_lib_models(settings: compiler.CompileSettings = SETTINGS) -> dict[str, Any]:
  """lib program -> its plain-tracr model (`compile_rasp_to_model`), or the CompileError that stopped it."""
  return {name: _compile(expr, settings) for name, expr in lib_programs().items()}


def _compile(expr: rasp.SOp, settings: compiler.CompileSettings) -> Any:
  try:
    return compiler.tracr_compile(expr, settings)
  except compiler.CompileError as e:
    return e


def evaluate_lib(checkpoint: str | None = None, out: str | None = None, beam: int = 16) -> dict:
  """Both worlds: every lib program at vocab {0..4}, max_seq_len 5, then each at its natural settings."""
  training_world = _evaluate({name: (expr, SETTINGS) for name, expr in lib_programs().items()},
                             checkpoint, beam, exact_against=heldout.expressible_lib_programs())
  natural = _evaluate(natural_programs(), checkpoint, beam, exact_against={})
  summary = {**training_world, "natural": natural}
  if out:
    path = pathlib.Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "lib_report.json").write_text(json.dumps(summary, indent=2) + "\n")
    (path / "lib_report.md").write_text(markdown(summary))
  return summary


def _evaluate(programs: dict[str, tuple[rasp.SOp, compiler.CompileSettings]], checkpoint: str | None, beam: int,
              exact_against: dict) -> dict:
  results = []
  input_sets: dict = {}
  for name, (expr, settings) in programs.items():
    rec: dict[str, Any] = {"program": name, "settings": _describe(settings)}  # a JSON record
    model = _compile(expr, settings)
    if isinstance(model, compiler.CompileError):
      rec.update(status="does not compile at these settings", error=str(model)[:120])
      results.append(rec)
      continue
    inputs = input_sets.setdefault(settings, inputs_lib.input_set(settings.vocab, settings.max_seq_len))
    rec["layers"] = model.model_config.num_layers
    t = time.time()
    try:
      result = decompile(model, checkpoint_path=checkpoint, beam=beam, verify=True)
    except DecompileError as e:
      rec.update(status=f"not decompiled: {e}")
      results.append(rec)
      continue
    rec["seconds"] = round(time.time() - t, 3)
    rec["source"] = result.source
    rec["ops"] = len(result.program)
    rec["verified"] = result.verified
    rec["status_of_check"] = result.status
    rec["functions_read"] = result.functions_read  # lines whose function came from the weights
    rec["functions_replaced"] = result.functions_replaced  # of those, where the decoder's guess disagreed
    rec["verification"] = result.verification
    reference = _rasp_outputs(expr, inputs.inputs)
    got = metrics.outputs(result.program, inputs.inputs)
    rec["functional"] = bool(reference is not None and got is not None and evaluate.same_outputs(reference, got))
    key = heldout.LIB_EQUIVALENT.get(name)
    rec["exact"] = metrics.exact(result.program, exact_against[key]) if key in exact_against else None
    rec["status"] = "ok"
    results.append(rec)
  done = [r for r in results if r.get("status") == "ok"]
  return {"settings": SETTINGS.to_json(), "programs": results,
          "functional": sum(r["functional"] for r in done), "verified": sum(r["verified"] for r in done),
          "decompiled": len(done), "total": len(results),
          "functions_read": sum(r["functions_read"] for r in done),
          "functions_replaced": sum(r["functions_replaced"] for r in done)}


def _describe(settings: compiler.CompileSettings) -> str:
  vocab = "".join(map(str, settings.vocab)) if all(len(str(v)) == 1 for v in settings.vocab) else settings.vocab
  return f"vocab {vocab}, max_seq_len {settings.max_seq_len}"


def markdown(summary: dict) -> str:
  """The training world's table, then the natural settings' table when the summary has one."""
  text = _table(summary)
  if summary.get("natural"):
    text += "\nAt natural settings (letters, brackets, longer inputs):\n\n" + _table(summary["natural"], settings=True)
  return text


def _table(summary: dict, settings: bool = False) -> str:
  extra = " settings |" if settings else ""
  lines = ["| lib program |" + extra + " ops decompiled | verified (status) | functional | exact | time (s) |",
           "|---|" + ("---|" if settings else "") + "---|---|---|---|---|"]
  for r in summary["programs"]:
    cell = f" {r.get('settings', '')} |" if settings else ""
    if r.get("status") != "ok":
      lines.append(f"| {r['program']} |{cell} – | – | – | – | {r.get('status')} |")
      continue
    exact = "n/a" if r["exact"] is None else ("yes" if r["exact"] else "no")
    lines.append(f"| {r['program']} |{cell} {r['ops']} | {'yes' if r['verified'] else 'no'} ({r.get('status_of_check')}) | "
                 f"{'yes' if r['functional'] else 'no'} | {exact} | {r['seconds']} |")
  lines.append("")
  lines.append(f"{summary['verified']}/{summary['total']} verified against the model tracr compiled, "
               f"{summary['functional']}/{summary['total']} functionally equal to the lib program "
               f"(exact: n/a where the program uses lambdas outside our registry).")
  if "functions_read" in summary:
    lines.append(f"Functions read from the weights in the programs shown: {summary['functions_read']}, of which "
                 f"{summary['functions_replaced']} replaced the decoder's guess.")
  return "\n".join(lines) + "\n"
