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
         "errors":        failed attempts (transient or not)},
     "info":   {"hits", "misses"}:       object-info lookups answered in process / not,
     "fills":  {"queued", "dropped", "done", "failed"}: background fills of slower tiers,
     "block_size": the block size in bytes}

A tier that is not configured is absent from ``"tiers"``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class Counters:
    """A set of named integer counters behind one lock (cheap: one acquire per update)."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


@dataclass
class TierCounters(Counters):
    """Counters of one tier; see the module docstring for their meaning."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    corrupt: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def hit(self, nbytes: int) -> None:
        """Count one hit of ``nbytes`` bytes (one lock round trip: this is the hot path)."""
        with self._lock:
            self.hits += 1
            self.bytes_read += nbytes


@dataclass
class OriginCounters(Counters):
    """Counters of the origin; see the module docstring for their meaning."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    errors: int = 0


@dataclass
class InfoCounters(Counters):
    """Object-info lookups answered from the in-process table (hits) or not (misses)."""

    hits: int = 0
    misses: int = 0


@dataclass
class FillCounters(Counters):
    """Background fills: queued, dropped because the queue was full, done, failed."""

    queued: int = 0
    dropped: int = 0
    done: int = 0
    failed: int = 0
