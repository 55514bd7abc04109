"""The real TransformerLens 4 (the `test` extra installs it): what its users hold decompiles like the tracr model.

For each of tracr's 15 lib programs, a `TransformerBridge` is built the ways TransformerLens 4 offers:
  - TransformerLens' own tracr converter (`transformer_lens.utilities.tracr`; categorical outputs only, as it
    refuses numerical ones), loaded into `TransformerBridge.boot_native`;
  - our legacy export (`tl_files.save`) loaded by `convert_tl_checkpoint` + `load_state_dict(strict=True)`,
    numerical outputs included (the recipe docs/usage.md shows).
Each bridge is then decompiled as the object, as its `state_dict()` (the canonical bridge names), and as that
state dict saved to safetensors with a settings JSON, and must give the tracr model's program and status.
Skipped, with one line, where TransformerLens cannot be installed.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tracr_decompiler import tl_testing
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.errors import TracrDecompilerError
from tracr_decompiler.evaluation import lib_report
from tracr_decompiler.loading import reading, tl_files

tl4 = pytest.importorskip("transformer_lens", reason="TransformerLens 4 (the test extra) is not installed")
from transformer_lens.config import TransformerBridgeConfig  # noqa: E402

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")
PROGRAMS = lib_report.lib_programs()


@pytest.fixture(scope="module")
def lib():
  """name -> (tracr model, its decompilation), compiled and decompiled once."""
  out = {}
  for name, expr in PROGRAMS.items():
    model = compiler.tracr_compile(expr, SETTINGS)
    out[name] = (model, decompile(model))
  return out


def _encoders(model) -> dict:
  return {"input_encoder": model.input_encoder, "output_encoder": model.output_encoder}


def _runs_like_tracr(bridge, model) -> bool:
  """The bridge, as TransformerLens runs it, argmaxes (or reads) to tracr's own outputs on a few inputs."""
  rng = np.random.default_rng(0)
  enc = model.input_encoder.encoding_map
  for _ in range(5):
    tokens = ["BOS"] + [int(t) for t in rng.integers(0, 5, size=5)]
    with torch.no_grad():
      logits = bridge(torch.tensor([[enc[t] for t in tokens]])).numpy()[0, 1:]
    want = model.apply(tokens).decoded[1:]
    if hasattr(model.output_encoder, "encoding_map"):
      values = {i: v for v, i in model.output_encoder.encoding_map.items()}
      got = [values[int(i)] for i in logits.argmax(-1)]
      if any(w is not None and w != g for w, g in zip(want, got)):
        return False
    elif not np.allclose(logits[:, 0], [w or 0 for w in want], atol=1e-3):
      return False
  return True


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_a_bridge_its_state_dict_and_its_file_decompile_like_the_tracr_model(name, lib, tmp_path):
  model, expected = lib[name]
  for how, bridge in (("TransformerLens' converter", tl_testing.bridge_by_tl_converter(model, PROGRAMS[name].label)),
                      ("our export", tl_testing.bridge_by_our_export(model, tmp_path))):
    if bridge is None:  # TransformerLens' converter refuses numerical outputs
      assert not hasattr(model.output_encoder, "encoding_map"), name
      continue
    assert _runs_like_tracr(bridge, model), (name, how)
    sd = bridge.state_dict()
    assert "blocks.0.attn.q.weight" in sd and "embed.weight" in sd  # the canonical bridge names
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "bridge.safetensors"))
    doc = tl_files.settings_document(model)
    doc.pop("transformerlens_config")
    (tmp_path / "bridge.json").write_text(json.dumps(doc))
    result = decompile(bridge, **_encoders(model))
    assert (result.source, result.status) == (expected.source, expected.status), (name, how)
    # The state dict and the file read to the very model the object did, so they decompile the same (decompile
    # is deterministic; benchmarks/transformerlens4.py runs all three through decompile).
    from_object = reading.as_compiled(bridge, **_encoders(model))
    assert tl_testing.same_model(from_object, reading.as_compiled(sd, n_heads=bridge.cfg.n_heads, **_encoders(model)))
    assert tl_testing.same_model(from_object, reading.as_compiled(str(tmp_path / "bridge.safetensors")))


@pytest.mark.parametrize("field,value,fragment", [
    ("n_key_value_heads", 2, "grouped-query attention"), ("positional_embedding_type", "rotary", "positions"),
    ("gated_mlp", True, "gated"), ("normalization_type", "LN", "layer norm"), ("act_fn", "gelu", "activation")])
def test_configs_no_tracr_model_has_are_refused_with_one_line(lib, tmp_path, field, value, fragment):
  model, _ = lib["make_hist"]
  bridge = tl_testing.bridge_by_our_export(model, tmp_path)
  cfg = TransformerBridgeConfig(**{**tl_files.to_state_dict(model)[1], "n_heads": 4, field: value})

  class Described:  # the same weights under a config that describes another kind of model
    def __init__(self):
      self.cfg = cfg

    def state_dict(self):
      return bridge.state_dict()

    def tl_parameters(self):
      return bridge.tl_parameters()

  with pytest.raises(TracrDecompilerError, match=fragment):
    decompile(Described(), **_encoders(model))


def test_the_documented_example_is_the_example_file_and_runs(tmp_path):
  """docs/usage.md's TransformerLens section shows examples/transformerlens4.py whole, and it runs as written."""
  import pathlib
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[3]
  example = (root / "examples" / "transformerlens4.py").read_text()
  assert f"```python\n{example}```" in (root / "docs" / "usage.md").read_text()
  run = subprocess.run([sys.executable, str(root / "examples" / "transformerlens4.py")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  assert run.stdout.splitlines()[-1] == "proved" and "proved | " in run.stdout, run.stdout
