"""checking.dynamic_reasons: tracr's own validation, turned into rejection reasons."""

from tracr.rasp import rasp

from tracr_decompiler.compiling import checking


def _mean_of_none_somewhere():
  # None at every position for the input (0, 0): tracr's evaluator raises inside Aggregate
  # (it cannot average None), where our evaluator returns None.
  x = rasp.numerical(rasp.Map(lambda t: None if t == 0 else 1, rasp.tokens))
  select_all = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.TRUE)
  return rasp.numerical(rasp.Aggregate(select_all, x, default=0))


def test_a_program_tracr_cannot_evaluate_is_a_reason_not_a_crash():
  reasons = checking.dynamic_reasons(_mean_of_none_somewhere(), [(1, 1), (0, 0)])
  assert any("tracr's evaluator fails" in r for r in reasons)


def test_inputs_tracr_evaluates_give_no_such_reason():
  reasons = checking.dynamic_reasons(_mean_of_none_somewhere(), [(1, 1), (1, 2)])
  assert not any("tracr's evaluator fails" in r for r in reasons)
