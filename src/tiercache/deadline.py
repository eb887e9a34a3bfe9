"""Run calls on daemon threads, and wait for them no longer than a deadline.

One idea used in three places: the guard's bulkhead (tier calls under a time budget), doctor's
probes (each step bounded), and warmup (a listing and the footer reads bounded by its time
limit). Daemon threads, not ``ThreadPoolExecutor``'s: its workers are joined at interpreter
exit, so one call hung on a dead server or a frozen disk would keep the whole process from
exiting. A call that overstays is abandoned to its thread, never interrupted.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[..., Any], tuple[object, ...], "Future[Any]"]


class DaemonPool:
    """A fixed set of daemon worker threads taking jobs in order.

    Args:
        workers: Threads, started at once.
        name: Prefix of the threads' names.
        on_exit: Called on each worker thread as it ends (a tier's ``release_thread``).
    """

    def __init__(self, workers: int, name: str, on_exit: Callable[[], None] | None = None) -> None:
        self._on_exit = on_exit
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """Queue ``fn(*args)``; its future holds the result or the exception.

        Raises:
            RuntimeError: The pool is closed.
        """
        if self._closed:
            raise RuntimeError("pool closed")
        future: Future[T] = Future()
        self._jobs.put((fn, args, future))
        return future

    def run(
        self, fn: Callable[[], T], wait_s: float
    ) -> tuple[bool, T | None, BaseException | None]:
        """Run ``fn`` on the pool and wait at most ``wait_s`` for it.

        Returns:
            ``(finished in time, its result, the exception it raised)``; a call not finished
            in time goes on in the background.
        """
        future = self.submit(fn)
        finished, _ = wait([future], timeout=max(0.0, wait_s))
        if not finished:
            return False, None, None
        error = future.exception()
        return True, None if error is not None else future.result(), error

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the workers once their current job is done; wait at most ``wait_s`` in all."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                fn, args, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the caller through the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            if self._on_exit is not None:  # e.g. close this thread's database connection
                with contextlib.suppress(Exception):
                    self._on_exit()


def call_within(deadline: float, fn: Callable[..., T], *args: Any, name: str, what: str) -> T:
    """Run ``fn(*args)`` on a daemon thread; return its result if done by ``deadline``.

    Args:
        deadline: Absolute :func:`time.monotonic` time.
        fn: The call; it is left to finish in the background when late.
        *args: Its arguments.
        name: The thread's name.
        what: What the call does, for the error ("listing the files").

    Raises:
        TimeoutError: The call was not done by ``deadline``.
        Exception: What the call raised.
    """
    pool = DaemonPool(1, name)
    try:
        finished, result, error = pool.run(lambda: fn(*args), deadline - time.monotonic())
    finally:
        pool.close()
    if not finished:
        raise TimeoutError(f"{what} took longer than the time limit")
    if error is not None:
        raise error
    return result  # type: ignore[return-value]  # finished without error: fn's own result
