"""Documents made on every core: a batch of independent makers (closures that return
bytes) run in forked processes, which inherit the closures and everything they hold, so
only the finished bytes cross back. A cold build spends most of its time writing the
archive pages (each entry through feedgen), which depend on nothing else the build does:
they are made meanwhile, beside the rendering of the newest posts in this process.

Forking is safe only while this process has a single thread (the CLI, and the builder
before its first build); otherwise, and for small batches, the makers run here, one by
one, when their results are asked for.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.pool import AsyncResult, Pool
from types import TracebackType

# Below this many documents, a fork and the pickling back cost more than they save.
MIN_JOBS = 24

# The makers of the batch being run: set before the pool forks, so that each process
# finds them by index; closures cannot be pickled, and need not be.
_jobs: Sequence[Callable[[], bytes]] = ()


def forked_pool(workers: int) -> Pool:
    """A pool of `workers` processes forked from this one, without a garbage collector:
    each lives for one batch, whose few cycles (feedgen's entries) die with it, and
    each full collection walked everything it inherited and made besides (without it,
    8% less CPU time in the children of a cold build at 10,000 posts)."""
    return multiprocessing.get_context("fork").Pool(workers, initializer=_forked)


def _forked() -> None:
    gc.disable()
    # The pool ends its processes with SIGTERM. Forked from the builder, they would keep
    # its handler, which only notes the signal: a process would wait for work for ever,
    # and the builder for it (a cold start hung at 503).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _make(index: int) -> bytes:
    return _jobs[index]()


class Batch:
    """`makers` started at once on every core when worth it; `results()` gives their
    bytes in order. Use it as a context manager, so that the processes are stopped
    whatever happens meanwhile."""

    def __init__(self, makers: Sequence[Callable[[], bytes]]) -> None:
        global _jobs
        self._makers = makers
        self._pool: Pool | None = None
        self._pending: AsyncResult[list[bytes]] | None = None
        workers = os.cpu_count() or 1
        if len(makers) < MIN_JOBS or workers < 2 or threading.active_count() > 1:
            return
        _jobs = makers
        try:
            self._pool = forked_pool(workers)
        finally:
            _jobs = ()  # the children have their copy; the parent must not keep the closures
        # Small chunks keep both processes busy to the end: the pages differ in size.
        chunk = max(1, len(makers) // (workers * 8))
        self._pending = self._pool.map_async(_make, range(len(makers)), chunksize=chunk)

    def results(self) -> list[bytes]:
        if self._pending is None:
            return [make() for make in self._makers]
        return self._pending.get()

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
