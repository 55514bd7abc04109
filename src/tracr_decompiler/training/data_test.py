"""Featurising: several dataset parts in one pool give what each part gives alone, and are cached per part."""

import numpy as np
import pytest

from tracr_decompiler.dataset import writer
from tracr_decompiler.generation.config import GenerationConfig
from tracr_decompiler.training import data


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  dirs = []
  for seed in (5, 6):
    out = tmp_path_factory.mktemp(f"part{seed}")
    writer.build_dataset(writer.DatasetConfig(n=40, out=str(out), workers=1, seed=seed, shard_size=20,
                                              val_percent=20, test_percent=0,
                                              generation=GenerationConfig(max_sops=3)), progress=False)
    dirs.append(str(out))
  return dirs


def _same(a: list[data.Example], b: list[data.Example]) -> bool:
  return len(a) == len(b) and all(
      np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b) for f in data._FIELDS)


def test_parts_featurised_in_one_pool_match_each_part_alone_and_are_cached(parts, tmp_path):
  wanted = [(d, split, None) for d in parts for split in ("train", "val")] + [(parts[0], "train", 7)]
  together = data.prepare_many(wanted, tmp_path / "pool", workers=2, progress=False)
  alone = [data.prepare(d, split, tmp_path / f"alone{k}", workers=1, limit=limit, progress=False)
           for k, (d, split, limit) in enumerate(wanted)]
  assert [len(x) for x in together] == [len(x) for x in alone]
  assert all(_same(x, y) for x, y in zip(together, alone))
  assert len(together[-1]) <= 7 and len(together[0]) > len(together[1]) > 0
  cached = sorted(p.name for p in (tmp_path / "pool").glob("*.npz"))
  assert len(cached) == len(wanted)
  again = data.prepare_many(wanted, tmp_path / "pool", workers=2, progress=False)  # from the caches now
  assert all(_same(x, y) for x, y in zip(again, together))
