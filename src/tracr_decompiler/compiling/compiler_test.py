"""The fast compile is bit-identical to tracr's and independent of the process."""

import json
import subprocess
import sys

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import checking, compiler, forward
from tracr_decompiler.generation import sampler
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.program import evaluate, to_rasp

SETTINGS = compiler.CompileSettings()


def _assert_identical(expr, ours: compiler.CompiledModel):
  ref = compiling.compile_rasp_to_model(expr, set(SETTINGS.vocab), SETTINGS.max_seq_len,
                                        compiler_bos=SETTINGS.compiler_bos, compiler_pad=SETTINGS.compiler_pad)
  assert set(ref.params) == set(ours.params)
  for module, params in ref.params.items():
    for name, value in params.items():
      value = np.asarray(value)
      assert value.dtype == ours.params[module][name].dtype
      assert np.array_equal(value, ours.params[module][name]), (module, name)
  assert ref.residual_labels == ours.residual_labels


def _generated(n, seed=0):
  rng = np.random.default_rng(seed)
  return [sampler.sample_program(GenerationConfig(max_sops=5), rng).program for _ in range(n)]


@pytest.mark.parametrize("program", _generated(4) + [test_cases.PROGRAMS["mixed"]])
def test_bit_identical_on_generated_programs(program):
  expr = to_rasp.to_rasp(program)
  _assert_identical(expr, compiler.compile_expr(expr, SETTINGS))


@pytest.mark.parametrize("make", [lib.make_hist, lambda: lib.make_frac_prevs(rasp.tokens == 1),
                                  lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens)],
                         ids=["hist", "frac_prevs", "sort_unique"])
def test_bit_identical_on_lib_programs(make):
  expr = make()
  _assert_identical(expr, compiler.compile_expr(expr, SETTINGS))


def test_same_program_same_weights_in_another_process():
  """The label counter differs between processes; our weights must not."""
  program = test_cases.PROGRAMS["mixed"]
  code = ("import sys, json, hashlib\nfrom tracr.rasp import rasp\n"
          "[rasp.Map(lambda x: x, rasp.tokens) for _ in range(57)]  # advance the id counter\n"
          "from tracr_decompiler import test_cases\nfrom tracr_decompiler.compiling import compiler\n"
          "m = compiler.compile_program(test_cases.PROGRAMS['mixed'])\n"
          "h = hashlib.sha256(b''.join(m.params[k][p].tobytes() for k in sorted(m.params) for p in sorted(m.params[k])))\n"
          "print(h.hexdigest())\n")
  other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
  import hashlib
  m = compiler.compile_program(program)
  here = hashlib.sha256(b"".join(m.params[k][p].tobytes() for k in sorted(m.params) for p in sorted(m.params[k])))
  assert here.hexdigest() == other


@pytest.mark.parametrize("program", _generated(6, seed=1), ids=lambda p: f"{len(p)}ops")
def test_compiled_model_matches_rasp_evaluation(program):
  model = compiler.compile_program(program)
  inputs = evaluate.all_inputs(SETTINGS.vocab, SETTINGS.max_seq_len)
  assert checking.compiled_matches(model, inputs, evaluate.evaluate(program, inputs))


def test_numpy_forward_matches_tracr_apply():
  expr = to_rasp.to_rasp(test_cases.PROGRAMS["mixed"])
  ref = compiling.compile_rasp_to_model(expr, set(SETTINGS.vocab), SETTINGS.max_seq_len,
                                        compiler_bos=SETTINGS.compiler_bos)
  ours = compiler.compile_expr(expr, SETTINGS)
  for xs in [(0, 1, 2), (4, 4, 0, 1, 3), (2,)]:
    want = ref.apply([SETTINGS.compiler_bos, *xs]).decoded[1:]
    got = forward.run(ours, [xs])[0]
    assert [w for w in want] == [g if g is not None else w for g, w in zip(got, want)]


def test_unsupported_program_raises_compile_error():
  bad = rasp.numerical(rasp.SequenceMap(lambda x, y: x + y, rasp.tokens, rasp.indices))  # non-linear numerical
  with pytest.raises(compiler.CompileError):
    compiler.compile_expr(bad, SETTINGS)


def test_impossible_settings_are_rejected():
  with pytest.raises(ValueError):
    compiler.CompileSettings(max_seq_len=0)
  with pytest.raises(ValueError):
    compiler.CompileSettings(vocab=("compiler_bos", 1))


def test_a_value_set_explosion_is_refused_before_any_large_allocation():
  # tracr infers value sets over all input combinations: 40 x 79 values here, and MLPs quadratic in them.
  from tracr_decompiler import limits
  m = rasp.numerical(rasp.Map(lambda x: x, rasp.tokens))
  s1 = rasp.numerical(rasp.LinearSequenceMap(m, m, 1, 1))
  s2 = rasp.numerical(rasp.LinearSequenceMap(s1, m, 1, 100))
  out = rasp.categorical(rasp.Map(lambda x: x, s2))
  with pytest.raises(compiler.CompileError, match=f"more than {limits.MAX_VALUE_SET}"):
    compiler.compile_expr(out, compiler.CompileSettings(vocab=tuple(range(40)), max_seq_len=3))
