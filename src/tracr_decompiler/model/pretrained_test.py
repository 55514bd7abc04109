"""The trained-on record: one entry per kind of part, in the order first seen."""

from tracr_decompiler.model import pretrained


def test_parts_drawn_alike_are_one_entry():
  reg, mixed = {"max_sops": 8}, {"max_sops": 8, "mixed_settings": True}
  covers = {"vocab_size": [5, 5]}
  record = pretrained.trained_on([(reg, covers), (mixed, covers), (reg, covers), (None, None), (None, None)])
  assert record["parts"] == [{"generation": reg, "covers": covers}, {"generation": mixed, "covers": covers},
                             {"generation": None, "covers": None}]
