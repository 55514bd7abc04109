"""`make demo`'s choices, without running it (it takes half a minute): every lib program once, columns that fit."""

from tracr_decompiler import demo
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.generation import heldout


def test_the_demo_shows_every_lib_program_once_the_registry_forms_last():
  assert sorted(demo.HARDEST_FIRST) == sorted(lib_report.lib_programs())
  expressible = [n for n in demo.HARDEST_FIRST if n in heldout.LIB_EQUIVALENT]
  assert list(demo.HARDEST_FIRST[-len(expressible):]) == expressible


def test_side_by_side_only_where_no_line_is_cut():
  assert demo.side_by_side("a = 1\nb = 2", "v1 = 1", 40).splitlines()[2] == "a = 1    | v1 = 1"
  assert demo.side_by_side("x" * 30, "y" * 30, 60) is None
