"""Independent jobs run in a local pool of processes or on a Ray cluster, results yielded as they finish.

One home for what `generate` and `evaluate` both need from a pool: spawned
workers (no forked JAX state); a worker that dies is one clean error, not a lost
job waited on forever (the reason for `ProcessPoolExecutor` rather than
`multiprocessing.Pool`); Ctrl-C or SIGTERM stops every worker at once, not after
its job; a stop request is checked after every result (stopping.py). With Ray,
a cluster this call started is shut down by it, a caller's own session is left
as it was.

    for index, result in parallel.pool_map(fn, jobs, workers=2): ...
    for index, result in parallel.ray_map(fn, jobs, address="auto"): ...

`fn` must be a module-level function (it is pickled), and so must its jobs and results.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence, TypeVar

from tracr_decompiler import errors, stopping

J = TypeVar("J")
R = TypeVar("R")


class WorkerDied(errors.TracrDecompilerError):
  """A worker process ended without its result (killed, out of memory, a failed import)."""


def pool_map(fn: Callable[[J], R], jobs: Sequence[J], workers: int,
             initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Iterator[tuple[int, R]]:
  """(job index, fn(job)) in the order the jobs finish, from `workers` spawned processes."""
  ctx = mp.get_context("spawn")
  pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
  try:
    futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
    for future in concurrent.futures.as_completed(futures):
      yield futures[future], future.result()
      stopping.check()
  except BrokenProcessPool:
    raise WorkerDied("a worker process died (killed or out of memory?)") from None
  except BaseException:  # Ctrl-C, SIGTERM, a job's error, the caller leaving: stop every worker now
    for proc in list(getattr(pool, "_processes", {}).values()):  # Python 3.14: pool.terminate_workers()
      proc.terminate()
    raise
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def ray_map(fn: Callable[[J], R], jobs: Sequence[J], address: str) -> Iterator[tuple[int, R]]:
  """(job index, fn(job)) in the order the jobs finish, as Ray tasks on the cluster at `address` ("auto", ...)."""
  try:
    import ray  # optional extra: pip install 'tracr-decompiler[ray]'
  except ImportError:
    raise errors.UsageError("Ray is not installed: pip install 'tracr-decompiler[ray]'") from None
  ours = not ray.is_initialized()
  ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
  try:
    task = ray.remote(fn)
    refs = {task.remote(job): i for i, job in enumerate(jobs)}
    pending = list(refs)
    while pending:
      done, pending = ray.wait(pending, num_returns=1)
      yield refs[done[0]], ray.get(done[0])
      stopping.check()
  finally:
    if ours:  # also on Ctrl-C or SIGTERM: a local cluster started here stops here
      ray.shutdown()
