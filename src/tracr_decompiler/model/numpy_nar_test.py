"""The NumPy NAR pass equals the torch model's on the shipped weights: the same logits, the same candidates."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from tracr.compiler import lib
from tracr.rasp import rasp

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import reading
from tracr_decompiler.decompiling.decompile import PRETRAINED
from tracr_decompiler.encoding import weights
from tracr_decompiler.generation import heldout
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.generation.sampler import sample_program
from tracr_decompiler.model import decode, numpy_nar, pretrained, release
from tracr_decompiler.model.batch import inference_batch
from tracr_decompiler.model.config import ModelConfig

# Through the user's door too: plain tracr models at other settings (letters, a longer max_seq_len).
_TRACR = {"lib_sort_letters": (lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
                               compiler.CompileSettings(vocab=tuple("abcd"), max_seq_len=8, compiler_bos="BOS")),
          "lib_dyck": (lambda: lib.make_shuffle_dyck(["()"]),
                       compiler.CompileSettings(vocab=tuple("()"), max_seq_len=6, compiler_bos="BOS"))}
CASES = [*test_cases.PROGRAMS, *(f"sampled:{s}" for s in range(3)), *_TRACR]


@functools.lru_cache(maxsize=None)
def _models() -> tuple[torch.nn.Module, numpy_nar.NarModel]:
  return pretrained.load_decompiler(PRETRAINED), numpy_nar.NarModel.from_folder(PRETRAINED)


def _compiled(case: str):
  if case.startswith("sampled:"):
    return sample_program(GenerationConfig(), np.random.default_rng(int(case[8:])), heldout.blocklist()).model
  if case in _TRACR:
    make, settings = _TRACR[case]
    return compiler.tracr_compile(make(), settings)
  return compiler.compile_program(test_cases.PROGRAMS[case])


@pytest.mark.parametrize("case", CASES)
def test_numpy_logits_and_candidates_equal_torchs(case):
  torch_model, numpy_model = _models()
  model = _compiled(case)
  compiled = reading.as_compiled(model)
  graph = weights.encode_model(compiled)
  batch = inference_batch(compiled.params, graph, torch_model.cfg)
  with torch.no_grad():
    memory, mask = torch_model.encode(batch)
    want = {k: v.float().numpy() for k, v in torch_model.nar(memory, mask, batch).items()}
  got = numpy_model.logits(graph)
  assert set(got) == set(want)
  for k in want:
    assert got[k].shape == want[k].shape and got[k].dtype == np.float32
    np.testing.assert_allclose(got[k], want[k], atol=2e-4, rtol=1e-4)
  s = len(graph.nodes)
  for wiring in (None, graph):
    mine, theirs = (decode.nar_candidates(logits, s, k=16, graph=wiring) for logits in (got, want))
    assert [p for _, p in mine] == [p for _, p in theirs]
    np.testing.assert_allclose([score for score, _ in mine], [score for score, _ in theirs], atol=1e-2)


def test_flat_mode_decompilers_are_left_to_torch():
  cfg = ModelConfig(input_mode="flat")
  with pytest.raises(ValueError, match="graph-mode"):
    numpy_nar.NarModel(cfg, {})


def test_a_tensor_file_without_the_encoder_is_one_clear_error(tmp_path):
  (tmp_path / "config.json").write_text((PRETRAINED / "config.json").read_text())
  from safetensors.numpy import save_file
  save_file({"heads.op.weight": np.zeros((5, 256), np.float16)}, str(tmp_path / "model.safetensors"))
  with pytest.raises(release.CheckpointError, match=r"missing .* and \d+ more"):
    numpy_nar.NarModel.from_folder(tmp_path)


def test_it_reads_what_the_torch_model_saves():
  """Every tensor it reads is in the torch model's state dict, shaped as this pass expects."""
  torch_model, _ = _models()
  state = {k: tuple(v.shape) for k, v in torch_model.state_dict().items()}
  assert all(state.get(k) == shape for k, shape in numpy_nar.expected_shapes(torch_model.cfg).items())
