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


def test_without_verification_the_functions_are_read_from_the_weights():
  """--no-verify returns the decoder's best program with its functions read where the reading fits (an
  out-of-registry Map comes back as its table); read=False is the decoder alone, as `evaluate` scores it."""
  from tracr.rasp import rasp
  table = {0: 2, 1: 0, 2: 4, 3: 1, 4: 3}  # no registry function
  out = rasp.categorical(rasp.Map(lambda x: table[x], rasp.tokens))
  model = compiler.tracr_compile(out, compiler.CompileSettings(compiler_bos="BOS"))
  read = decompile_lib.decompile(model, beam=1, verify=False)
  alone = decompile_lib.decompile(model, beam=1, verify=False, read=False)
  assert read.program.lines[0].fn == "lambda x: {0: 2, 1: 0, 2: 4, 3: 1, 4: 3}[x]"
  assert (read.functions_read, read.functions_replaced) == (1, 1) and not read.verified
  assert alone.program.lines[0].fn != read.program.lines[0].fn and alone.functions_read == 0


def test_a_sequence_map_of_one_sop_twice_is_decompiled_through_plain_tracr():
  """tracr compiles SequenceMap(f, x, x) (it warns, users write it) as Map(f(x, x)) with never-firing units
  for the other values of f; the splitter once cut that MLP into one node per value, and nothing verified."""
  from tracr.rasp import rasp
  doubled = rasp.categorical(rasp.SequenceMap(lambda x, y: x + y, rasp.tokens, rasp.tokens))
  out = rasp.categorical(rasp.Map(lambda x: x % 3, doubled, simplify=False))
  model = compiler.tracr_compile(out, compiler.CompileSettings(compiler_bos="BOS"))
  result = decompile_lib.decompile(model)
  assert result.verified, result.check.describe()
