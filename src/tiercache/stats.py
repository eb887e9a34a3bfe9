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
         "hedges":        reads late to their first byte that were sent again (one extra
                          request each; docs/reliability.md, "Hedged reads"),
         "hedges_won":    of those, the ones where the extra request answered first,
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
     "readahead": {"blocks", "requests", "hits", "wasted", "cancelled", "failed",
                 "in_flight_bytes", "budget_bytes"}: readahead of open files
                 (:mod:`tiercache.readahead`; its origin traffic is counted as prefetch),
     "classes":  {"demand" | "prefetch": {"metadata" | "data": {"tiers", "origin"}}}: the
                 counters split by purpose and block class}

**Purpose.** Every top-level counter counts *demand* reads: what the application asked for. Reads
made ahead of demand (warmup, :func:`tiercache.warm`, ``TieredFileSystem.prefetch_range``) are
counted apart, so a warmed cache does not inflate the hit ratio and warmup's origin traffic stays
visible.

**Class.** Each block is ``metadata`` (footers, Delta log files, small objects; object info too) or
``data`` (:func:`tiercache.blocks.classify`). An origin request for a run of blocks that mixes both
classes is counted as ``data``.

Both come with every update as a :class:`~tiercache.context.ReadContext`, passed explicitly by the
chain to whatever counts on its behalf (:mod:`tiercache.context`).

Each tier's entry also has ``"lookups"``: the blocks the chain asked it for, ``hits + misses``. A
read the chain serves without asking a tier (a cold read of an unknown object learns its info and
its bytes from one origin request) asks no tier at all.

Histograms are ``{"bounds": [...], "counts": [...], "sum": seconds, "count": n}``: ``counts[i]``
observations fell in ``(bounds[i-1], bounds[i]]``, the last one above every bound.

A tier that is not configured is absent from ``"tiers"``.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, ClassVar, Final

from .context import KINDS, PURPOSES, ReadContext, wanted

__all__ = [
    "KINDS",
    "LATENCY_BOUNDS_S",
    "PURPOSES",
    "Counters",
    "FillCounters",
    "FlightCounters",
    "Histogram",
    "InfoCounters",
    "OriginCounters",
    "Tally",
    "TierCounters",
]

#: Upper bounds (seconds) of the latency histogram buckets: 100 µs to 30 s.
LATENCY_BOUNDS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


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

    :meth:`add` counts in the context it is given; :meth:`snapshot` sums what a purpose (and
    optionally a class) holds. One lock acquire per update.
    """

    NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[ReadContext, dict[str, int]] = {}

    def add(self, name: str, amount: int = 1, *, ctx: ReadContext) -> None:
        """Add ``amount`` to the counter ``name`` in ``ctx`` (KeyError: a name not in ``NAMES``)."""
        with self._lock:
            cell = self._cells.get(ctx)
            if cell is None:
                cell = self._cells[ctx] = dict.fromkeys(self.NAMES, 0)
            cell[name] += amount

    def snapshot(self, purpose: str = "demand", kind: str | None = None) -> dict[str, int]:
        """Return the counters of ``purpose`` (all classes, or ``kind`` only) as a plain dict."""
        totals = dict.fromkeys(self.NAMES, 0)
        with self._lock:
            cells = [cell for key, cell in self._cells.items() if wanted(key, purpose, kind)]
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
        self._hits: dict[ReadContext, Tally] = {}

    def _tally(self, ctx: ReadContext) -> Tally:
        tally = self._hits.get(ctx)
        if tally is None:
            with self._lock:
                tally = self._hits.setdefault(ctx, Tally())
        return tally

    def _hit_totals(self, purpose: str, kind: str | None) -> tuple[int, int]:
        with self._lock:
            tallies = [t for key, t in self._hits.items() if wanted(key, purpose, kind)]
        hits = amount = 0
        for tally in tallies:
            count, total = tally.totals()
            hits += count
            amount += total
        return hits, amount


class TierCounters(_TalliedCounters):
    """Counters of one tier; see the module docstring for their meaning."""

    NAMES = ("misses", "errors", "timeouts", "rejected", "corrupt", "bytes_written")

    def hit(self, nbytes: int, count: int = 1, *, ctx: ReadContext) -> None:
        """Count ``count`` hits of ``nbytes`` bytes in all (lock-free: this is the hot path)."""
        self._tally(ctx).add(nbytes, count)

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
        "hedges",
        "hedges_won",
    )


class InfoCounters(_TalliedCounters):
    """Object-info lookups answered from the in-process table (hits) or not (misses)."""

    NAMES = ("misses", "shared_hits", "origin", "listings_reused")

    def hit(self, *, ctx: ReadContext) -> None:
        """Count one hit (lock-free)."""
        self._tally(ctx).add()

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
        self._cells: dict[ReadContext, tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float, *, ctx: ReadContext) -> None:
        """Count one observation of ``seconds`` in ``ctx``."""
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            cell = self._cells.get(ctx)
            if cell is None:
                cell = self._cells[ctx] = ([0] * (len(self.bounds) + 1), [0.0])
            cell[0][index] += 1
            cell[1][0] += seconds

    def snapshot(self, purpose: str | None = "demand", kind: str | None = None) -> dict[str, Any]:
        """Return ``{"bounds", "counts", "sum", "count"}`` of ``purpose`` (None: both)."""
        counts = [0] * (len(self.bounds) + 1)
        total = 0.0
        with self._lock:
            for key, (cell, seconds) in self._cells.items():
                if wanted(key, purpose, kind):
                    for i, n in enumerate(cell):
                        counts[i] += n
                    total += seconds[0]
        return {"bounds": list(self.bounds), "counts": counts, "sum": total, "count": sum(counts)}
