"""Processes a test started, from /proc (Linux): for tests of workers, signals and clean shutdown."""

from __future__ import annotations

import os


def descendants(pid: int) -> set[int]:
  """All descendants of pid."""
  found, frontier = set(), {pid}
  while frontier:
    parents, frontier = frontier, set()
    for entry in os.listdir("/proc"):
      if entry.isdigit():
        try:
          ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
          continue
        if ppid in parents and int(entry) not in found:
          found.add(int(entry))
          frontier.add(int(entry))
  return found


def alive(pid: int) -> bool:
  try:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False
