import numpy as np
import pytest

from tracr_decompiler import short_axis


@pytest.mark.parametrize("shape", [(7, 5, 5), (3, 1), (4, 2, 9), (2, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool, np.int64])
def test_matches_numpy(shape, dtype):
  rng = np.random.default_rng(0)
  a = (rng.random(shape) * 10).astype(dtype) if dtype is not bool else rng.random(shape) < 0.4
  if dtype in (np.float32, np.float64) and a.size:
    a[a > 8] = np.nan  # NaN propagates as in NumPy's max/min
  want_sum = a.sum(-1)
  got = short_axis.total(a)
  assert got.dtype == want_sum.dtype and got.shape == want_sum.shape
  np.testing.assert_allclose(got, want_sum, rtol=1e-6)
  np.testing.assert_array_equal(short_axis.any_(a), a.any(-1))
  if a.shape[-1]:
    np.testing.assert_array_equal(short_axis.amax(a), a.max(-1))
    np.testing.assert_array_equal(short_axis.amin(a), a.min(-1))
  else:
    with pytest.raises(ValueError):
      short_axis.amax(a)


def test_float_sums_below_eight_are_bit_identical():
  a = np.random.default_rng(1).random((100, 6, 7)).astype(np.float32)
  np.testing.assert_array_equal(short_axis.total(a), a.sum(-1))


def test_does_not_write_its_input():
  a = np.arange(6.0).reshape(2, 3)
  short_axis.total(a), short_axis.amax(a)
  np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3))


def test_fold_or():
  a = np.random.default_rng(2).integers(0, 1 << 20, size=(5, 4, 3))
  np.testing.assert_array_equal(short_axis.fold_or(a), np.bitwise_or.reduce(a, axis=-1))
