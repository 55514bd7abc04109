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


# ---------------------------------------------------------------------------
# scaling out and resuming: the same report however the programs are scored


import json  # noqa: E402

import pytest  # noqa: E402

from tracr_decompiler import cli  # noqa: E402


def _without_seconds(summary: dict) -> list[dict]:
  return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in summary["records"]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  folder = tmp_path_factory.mktemp("data") / "d"
  assert cli.main(["generate", "--n", "6", "--out", str(folder), "--workers", "1", "--seed", "3", "--quiet"]) == 0
  return str(folder)


@pytest.fixture(scope="module")
def one_process(dataset, tmp_path_factory):
  return report.evaluate_run(None, dataset, "all", beam=2, out=str(tmp_path_factory.mktemp("one")), progress=False)


def test_two_workers_give_the_report_of_one_process(dataset, one_process, tmp_path):
  two = report.evaluate_run(None, dataset, "all", beam=2, out=str(tmp_path), progress=False, workers=2)
  assert len(one_process["records"]) == 6
  assert _without_seconds(two) == _without_seconds(one_process)
  assert two["overall"] == one_process["overall"]


def test_the_ray_path_gives_the_report_of_one_process(dataset, one_process, tmp_path):
  ray = pytest.importorskip("ray")
  ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
  try:
    got = report.evaluate_run(None, dataset, "all", beam=2, out=None, progress=False, ray_address="auto")
  finally:
    ray.shutdown()
  assert _without_seconds(got) == _without_seconds(one_process)


def test_a_rerun_scores_only_what_the_log_lacks(dataset, one_process, tmp_path, monkeypatch):
  out = tmp_path / "r"
  first = report.evaluate_run(None, dataset, "all", beam=2, out=str(out), progress=False, limit=3)
  log = out / "records.jsonl"
  lines = log.read_text().splitlines()
  assert len(lines) == 1 + 3
  log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # a kill cut the last line
  scored = []
  score = report.score_program
  monkeypatch.setattr(report, "score_program", lambda job: scored.append(job.row["id"]) or score(job))
  again = report.evaluate_run(None, dataset, "all", beam=2, out=str(out), progress=False, limit=3)
  assert scored == [first["records"][2]["id"]]  # the cut one only
  assert _without_seconds(again) == _without_seconds(first)
  scored.clear()
  other = report.evaluate_run(None, dataset, "all", beam=1, out=str(out), progress=False, limit=3)
  assert len(scored) == 3 and other["beam"] == 1  # another beam: the log is started over
  assert json.loads(log.read_text().splitlines()[0])["run"]["beam"] == 1
