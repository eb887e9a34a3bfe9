"""Single-flight: concurrent readers of the same missing key wait on one fetch.

A reader :meth:`~SingleFlight.claim` s the keys it is missing. The keys nobody was fetching
become its own (it must :meth:`~SingleFlight.resolve` or :meth:`~SingleFlight.fail` each of
them, or waiters would hang); for the others it gets the leader's futures to wait on.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Leader election per key, with a future per in-flight key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[K, Future[V]] = {}
        #: Keys resolved so far. A reader that saw no key of its own and then claims it may
        #: look again only if this moved meanwhile (a leader finished in between).
        self.resolutions = 0

    def claim(self, keys: Iterable[K]) -> tuple[list[K], dict[K, Future[V]]]:
        """Claim the keys nobody is fetching; return them and the futures of the others."""
        mine: list[K] = []
        theirs: dict[K, Future[V]] = {}
        with self._lock:
            for key in keys:
                future = self._pending.get(key)
                if future is None:
                    self._pending[key] = Future()
                    mine.append(key)
                else:
                    theirs[key] = future
        return mine, theirs

    def resolve(self, key: K, value: V) -> None:
        """Hand ``value`` to everyone waiting on ``key`` and release it."""
        with self._lock:
            future = self._pending.pop(key, None)
            self.resolutions += 1
        if future is not None:
            future.set_result(value)

    def fail(self, key: K, exc: BaseException) -> None:
        """Raise ``exc`` in everyone waiting on ``key`` and release it (no-op if resolved)."""
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None:
            future.set_exception(exc)

    def __len__(self) -> int:
        return len(self._pending)
