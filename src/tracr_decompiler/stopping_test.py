"""A stop request survives being swallowed where Python drops exceptions (gc callbacks, `__del__`)."""

import gc
import signal

import pytest

from tracr_decompiler import stopping


def test_a_stop_raised_inside_a_gc_callback_is_raised_again_at_the_next_check(monkeypatch):
  swallowed = []
  monkeypatch.setattr("sys.unraisablehook", lambda u: swallowed.append(u.exc_value))

  def callback(phase, info):  # where JAX's _xla_gc_callback sits: an exception here is printed and dropped
    if phase == "start" and not swallowed:
      stopping.request(signal.SIGTERM)

  gc.callbacks.append(callback)
  try:
    gc.collect()
  finally:
    gc.callbacks.remove(callback)
  try:
    assert swallowed and isinstance(swallowed[0], stopping.Stopped)  # the first raise was lost...
    with pytest.raises(stopping.Stopped) as e:
      stopping.check()  # ...the record is not
    assert e.value.signum == signal.SIGTERM
  finally:
    stopping.handled()
  stopping.check()  # handled: nothing left to raise


def test_no_request_no_stop():
  stopping.check()
  assert stopping.pending() is None
