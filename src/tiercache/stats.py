"""Counters and their documented meaning.

Every counter only goes up. ``TieredFileSystem.stats()`` returns a snapshot::

    {"tiers": {"memory" | "disk" | "redis" | <custom>: {
         "hits":          blocks served by this tier,
         "misses":        lookups that found nothing (timeouts, errors, rejections included),
         "errors":        calls that raised (the reader saw a miss),
         "timeouts":      calls that exceeded the tier's time budget,
         "rejected":      calls refused at once: breaker open or bulkhead full,
         "bytes_read":    bytes served from this tier,
         "bytes_written": bytes stored into this tier,
         "state":         "closed" | "open" | "half_open" | "disabled"}},
     "origin": {
         "requests":      requests sent to the origin (info and data, retries included),
         "bytes":         bytes received from the origin,
         "retries":       attempts repeated after a transient error,
         "errors":        failed attempts (transient or not),
         "changed":       reads restarted because the object changed under them (S3 412)},
     "info":   {"hits", "misses", "shared_hits", "origin"}: object-info lookups answered in
               process / not; of the misses, answered by a shared tier (Redis) / by the origin,
     "fills":  {"queued", "dropped", "done", "failed"}: background fills of slower tiers,
     "block_size": the block size in bytes,
     "prefetch": {"tiers": {...}, "origin": {...}, "info": {...}}}

Every counter above counts *demand* reads: what the application asked for. Reads made ahead of
demand (warmup, :func:`tiercache.warm`) run under :func:`prefetching` and are counted apart, in
``"prefetch"``, with the same names, so a warmed cache does not inflate the hit ratio and the
origin traffic warmup causes stays visible.

A tier that is not configured is absent from ``"tiers"``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Self, TypeVar

_T = TypeVar("_T")

# The purpose of the work the current thread is doing: demand (the default) or prefetch.
_purpose = threading.local()


def is_prefetch() -> bool:
    """Return whether the current thread is reading ahead of demand."""
    return bool(getattr(_purpose, "prefetch", False))


@contextlib.contextmanager
def prefetching() -> Iterator[None]:
    """Count everything the current thread does inside the block as prefetch, not demand."""
    previous = is_prefetch()
    _purpose.prefetch = True
    try:
        yield
    finally:
        _purpose.prefetch = previous


def carry(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Wrap ``fn`` to run, on whatever thread, with the purpose of the thread wrapping it.

    For work handed to pools (extra origin runs, background fills): what a prefetch causes is
    counted as prefetch.
    """
    if not is_prefetch():
        return fn

    def run(*args: Any, **kwargs: Any) -> _T:
        with prefetching():
            return fn(*args, **kwargs)

    return run


@dataclass
class Counters:
    """A set of named integer counters behind one lock (cheap: one acquire per update)."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The same counters for prefetch work (created on first use).
    _twin: Self | None = field(default=None, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (of the prefetch twin under prefetching)."""
        target = self.prefetch_counters() if is_prefetch() else self
        with target._lock:
            setattr(target, name, getattr(target, name) + amount)

    def prefetch_counters(self) -> Self:
        """Return the twin that counts prefetch work."""
        twin = self._twin
        if twin is None:
            with self._lock:
                if self._twin is None:
                    self._twin = type(self)()
                twin = self._twin
        return twin

    def prefetch_snapshot(self) -> dict[str, int]:
        """Return the prefetch twin's counters (all zero when there was no prefetch)."""
        return self.prefetch_counters().snapshot()

    def snapshot(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        with self._lock:
            return {
                f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
            }


class _Cell:
    __slots__ = ("amount", "count")

    def __init__(self) -> None:
        self.count = 0
        self.amount = 0


class Tally:
    """Counts events (and an amount per event) without a lock on the hot path.

    Each thread increments a cell of its own, so no update is ever lost and no lock is taken;
    :meth:`totals` sums the cells. Used for hits, which happen on every cached read.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: list[_Cell] = []
        self._lock = threading.Lock()

    def add(self, amount: int = 0, count: int = 1) -> None:
        """Count ``count`` events of ``amount`` in all."""
        try:
            cell: _Cell = self._local.cell
        except AttributeError:
            cell = self._local.cell = _Cell()
            with self._lock:
                self._cells.append(cell)
        cell.count += count
        cell.amount += amount

    def totals(self) -> tuple[int, int]:
        """Return (events, summed amount) over every thread."""
        with self._lock:
            cells = list(self._cells)
        return sum(c.count for c in cells), sum(c.amount for c in cells)


@dataclass
class TierCounters(Counters):
    """Counters of one tier; see the module docstring for their meaning."""

    misses: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    corrupt: int = 0
    bytes_written: int = 0
    _hits: Tally = field(default_factory=Tally, repr=False, compare=False)

    def hit(self, nbytes: int, count: int = 1) -> None:
        """Count ``count`` hits of ``nbytes`` bytes in all (lock-free: this is the hot path)."""
        if is_prefetch():
            self.prefetch_counters()._hits.add(nbytes, count)
        else:
            self._hits.add(nbytes, count)

    def snapshot(self) -> dict[str, int]:
        """Return the counters as a plain dict, hits and bytes read included."""
        hits, bytes_read = self._hits.totals()
        return {"hits": hits, **super().snapshot(), "bytes_read": bytes_read}


@dataclass
class OriginCounters(Counters):
    """Counters of the origin; see the module docstring for their meaning."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    errors: int = 0
    changed: int = 0


@dataclass
class InfoCounters(Counters):
    """Object-info lookups answered from the in-process table (hits) or not (misses)."""

    misses: int = 0
    shared_hits: int = 0
    origin: int = 0
    _hits: Tally = field(default_factory=Tally, repr=False, compare=False)

    def hit(self) -> None:
        """Count one hit (lock-free)."""
        if is_prefetch():
            self.prefetch_counters()._hits.add()
        else:
            self._hits.add()

    def snapshot(self) -> dict[str, int]:
        """Return hits and misses."""
        return {"hits": self._hits.totals()[0], **super().snapshot()}


@dataclass
class FillCounters(Counters):
    """Background fills: queued, dropped because the queue was full, done, failed."""

    queued: int = 0
    dropped: int = 0
    done: int = 0
    failed: int = 0
