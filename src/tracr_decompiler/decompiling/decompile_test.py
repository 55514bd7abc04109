"""decompile()'s choice among candidates: a proved candidate beats an earlier one that matched only a sample."""

import dataclasses

from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling import decompile as decompile_lib
from tracr_decompiler.program import ir

L = ir.Line


@dataclasses.dataclass
class _Check:
  status: str

  @property
  def verified(self) -> bool:
    return self.status in ("proved", "verified")

  def describe(self) -> str:
    return self.status


def test_a_sampled_match_is_kept_only_when_no_later_candidate_is_proved(monkeypatch):
  truth = ir.make_program([L("map", "categorical", "inc", ("tokens",), "a")])
  first = ir.make_program([L("map", "categorical", "dec", ("tokens",), "a")])
  statuses = {repr(first.lines): "sampled", repr(truth.lines): "proved"}

  class FakeVerifier:
    def __init__(self, model, compiled):
      pass

    def check(self, program):
      return _Check(statuses.get(repr(program.lines), "different"))

  monkeypatch.setattr(decompile_lib, "Verifier", FakeVerifier)
  monkeypatch.setattr(decompile_lib, "_with_read_variants", lambda c, m, g: [(first, None), (truth, None)])
  model = compiler.compile_program(truth)
  result = decompile_lib.decompile(model)
  assert result.program == truth and result.check.status == "proved" and result.candidates_tried == 2
  statuses[repr(truth.lines)] = "different"  # nothing proved: the sampled match stands
  result = decompile_lib.decompile(model)
  assert result.program == first and result.check.status == "sampled"
