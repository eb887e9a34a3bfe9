"""The background fill queue: slower tiers are filled behind the read, never during it.

The queue is bounded twice: in jobs (``TIERCACHE_FILL_QUEUE``) and in the bytes the jobs hold
(``TIERCACHE_FILL_QUEUE_BYTES``). A fill that would pass either bound is dropped and counted
(``fills.dropped``, ``fills.dropped_bytes``): a read never waits for a disk or Redis write, and
the blocks waiting to be written never hold more memory than their budget.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from .context import ReadContext
from .stats import FillCounters

logger = logging.getLogger(__name__)

_Job = Callable[[], None]
# A job, the bytes it holds and what it is counted as; None tells a worker to stop.
_Item = tuple[_Job, int, ReadContext] | None


class FillQueue:
    """A bounded queue of fill jobs run by a few daemon worker threads (started lazily).

    A job's bytes are counted from :meth:`submit` until it has run (or failed, or was discarded
    by :meth:`close`): queued and being written alike.

    Args:
        maxsize: Jobs that may wait (``TIERCACHE_FILL_QUEUE``); one more is dropped.
        max_bytes: Bytes the jobs may hold at once, waiting or running
            (``TIERCACHE_FILL_QUEUE_BYTES``); a job that would pass it is dropped, and so is
            one larger than the whole budget. ``0``: every job is dropped.
        workers: Worker threads.
    """

    def __init__(self, maxsize: int, max_bytes: int, workers: int = 2) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.counters = FillCounters()
        self.max_bytes = max_bytes
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards _closed, _bytes, _threads
        self._closed = False
        self._bytes = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held by the jobs accepted and not finished yet."""
        return self._bytes

    def submit(self, job: _Job, nbytes: int, *, ctx: ReadContext) -> bool:
        """Queue ``job``, which holds ``nbytes`` bytes and is counted in ``ctx``; never waits.

        Returns False (and counts a drop) when the queue is closed, holds ``maxsize`` jobs, or
        would hold more than ``max_bytes`` bytes with this one.

        Raises:
            ValueError: ``nbytes`` is negative.
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        self._start()
        with self._lock:  # the check, the reservation and the put are one step (see close)
            if not self._closed and nbytes <= self.max_bytes - self._bytes:
                try:
                    self._queue.put_nowait((job, nbytes, ctx))
                except queue.Full:
                    pass
                else:
                    self._bytes += nbytes
                    self.counters.add("queued", ctx=ctx)
                    return True
        self._count_dropped(nbytes, ctx)
        return False

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued job has run, at most ``timeout_s`` (None: no limit).

        Returns whether the queue drained.
        """
        if timeout_s is None:
            self._queue.join()
            return True
        deadline = time.monotonic() + timeout_s
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                done.wait(remaining)
        return True

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop the workers after the jobs already queued; wait at most ``timeout_s`` each.

        Jobs still waiting after that are discarded (counted as dropped) and their bytes
        released; a worker still busy stops after its current job.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # from here on, submit() queues nothing
            threads = list(self._threads)
        for _ in threads:
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                break
        for thread in threads:
            thread.join(timeout_s)
        self._discard_waiting()
        for _ in range(sum(thread.is_alive() for thread in threads)):
            try:  # the stop signals were discarded with the jobs, or never queued
                self._queue.put_nowait(None)
            except queue.Full:  # pragma: no cover - the queue was just emptied
                break

    def _discard_waiting(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                if item is not None:
                    self._release(item[1])
                    self._count_dropped(item[1], item[2])
            finally:
                self._queue.task_done()

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self._bytes -= nbytes

    def _count_dropped(self, nbytes: int, ctx: ReadContext) -> None:
        self.counters.add("dropped", ctx=ctx)
        self.counters.add("dropped_bytes", nbytes, ctx=ctx)

    def _start(self) -> None:
        if len(self._threads) >= self._workers:
            return
        with self._lock:
            while len(self._threads) < self._workers and not self._closed:
                thread = threading.Thread(
                    target=self._run, name=f"tiercache-fill-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                job, nbytes, ctx = item
                try:
                    job()
                    self.counters.add("done", ctx=ctx)
                except Exception:  # a fill failure is a tier's problem, never the reader's
                    self.counters.add("failed", ctx=ctx)
                    logger.debug("background fill failed", exc_info=True)
                finally:
                    self._release(nbytes)  # before task_done: join() sees the bytes released
                    del job, item  # the block goes with the job, not with the next get()
            finally:
                self._queue.task_done()
