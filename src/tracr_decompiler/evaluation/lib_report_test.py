"""tracr's own lib programs, compiled by plain tracr, come back verified: docs/results.md's lib table as a test.

Through the user's door (`compile_rasp_to_model`, then `decompile()` on the tracr object), at vocab
{0..4}, max_seq_len 5 and at the settings the programs' authors would use. `shuffle_dyck` needs fractional
tables read as predicates, LinearSequenceMap factors read from the MLP and node matching deep into the
program; the natural `make_pair_balance` needs the splitter to tell two numerical Maps from one categorical
Map; `detect_pattern` needs typed naming of a categorical output.
"""

from __future__ import annotations

import pytest

import tracr_decompiler
from tracr_decompiler.compiling import compiler
from tracr_decompiler.evaluation import lib_report

_NATURAL = ["make_pair_balance", "make_shuffle_dyck", "detect_pattern"]


@pytest.mark.parametrize("name", list(lib_report.lib_programs()))
def test_every_lib_program_is_decompiled_and_verified(name):
  model = compiler.tracr_compile(lib_report.lib_programs()[name], lib_report.SETTINGS)
  result = tracr_decompiler.decompile(model)
  assert result.verified, result.verification


@pytest.mark.parametrize("name", _NATURAL)
def test_lib_programs_at_their_natural_settings(name):
  expr, settings = lib_report.natural_programs()[name]
  result = tracr_decompiler.decompile(compiler.tracr_compile(expr, settings))
  assert result.verified, result.verification
