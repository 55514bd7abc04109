"""Weight identity up to renaming and the function-preserving symmetries of a ReLU MLP, never beyond them."""

import dataclasses

import numpy as np
import pytest

from tracr_decompiler import test_cases
from tracr_decompiler.compiling import compiler, layout
from tracr_decompiler.decompiling import identity


def _units_moved(model, rng, sign: float = 1.0):
  """Every MLP's hidden units permuted and scaled by s in [0.5, 2] in, 1/s out (times `sign` for one unit)."""
  params = {k: dict(v) for k, v in model.params.items()}
  for layer in range(model.num_layers):
    m = layout.mlp(layer)
    w1, b1, w2 = params[f"{m}/linear_1"]["w"], params[f"{m}/linear_1"]["b"], params[f"{m}/linear_2"]["w"]
    perm, scale = rng.permutation(w1.shape[1]), rng.uniform(0.5, 2, w1.shape[1])
    scale[0] *= sign
    params[f"{m}/linear_1"] = {"w": w1[:, perm] * scale, "b": b1[perm] * scale}
    params[f"{m}/linear_2"] = {"w": w2[perm] / scale[:, None], "b": params[f"{m}/linear_2"]["b"]}
  return dataclasses.replace(model, params=params)


SEVERAL_OPS_IN_ONE_MLP = pytest.mark.xfail(strict=True, reason=(
    "a known limit: the node reader splits a layer's MLP units into ops by tracr's unit order (encoding/nodes.py), "
    "so units of several ops interleaved read as other nodes and the frames differ (erring towards not identical)"))


@pytest.mark.parametrize("name", ["sort_unique", "frac_prevs", "linear",
                                  pytest.param("mixed", marks=SEVERAL_OPS_IN_ONE_MLP)])
def test_mlp_units_in_any_order_and_positive_scale_are_the_same_weights(name):
  model = compiler.compile_program(test_cases.PROGRAMS[name])
  moved = _units_moved(model, np.random.default_rng(1))
  assert any(not np.array_equal(moved.params[k]["w"], model.params[k]["w"]) for k in model.params if "mlp" in k)
  assert identity.same_weights(moved, model) and identity.same_weights(model, moved)


@pytest.mark.parametrize("name", ["sort_unique", "frac_prevs", "linear", "mixed"])
def test_a_negative_scale_is_not_a_symmetry_and_is_not_identical(name):
  model = compiler.compile_program(test_cases.PROGRAMS[name])
  flipped = _units_moved(model, np.random.default_rng(1), sign=-1.0)  # ReLU(-z) != -ReLU(z)
  assert not identity.same_weights(flipped, model)


def test_units_scaled_through_a_transformerlens_file_come_back_proved():
  """At the user's door: a plain tracr model exported as a state dict, its MLP units permuted and rescaled."""
  from tracr.compiler import lib
  from tracr.rasp import rasp
  from tracr_decompiler import decompile
  from tracr_decompiler.loading import tl_files
  model = compiler.tracr_compile(lib.make_sort_unique(rasp.tokens, rasp.tokens),
                                 compiler.CompileSettings(compiler_bos="BOS"))
  sd, _ = tl_files.to_state_dict(model)
  rng = np.random.default_rng(0)
  for key in [k for k in sd if k.endswith("mlp.W_in")]:
    base = key[: -len("W_in")]
    perm, scale = rng.permutation(sd[key].shape[1]), rng.uniform(0.5, 2, sd[key].shape[1])
    sd[base + "W_in"], sd[base + "b_in"] = sd[key][:, perm] * scale, sd[base + "b_in"][perm] * scale
    sd[base + "W_out"] = sd[base + "W_out"][perm] / scale[:, None]
  result = decompile(sd, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
  assert result.status == "proved", result.verification
