"""The evaluate report's breakdowns: settings, registry-only vs out-of-registry programs, how functions were named."""

from tracr_decompiler.evaluation import report


def _record(i: int, functions: str, exact: float, named: dict) -> dict:
  scores = {m: exact for m in report.METRICS}
  return {"id": str(i), "n_sops": 2 + i % 3, "ops": ["map"], "vocab_size": 5, "max_seq_len": 5 + i % 2,
          "token_type": "int", "causal": False, "functions": functions, "nar": scores, "ar": scores,
          "verified": {**scores, "verified": exact}, "check": "proved" if exact else "different", "named": named,
          "functions_read": 2, "functions_replaced": int(functions != "registry-only"),
          "nar_seconds": 0.1, "ar_seconds": 0.1, "verified_seconds": 1.0}


def test_breakdowns_and_naming_counts():
  records = ([_record(i, "registry-only", 1.0, {"registry": 2}) for i in range(3)]
             + [_record(i, "out-of-registry", 0.0, {"registry": 1, "table": 1}) for i in range(3, 5)]
             + [_record(5, "out-of-registry", 1.0, {"formula": 2})])
  summary = report._summarise(records, {}, "test", "data", None, 16, 0)
  assert summary["by_functions"]["registry-only"]["count"] == 3
  assert summary["by_functions"]["out-of-registry"]["count"] == 3
  assert summary["by_max_seq_len"][5]["count"] == 3
  assert summary["overall"]["verified"]["named"] == {"registry": 8, "table": 2, "formula": 2}
  assert summary["overall"]["verified"]["functions_replaced"] == 3
  md = report.markdown({**summary, "exclude": None})
  assert "| functions |" in md and "| out-of-registry | 3 |" in md and "formula 2" in md


def test_naming_examples_show_each_kind_beside_its_original():
  records = [_record(0, "registry-only", 1.0, {"registry": 1}), _record(1, "out-of-registry", 0.0, {"table": 1}),
             _record(2, "out-of-registry", 1.0, {"formula": 1})]
  for r, truth, got in zip(records, ("x = Map(inc)", "x = Map(table)", "x = Map(table)"),
                           ("x = Map(inc)", "x = Map(other table)", "x = Map(lambda x: x | 1)")):
    r["truth_source"], r["source"] = truth, got
  md = "\n".join(report.naming_examples(records))
  assert "named by registry (proved" in md and "named by formula (proved" in md
  assert "named by table" not in md  # its only program was not verified: no example is better than a wrong one
  assert "`x = Map(lambda x: x \\| 1)`" in md  # a pipe inside a cell is escaped
