"""Facts about the machine this process runs on, in one place."""

import os


def available_cores() -> int:
  """CPUs this process may run on (a container's or taskset's share, not the host's count)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
