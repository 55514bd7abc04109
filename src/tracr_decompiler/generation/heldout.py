"""tracr's hand-written `lib` programs that our registry can express, as Programs.

Their canonical texts form the blocklist that keeps them out of every dataset
(they are held-out evaluation programs). `evaluation/lib_report.py` compiles
the original `tracr.compiler.lib` functions themselves.
"""

from __future__ import annotations

from tracr_decompiler.program import ir

L = ir.Line


def _frac_prevs(k: int) -> ir.Program:  # make_frac_prevs(rasp.tokens == k)
  return ir.make_program([
      L("map", "numerical", f"eq{k}", ("tokens",), "bools"),
      L("aggregate", "numerical", "LEQ", ("indices", "indices", "bools"), "frac_prevs")])


def _pair_balance(open_k: int, close_k: int) -> ir.Program:
  return ir.make_program([
      L("map", "numerical", f"eq{open_k}", ("tokens",), "bools_open"),
      L("aggregate", "numerical", "LEQ", ("indices", "indices", "bools_open"), "opens"),
      L("map", "numerical", f"eq{close_k}", ("tokens",), "bools_close"),
      L("aggregate", "numerical", "LEQ", ("indices", "indices", "bools_close"), "closes"),
      L("linear_sequence_map", "numerical", "lin_1_m1", ("opens", "closes"), "pair_balance")])


def expressible_lib_programs() -> dict[str, ir.Program]:
  """name -> program, for every lib program (with numeric arguments) we can express."""
  programs = {
      "make_length": ir.make_program([L("selector_width", "categorical", "TRUE", ("tokens", "tokens"), "length")]),
      "make_hist": ir.make_program([L("selector_width", "categorical", "EQ", ("tokens", "tokens"), "hist")]),
      "make_reverse": ir.make_program([
          L("selector_width", "categorical", "TRUE", ("tokens", "tokens"), "length"),
          L("sequence_map", "categorical", "sub", ("length", "indices"), "opp_idx"),
          L("map", "categorical", "dec", ("opp_idx",), "opp_idx_1"),
          L("aggregate", "categorical", "EQ", ("indices", "opp_idx_1", "tokens"), "reverse")]),
      "make_sort_unique": ir.make_program([
          L("selector_width", "categorical", "LT", ("tokens", "tokens"), "target_pos"),
          L("aggregate", "categorical", "EQ", ("target_pos", "indices", "tokens"), "sort")]),
  }
  for k in range(4):
    programs[f"make_frac_prevs_eq{k}"] = _frac_prevs(k)
    for j in range(4):
      if j != k:
        programs[f"make_pair_balance_{k}_{j}"] = _pair_balance(k, j)
  return programs


# tracr lib function (as evaluation/lib_report.py calls it) -> its program in expressible_lib_programs().
LIB_EQUIVALENT = {"make_length": "make_length", "make_hist": "make_hist", "make_reverse": "make_reverse",
                  "make_sort_unique": "make_sort_unique", "make_frac_prevs": "make_frac_prevs_eq1",
                  "make_pair_balance": "make_pair_balance_0_1"}


def blocklist() -> frozenset[str]:
  """Canonical texts that must never enter a dataset."""
  from tracr_decompiler.program import source
  return frozenset(source.to_source(ir.canonicalize(p)) for p in expressible_lib_programs().values())
