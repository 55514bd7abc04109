"""TransformerLens inputs map exactly onto CompiledModel: same encoder input as the tracr model, W_U used only
where it is a real reader, a relabelled or aliased model never proved.

The state dicts are built here by the documented layouts (loading/tl_layouts.py), the way TransformerLens'
Tracr demo converts a model (including its `W_U = eye(d_model, d_vocab_out)`), so TransformerLens itself is
not needed; loading/transformerlens4_test.py runs the real library.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.loading import tl_files, tl_layouts, tracr_model, transformerlens as tl
from tracr_decompiler.loading.model_io import ModelFileError
from tracr_decompiler.tl_testing import FakeHookedTransformer, demo_state_dict, native_state_dict, same_encoder_input
from tracr_decompiler.evaluation import lib_report

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")


@pytest.fixture(scope="module")
def lib_models():
  return {name: m for name, m in lib_report.tracr_lib_models(SETTINGS).items()
          if not isinstance(m, compiler.CompileError)}


def test_every_lib_program_reads_the_same_as_the_tracr_model(lib_models):
  assert len(lib_models) >= 14
  for name, model in lib_models.items():
    ours = tracr_model.from_tracr(model)
    enc = dict(input_encoder=model.input_encoder, output_encoder=model.output_encoder)
    for converted in (tl.from_transformerlens(demo_state_dict(model), **enc),
                      tl.from_transformerlens(FakeHookedTransformer(model), **enc),
                      tl.from_transformerlens(native_state_dict(model), n_heads=model.model_config.num_heads, **enc)):
      assert converted.output_dims == ours.output_dims, name
      assert converted.settings == ours.settings and converted.input_encoding == ours.input_encoding, name
      assert converted.output_values == ours.output_values, name
      assert same_encoder_input(ours, converted), name


def test_w_u_is_ignored_and_the_result_says_which_block_was_used(lib_models):
  model = lib_models["make_sort_unique"]  # its output block is not first in the residual stream
  converted = tl.from_transformerlens(demo_state_dict(model), input_encoder=model.input_encoder,
                                      output_encoder=model.output_encoder)
  assert converted.output_dims == tracr_model.from_tracr(model).output_dims != list(range(5))
  assert "no layer reads" in converted.output_name and "W_U ignored" in converted.output_name


def test_vocabulary_from_flags_gives_tracr_s_own_row_order(lib_models):
  model = lib_models["make_hist"]
  converted = tl.from_transformerlens(demo_state_dict(model), vocab=(0, 1, 2, 3, 4), bos="BOS",
                                      output_values=tuple(range(6)))
  assert converted.input_encoding == model.input_encoder.encoding_map
  assert same_encoder_input(tracr_model.from_tracr(model), converted)


def test_file_round_trip_decompiles_like_the_tracr_model(lib_models, tmp_path):
  from tracr_decompiler.decompiling.decompile import decompile
  model = lib_models["make_sort_unique"]
  path = tmp_path / "sort.safetensors"
  save_file({k: v.numpy() for k, v in demo_state_dict(model).items()}, str(path))
  (tmp_path / "settings.json").write_text(json.dumps({
      "vocab": [0, 1, 2, 3, 4], "bos": "BOS", "output_values": [0, 1, 2, 3, 4], "causal": False}))
  loaded = tl_files.load(path, tmp_path / "settings.json")
  assert same_encoder_input(tracr_model.from_tracr(model), loaded)
  direct, via_tl = decompile(model), decompile(loaded)
  in_memory = decompile(FakeHookedTransformer(model), input_encoder=model.input_encoder,
                        output_encoder=model.output_encoder)
  assert direct.source == via_tl.source == in_memory.source
  assert direct.status == via_tl.status == in_memory.status == "proved"
  assert "no layer reads" in via_tl.output_block


@pytest.mark.parametrize("name", ["sort_unique", "frac_prevs", "mixed", "linear"])
def test_export_then_load_is_exact(name, tmp_path):
  model = compiler.compile_program(test_cases.PROGRAMS[name], SETTINGS)
  path, settings = tl_files.save(model, tmp_path / "m.safetensors")
  assert settings.endswith("m.json")
  loaded = tl_files.load(path)
  assert same_encoder_input(model, loaded)
  sd, cfg = tl_files.to_state_dict(model)
  assert cfg["d_vocab_out"] == len(model.output_dims) and cfg["attention_dir"] == "bidirectional"
  assert np.array_equal(np.flatnonzero(sd["unembed.W_U"].sum(1)), model.output_dims)  # an honest W_U


@pytest.mark.parametrize("edit,fragment", [
    (lambda sd: sd.update({"blocks.0.ln1.w": torch.ones(3)}), "layer norm"),
    (lambda sd: sd.update({"blocks.0.attn.W_Q": sd["blocks.0.attn.W_Q"][:, :-1]}), "W_Q has shape"),
    (lambda sd: sd.update({"blocks.7.mlp.W_in": sd["blocks.0.mlp.W_in"]}), "numbered 0..n-1"),
    (lambda sd: sd.update({"something.else": torch.zeros(1)}), "unexpected parameter"),
    (lambda sd: sd.pop("blocks.0.mlp.W_out"), "missing blocks.0.mlp.W_out"),
    (lambda sd: sd["embed.W_E"].fill_(float("nan")), "NaN"),
])
def test_malformed_state_dicts_are_refused_with_one_line(lib_models, edit, fragment):
  model = lib_models["make_hist"]
  sd = demo_state_dict(model)
  edit(sd)
  with pytest.raises(TracrDecompilerError, match=fragment):
    tl.from_transformerlens(sd, input_encoder=model.input_encoder, output_encoder=model.output_encoder)


def test_what_the_weights_do_not_say_must_be_given(lib_models):
  model = lib_models["make_hist"]
  with pytest.raises(TracrDecompilerError, match="vocabulary is not in the weights"):
    tl.from_transformerlens(demo_state_dict(model))
  with pytest.raises(TracrDecompilerError, match="embedding has 7 rows"):
    tl.from_transformerlens(demo_state_dict(model), vocab=(0, 1, 2))
  with pytest.raises(TracrDecompilerError, match="n_heads"):
    tl.from_transformerlens(native_state_dict(model), vocab=(0, 1, 2, 3, 4), bos="BOS")


def test_hostile_files_are_refused_before_reading_tensors(tmp_path):
  path = tmp_path / "big.safetensors"
  # Claims a 64k x 64k embedding in a tiny file: the header check refuses it without allocating.
  header = json.dumps({"embed.W_E": {"dtype": "F32", "shape": [65536, 65536], "data_offsets": [0, 4]},
                       "pos_embed.W_pos": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
  path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
  with pytest.raises(ModelFileError, match="not a valid safetensors"):
    tl_files.load(path)
  (tmp_path / "bad.json").write_text('{"vocab": [[1]]}')
  save_file({"embed.W_E": np.zeros((7, 4), np.float32), "pos_embed.W_pos": np.zeros((6, 4), np.float32)},
            str(tmp_path / "m.safetensors"))
  with pytest.raises(ModelFileError, match="vocab must be"):
    tl_files.load(tmp_path / "m.safetensors", tmp_path / "bad.json")
  (tmp_path / "ok.json").write_text('{"vocab": [0, 1, 2, 3, 4]}')
  with pytest.raises(ModelFileError, match="no transformer layers"):
    tl_files.load(tmp_path / "m.safetensors", tmp_path / "ok.json")


def test_cli_exports_and_reads_transformerlens_files(tmp_path, capsys):
  from tracr_decompiler import cli
  from tracr_decompiler.program import source
  (tmp_path / "sort.py").write_text(source.to_source(test_cases.PROGRAMS["sort_unique"]))
  out = tmp_path / "sort.safetensors"
  assert cli.main(["compile", str(tmp_path / "sort.py"), "--out", str(out), "--format", "transformerlens"]) == 0
  assert (tmp_path / "sort.json").exists()
  assert cli.main(["compile", str(tmp_path / "sort.py"), "--out", str(tmp_path / "ours.safetensors")]) == 0
  capsys.readouterr()
  assert cli.main(["decompile", str(tmp_path / "ours.safetensors")]) == 0
  ours = capsys.readouterr().out
  assert cli.main(["decompile", str(out), "--report", str(tmp_path / "r.html")]) == 0  # format from the key names
  theirs = capsys.readouterr().out
  program = lambda text: text.split("# verified")[0]
  assert program(theirs) == program(ours) and "# verified (proved)" in theirs
  assert "# output: residual dims" in theirs and (tmp_path / "r.html").stat().st_size > 10_000
  # Without the settings JSON the vocabulary is missing: one line, exit 2; flags can supply it.
  (tmp_path / "sort.json").rename(tmp_path / "elsewhere.json")
  assert cli.main(["decompile", str(out), "--no-verify"]) == 2
  assert "vocabulary is not in the weights" in capsys.readouterr().err
  assert cli.main(["decompile", str(out), "--settings", str(tmp_path / "elsewhere.json"), "--no-verify"]) == 0
  assert cli.main(["decompile", str(tmp_path / "ours.safetensors"), "--vocab", "1,2"]) == 2


# ---------------------------------------------------------------------------
# weights that compute a tracr program in another order: answers from W_U and the embeddings, never assumed


def _moved(sd: dict, perm: np.ndarray) -> dict:
  """The legacy state dict with residual dim perm[i] moved to position i (writers, readers and W_U follow)."""
  out = {}
  for k, v in sd.items():
    v = np.asarray(v)
    if k in ("embed.W_E", "pos_embed.W_pos") or k.endswith(("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")):
      v = v[..., perm]
    elif k.endswith(("attn.W_Q", "attn.W_K", "attn.W_V")):
      v = v[:, perm]
    elif k.endswith("mlp.W_in") or k == "unembed.W_U":
      v = v[perm]
    out[k] = v
  return out


def _tracr(expr, **settings):
  from tracr.compiler import compiling
  return compiling.compile_rasp_to_model(expr, vocab={0, 1, 2, 3, 4}, max_seq_len=5, compiler_bos="BOS", **settings)


def _decompiled_right(model, result) -> bool:
  """The decompiled program outputs what the tracr model's own forward pass does, on every input."""
  from tracr_decompiler.compiling import inputs as inputs_lib, outputs
  ours = tracr_model.from_tracr(model)
  inputs = inputs_lib.input_set(ours.settings.vocab, ours.settings.max_seq_len, 0)
  return outputs.compare(outputs.tracr_outputs(model, inputs, ours.output_dims), result.program, inputs).equal


def test_output_dims_swapped_with_w_u_following_decompile_to_the_model_s_program():
  """The issue's reproducer: `x > 2` with its False/True dims swapped everywhere once answered `x < 3`, proved."""
  from tracr.rasp import rasp
  from tracr_decompiler import decompile
  model = _tracr(rasp.Map(lambda x: x > 2, rasp.tokens))
  sd, _ = tl_files.to_state_dict(model)
  dims = [int(np.flatnonzero(sd["unembed.W_U"][:, j])[0]) for j in range(2)]
  perm = np.arange(sd["embed.W_E"].shape[1])
  perm[dims] = dims[::-1]
  swapped = _moved(sd, perm)
  converted = tl.from_transformerlens(swapped, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  assert "W_U reads it, one column per value" in converted.output_name
  assert same_encoder_input(tracr_model.from_tracr(model), converted)  # moved back into tracr's frame
  result = decompile(swapped, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  assert _decompiled_right(model, result) and result.status == "proved", (result.source, result.verification)
  assert "x > 2" in result.source


@pytest.mark.parametrize("name", ["make_hist", "make_sort_unique", "make_frac_prevs", "detect_pattern"])
def test_a_permuted_residual_stream_never_verifies_a_wrong_program(lib_models, name):
  """Every residual dim moved (tokens, indices and the output too): the labelled blocks go back into tracr's
  frame, so programs without intermediate categorical blocks come back right; the order inside an
  intermediate block is not in the weights (detect_pattern), and there nothing wrong may be verified."""
  from tracr_decompiler import decompile
  model = lib_models[name]
  sd, _ = tl_files.to_state_dict(model)
  moved = _moved(sd, np.random.default_rng(len(name)).permutation(sd["embed.W_E"].shape[1]))
  result = decompile(moved, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  right = _decompiled_right(model, result)
  assert right or not result.verified, (name, result.source, result.verification)
  if name != "detect_pattern":
    assert right and result.verified, (name, result.status)


def test_a_w_u_that_weighs_the_output_dims_unevenly_is_refused(lib_models):
  model = lib_models["make_hist"]
  sd, _ = tl_files.to_state_dict(model)
  sd["unembed.W_U"] = sd["unembed.W_U"] * np.linspace(1, 2, sd["unembed.W_U"].shape[1])
  with pytest.raises(ModelFileError, match="weight 1"):
    tl.from_transformerlens(sd, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  sd, _ = tl_files.to_state_dict(model)
  sd["unembed.b_U"] = np.arange(sd["unembed.b_U"].shape[0], dtype=np.float32)
  with pytest.raises(ModelFileError, match="bias is not zero"):
    tl.from_transformerlens(sd, input_encoder=model.input_encoder, output_encoder=model.output_encoder)


@pytest.mark.parametrize("alias", ["blocks.00.", "blocks.\u0660.", "blocks.+0.", "blocks. 0."])
def test_an_aliased_layer_name_is_refused_by_name_and_never_overwrites_the_real_tensor(tmp_path, alias):
  """Program A's tensors plus program B's under an alias of layer 0: once read as B and proved, while A ran."""
  from tracr.rasp import rasp
  a = _tracr(rasp.numerical(rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ),
                                           rasp.numerical(rasp.Map(lambda x: 1, rasp.tokens)), default=0)))
  b = _tracr(rasp.numerical(rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT),
                                           rasp.numerical(rasp.Map(lambda x: 1, rasp.tokens)), default=0)))
  sd_a, _ = tl_files.to_state_dict(a)
  sd_b, _ = tl_files.to_state_dict(b)
  crafted = {**sd_a, **{k.replace("blocks.0.", alias): v for k, v in sd_b.items() if k.startswith("blocks.0.")}}
  with pytest.raises(ModelFileError, match="unexpected parameter"):
    tl.from_transformerlens(crafted, input_encoder=a.input_encoder, output_encoder=a.output_encoder)
  save_file(crafted, str(tmp_path / "m.safetensors"))
  json.dump(tl_files.settings_document(a), open(tmp_path / "m.json", "w"))
  with pytest.raises(ModelFileError, match="unexpected parameter"):
    tl_files.load(tmp_path / "m.safetensors")


def test_a_name_with_a_trailing_newline_is_not_the_name():
  assert tl_layouts.template("legacy", "blocks.0.attn.W_Q\n") is None
  assert tl_layouts.template("legacy", "blocks.0.attn.W_Q") == ("blocks.{l}.attn.W_Q", 0)


class _Returns:
  """A model-like object whose state_dict() returns what it was given, with a config."""

  def __init__(self, sd, n_heads=1):
    self._sd = sd
    self.cfg = {"n_heads": n_heads, "n_ctx": 6, "attention_dir": "bidirectional"}

  def state_dict(self):
    return self._sd


@pytest.mark.parametrize("case", ["unhashable vocab", "n_heads '1'", "state_dict() a list", "state_dict() None",
                                  "object tensor", "ragged tensor", "mode", "beam 0", "unknown setting",
                                  "encoder without a map"])
def test_everything_a_caller_can_pass_wrong_is_one_tracr_decompiler_error(lib_models, case):
  """The API's one error class: a TracrDecompilerError naming the argument, never a plain TypeError/ValueError."""
  from tracr_decompiler import decompile
  model = lib_models["make_hist"]
  sd, _ = tl_files.to_state_dict(model)
  enc = {"input_encoder": model.input_encoder, "output_encoder": model.output_encoder}
  call = {
      "unhashable vocab": lambda: decompile(sd, vocab=[[0], [1]], bos="BOS"),
      "n_heads '1'": lambda: decompile(_Returns(sd, n_heads="1"), **enc),
      "state_dict() a list": lambda: decompile(_Returns(list(sd.items())), **enc),
      "state_dict() None": lambda: decompile(_Returns(None), **enc),
      "object tensor": lambda: decompile({**sd, "embed.W_E": np.full(sd["embed.W_E"].shape, "x", dtype=object)}, **enc),
      "ragged tensor": lambda: decompile({**sd, "blocks.0.mlp.b_in": [[1.0], [1.0, 2.0]]}, **enc),
      "mode": lambda: decompile(model, mode="fast"),
      "beam 0": lambda: decompile(model, beam=0),
      "unknown setting": lambda: decompile(sd, colour="red", **enc),
      "encoder without a map": lambda: decompile(sd, input_encoder=object()),
  }[case]
  with pytest.raises(TracrDecompilerError) as caught:
    call()
  assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["shift_by", "make_nary_sequencemap"])
def test_relative_noise_on_every_tensor_is_read_as_the_clean_model_and_never_proved(lib_models, name):
  """1e-6 of noise on every tensor (absolute on the all-zero ones: an MLP-free layer, a program without
  attention, W_U's unused entries) leaves the function as it was; the weights are read with that noise as
  zero, while the oracle and weight identity keep the weights as given: verified, never proved."""
  from tracr_decompiler import decompile
  model = lib_models[name]
  sd, _ = tl_files.to_state_dict(model)
  rng = np.random.default_rng(0)
  noisy = {k: (np.asarray(v, np.float64) + rng.normal(size=np.shape(v)) * 1e-6 * (np.abs(v).max() or 1.0)
               ).astype(np.float32) for k, v in sd.items()}
  result = decompile(noisy, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  assert _decompiled_right(model, result), (name, result.source, result.verification)
  assert result.status == "verified", (name, result.status, result.verification)
