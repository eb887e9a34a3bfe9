"""Counters, latency histograms and their documented meaning.

Every counter only goes up. ``TieredFileSystem.stats()`` returns a snapshot::

    {"tiers": {"memory" | "disk" | "redis" | <custom>: {
         "hits":          blocks served by this tier,
         "misses":        lookups that found nothing (timeouts, errors, rejections included),
         "errors":        calls that raised (the reader saw a miss),
         "timeouts":      calls that exceeded the tier's time budget,
         "rejected":      calls refused at once: breaker open or bulkhead full,
         "corrupt":       values that failed their checks (dropped, counted as misses),
         "bytes_read":    bytes served from this tier,
         "bytes_written": bytes stored into this tier,
         "state":         "closed" | "open" | "half_open" | "disabled",
         "transitions":   {"closed->open": n, ...}: breaker state changes,
         "latency":       histogram of the tier's read calls (guarded tiers only)}},
     "origin": {
         "requests":      requests sent to the origin (info and data, retries included; on
                          S3 also those the client's own retries sent within one attempt),
         "bytes":         bytes received from the origin,
         "retries":       requests repeated after a transient error (tiercache's retries and,
                          on S3, the client's own),
         "errors":        failed requests (transient or not),
         "not_found":     requests answered "no such object" (not errors: readers probe),
         "changed":       reads restarted because the object changed under them (S3 412),
         "narrowed_requests": block fetches that were late, so the reader asked the origin
                          for its own exact range (docs/reliability.md, "Slow origins"),
         "narrowed":      reads served by such a narrowed request,
         "latency":       histogram of origin requests},
     "info":   {"hits", "misses", "shared_hits", "origin"}: object-info lookups answered in
               process / not; of the misses, answered by a shared tier (Redis) / by the origin;
               "listings_reused": Delta log listings reused instead of listed (in process or
               from Redis; only with TIERCACHE_DELTA_LOG_TTL),
     "fills":  {"queued", "dropped", "done", "failed", "dropped_bytes"}: background fills of
               slower tiers: accepted, not made (the queue was full in jobs or in bytes, or it
               was closed with them waiting), written, failed; and the bytes of those dropped,
     "flight": {"block_waits", "info_waits"}: readers that waited on another reader's fetch,
     "reads":  {"ram_hits", "latency"}: reads served from RAM by the hot path (not timed: a few
               microseconds each) and a histogram of every other read,
     "block_size": the block size in bytes,
     "prefetch": {"tiers", "origin", "info"}: the same counters for prefetch work,
     "classes":  {"demand" | "prefetch": {"metadata" | "data": {"tiers", "origin"}}}: the
                 counters split by purpose and block class}

**Purpose.** Every top-level counter counts *demand* reads: what the application asked for. Reads
made ahead of demand (warmup, :func:`tiercache.warm`) run under :func:`prefetching` and are counted
apart, so a warmed cache does not inflate the hit ratio and warmup's origin traffic stays visible.

**Class.** Each block is ``metadata`` (footers, Delta log files, small objects; object info too) or
``data`` (:func:`tiercache.blocks.classify`). The chain sets the class of the block it is working
on with :func:`set_kind`; every counter and histogram update made meanwhile, by whatever part of
tiercache, lands in that class. An origin request for a run of blocks that mixes both classes is
counted as ``data``.

Histograms are ``{"bounds": [...], "counts": [...], "sum": seconds, "count": n}``: ``counts[i]``
observations fell in ``(bounds[i-1], bounds[i]]``, the last one above every bound.

A tier that is not configured is absent from ``"tiers"``.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final, TypeVar

_T = TypeVar("_T")

PURPOSES: Final = ("demand", "prefetch")
KINDS: Final = ("metadata", "data")
#: Upper bounds (seconds) of the latency histogram buckets: 100 µs to 30 s.
LATENCY_BOUNDS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

_Key = tuple[bool, str]  # (prefetch, kind)


class _Context(threading.local):
    """What the current thread is working on: prefetch or demand, and the block class."""

    prefetch: bool = False
    kind: str = "data"


_context = _Context()


def is_prefetch() -> bool:
    """Return whether the current thread is reading ahead of demand."""
    return _context.prefetch


@contextlib.contextmanager
def prefetching() -> Iterator[None]:
    """Count everything the current thread does inside the block as prefetch, not demand."""
    previous = _context.prefetch
    _context.prefetch = True
    try:
        yield
    finally:
        _context.prefetch = previous


def set_kind(kind: str) -> str:
    """Set the block class the current thread's updates count in; return the previous one.

    Cheaper than a context manager (the chain calls it per block): restore in ``finally``.
    """
    previous = _context.kind
    _context.kind = kind
    return previous


def carry(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Wrap ``fn`` to run, on whatever thread, in the purpose and class of the caller.

    For work handed to pools (extra origin runs, background fills).
    """
    prefetch, kind = _context.prefetch, _context.kind
    if not prefetch and kind == "data":
        return fn

    def run(*args: Any, **kwargs: Any) -> _T:
        context = _context
        saved = context.prefetch, context.kind
        context.prefetch, context.kind = prefetch, kind
        try:
            return fn(*args, **kwargs)
        finally:
            context.prefetch, context.kind = saved

    return run


def _key() -> _Key:
    context = _context
    return context.prefetch, context.kind


def _wanted(key: _Key, purpose: str | None, kind: str | None) -> bool:
    """Whether a cell of ``key`` belongs to ``purpose`` (None: both) and ``kind`` (None: all)."""
    return (purpose is None or key[0] == (purpose == "prefetch")) and (
        kind is None or key[1] == kind
    )


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


class Counters:
    """Named integer counters (``NAMES``), kept apart per purpose and block class.

    :meth:`add` counts in the current thread's purpose and class; :meth:`snapshot` sums what a
    purpose (and optionally a class) holds. One lock acquire per update.
    """

    NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[_Key, dict[str, int]] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (KeyError for a name not in ``NAMES``)."""
        key = _key()
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = dict.fromkeys(self.NAMES, 0)
            cell[name] += amount

    def snapshot(self, purpose: str = "demand", kind: str | None = None) -> dict[str, int]:
        """Return the counters of ``purpose`` (all classes, or ``kind`` only) as a plain dict."""
        totals = dict.fromkeys(self.NAMES, 0)
        with self._lock:
            cells = [cell for key, cell in self._cells.items() if _wanted(key, purpose, kind)]
        for cell in cells:
            for name, value in cell.items():
                totals[name] += value
        return totals

    def prefetch_snapshot(self) -> dict[str, int]:
        """Return the prefetch counters (all zero when there was no prefetch)."""
        return self.snapshot("prefetch")


class _TalliedCounters(Counters):
    """Counters plus lock-free hits (a :class:`Tally` per purpose and class)."""

    def __init__(self) -> None:
        super().__init__()
        self._hits: dict[_Key, Tally] = {}

    def _tally(self) -> Tally:
        key = _key()
        tally = self._hits.get(key)
        if tally is None:
            with self._lock:
                tally = self._hits.setdefault(key, Tally())
        return tally

    def _hit_totals(self, purpose: str, kind: str | None) -> tuple[int, int]:
        with self._lock:
            tallies = [t for key, t in self._hits.items() if _wanted(key, purpose, kind)]
        hits = amount = 0
        for tally in tallies:
            count, total = tally.totals()
            hits += count
            amount += total
        return hits, amount


class TierCounters(_TalliedCounters):
    """Counters of one tier; see the module docstring for their meaning."""

    NAMES = ("misses", "errors", "timeouts", "rejected", "corrupt", "bytes_written")

    def hit(self, nbytes: int, count: int = 1) -> None:
        """Count ``count`` hits of ``nbytes`` bytes in all (lock-free: this is the hot path)."""
        self._tally().add(nbytes, count)

    def snapshot(self, purpose: str = "demand", kind: str | None = None) -> dict[str, int]:
        """Return the counters as a plain dict, hits and bytes read included."""
        hits, bytes_read = self._hit_totals(purpose, kind)
        return {"hits": hits, **super().snapshot(purpose, kind), "bytes_read": bytes_read}


class OriginCounters(Counters):
    """Counters of the origin; see the module docstring for their meaning."""

    NAMES = (
        "requests",
        "bytes",
        "retries",
        "errors",
        "changed",
        "not_found",
        "narrowed_requests",
        "narrowed",
    )


class InfoCounters(_TalliedCounters):
    """Object-info lookups answered from the in-process table (hits) or not (misses)."""

    NAMES = ("misses", "shared_hits", "origin", "listings_reused")

    def hit(self) -> None:
        """Count one hit (lock-free)."""
        self._tally().add()

    def snapshot(self, purpose: str = "demand", kind: str | None = None) -> dict[str, int]:
        """Return hits and misses."""
        return {"hits": self._hit_totals(purpose, kind)[0], **super().snapshot(purpose, kind)}


class FillCounters(Counters):
    """Background fills: queued, dropped (the queue was full in jobs or bytes, or closed), done,
    failed; and the bytes of the fills dropped."""

    NAMES = ("queued", "dropped", "done", "failed", "dropped_bytes")


class FlightCounters(Counters):
    """Readers that waited on another reader's origin fetch (blocks) or info request."""

    NAMES = ("block_waits", "info_waits")


class Histogram:
    """A latency histogram with fixed bounds (:data:`LATENCY_BOUNDS_S`), per purpose and class.

    :meth:`observe` takes a lock: it is called for tier calls and origin requests, which cost
    tens of microseconds at least, never on the RAM hot path.
    """

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS_S) -> None:
        self.bounds = bounds
        self._lock = threading.Lock()
        self._cells: dict[_Key, tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float) -> None:
        """Count one observation of ``seconds`` in the current purpose and class."""
        key = _key()
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = ([0] * (len(self.bounds) + 1), [0.0])
            cell[0][index] += 1
            cell[1][0] += seconds

    def snapshot(self, purpose: str | None = "demand", kind: str | None = None) -> dict[str, Any]:
        """Return ``{"bounds", "counts", "sum", "count"}`` of ``purpose`` (None: both)."""
        counts = [0] * (len(self.bounds) + 1)
        total = 0.0
        with self._lock:
            for key, (cell, seconds) in self._cells.items():
                if _wanted(key, purpose, kind):
                    for i, n in enumerate(cell):
                        counts[i] += n
                    total += seconds[0]
        return {"bounds": list(self.bounds), "counts": counts, "sum": total, "count": sum(counts)}
