import os

from tracr_decompiler import machine


def test_available_cores_is_this_process_share_not_the_hosts(monkeypatch):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
  monkeypatch.setattr(os, "cpu_count", lambda: 64)
  assert machine.available_cores() == 2
