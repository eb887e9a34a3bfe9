"""The background fill queue: slower tiers are filled behind the read, never during it.

The queue is bounded. When it is full the fill is dropped and counted (``fills.dropped``):
a read never waits for a disk or Redis write.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from .stats import FillCounters, carry

logger = logging.getLogger(__name__)

_Job = Callable[[], None]


class FillQueue:
    """A bounded queue of fill jobs run by a few daemon worker threads (started lazily).

    Args:
        maxsize: Jobs that may wait (``TIERCACHE_FILL_QUEUE``); one more is dropped.
        workers: Worker threads.
    """

    def __init__(self, maxsize: int, workers: int = 2) -> None:
        self.counters = FillCounters()
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: _Job) -> bool:
        """Queue ``job``; return False (and count a drop) when the queue is full or closed."""
        if self._closed:
            self.counters.add("dropped")
            return False
        self._start()
        try:
            self._queue.put_nowait(carry(job))
        except queue.Full:
            self.counters.add("dropped")
            return False
        self.counters.add("queued")
        return True

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
        """Stop the workers after the jobs already queued; wait at most ``timeout_s`` each."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                break
        for thread in threads:
            thread.join(timeout_s)

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
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
                self.counters.add("done")
            except Exception:  # a fill failure is a tier's problem, never the reader's
                self.counters.add("failed")
                logger.debug("background fill failed", exc_info=True)
            finally:
                self._queue.task_done()
