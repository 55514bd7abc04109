"""decompile.outside_training: a model outside every training part is flagged, one inside any part is not."""

import types

from tracr_decompiler.compiling.compiled import CompileSettings
from tracr_decompiler.decompiling.decompile import outside_training
from tracr_decompiler.encoding import weights

REGISTRY_WORLD = {"vocab_size": [5, 5], "max_seq_len": [5, 5], "mlp_exactness": [100], "n_ops": [2, 8]}
MIXED = {"vocab_size": [2, 16], "max_seq_len": [2, 12], "mlp_exactness": [100, 1000], "n_ops": [1, 8]}


def _model(vocab_size: int, max_seq_len: int, mlp_exactness: int = 100):
  return types.SimpleNamespace(settings=CompileSettings(vocab=tuple(range(vocab_size)), max_seq_len=max_seq_len,
                                                        mlp_exactness=mlp_exactness))


def _trained_on(*covers):
  return {"feature_version": weights.FEATURE_VERSION, "parts": [{"generation": None, "covers": c} for c in covers]}


def test_inside_any_part_is_not_flagged():
  trained = _trained_on(REGISTRY_WORLD, MIXED)
  assert outside_training(trained, _model(5, 5), 4) == []
  assert outside_training(trained, _model(12, 10, 1000), 7) == []


def test_outside_every_part_reports_the_closest_part():
  warnings = outside_training(_trained_on(REGISTRY_WORLD, MIXED), _model(20, 10), 12)
  assert warnings == ["vocab of 20 tokens; trained on 2-16", "12 ops; trained on 1-8"]
  assert outside_training(_trained_on(REGISTRY_WORLD), _model(5, 5, 1000), 3) == [
      "mlp_exactness 1000; trained on 100"]


def test_a_config_from_before_parts_is_still_read():
  legacy = {"feature_version": weights.FEATURE_VERSION,
            "generation": {"min_sops": 2, "max_sops": 8, "settings": {"vocab": [0, 1, 2, 3, 4], "max_seq_len": 5}}}
  assert outside_training(legacy, _model(5, 5), 4) == []
  assert outside_training(legacy, _model(5, 7), 4) == ["max_seq_len 7; trained on 5"]


def test_another_feature_version_is_flagged():
  trained = {**_trained_on(MIXED), "feature_version": -1}
  assert outside_training(trained, _model(5, 5), 4)[0].startswith("the decompiler was trained on features v-1")
