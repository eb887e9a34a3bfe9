"""Object info: the in-process table, single-flight requests, and sharing through tiers.

The chain needs an object's info (size, version) before it can name a block. The
:class:`InfoCache` keeps it in process (the table stays on when the RAM block tier is off:
without it every read would pay a metadata request); :class:`InfoStore` asks, on a miss, the
tiers that share documents (Redis: another pod may have fetched it) and then the origin, one
request per path however many readers ask at once, and hands fresh info to the sharing tiers
behind the read. Object info is counted as metadata, in the purpose of the read that asked.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tiercache.blocks import is_immutable
from tiercache.context import ReadContext
from tiercache.documents import info_document, parse_info_document
from tiercache.errors import IntegrityError, TierError
from tiercache.fills import FillQueue
from tiercache.flight import SingleFlight
from tiercache.protocol import DocumentTier, ObjectInfo, Origin
from tiercache.stats import FlightCounters, InfoCounters

from .slots import ReadScope, TierSlot


@dataclass(frozen=True)
class Discovered:
    """What the leader of a cold read learnt: the info and the bytes it read."""

    info: ObjectInfo
    offset: int
    data: bytes


class InfoCache:
    """Object info (size, version) by path, bounded by entry count, with per-path freshness.

    Immutable paths (see :func:`tiercache.blocks.is_immutable`) are trusted for as long as they
    stay in the table; other paths for ``ttl_s`` seconds. This table stays on even when the RAM
    block tier is disabled: without it every read would pay a metadata request.

    Args:
        ttl_s: Seconds info of a mutable path is trusted (``TIERCACHE_INFO_TTL``; 0 = never).
        max_entries: Entries kept; the least recently used is dropped beyond it.
        clock: Monotonic clock; injected by tests.
    """

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[ObjectInfo, float]] = OrderedDict()
        self.counters = InfoCounters()
        # Bumped by every discard: info fetched before an invalidation must not be stored
        # after it (a reader racing a writer would otherwise re-cache the old version).
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The invalidation epoch; pass the value seen before fetching info to :meth:`put`."""
        return self._epoch

    def get(self, path: str, ctx: ReadContext) -> ObjectInfo | None:
        """Return fresh info for ``path``, or ``None`` (unknown or expired); count which."""
        info = self.peek(path)
        self.count_lookup(info is not None, ctx)
        return info

    def count_lookup(self, hit: bool, ctx: ReadContext) -> None:
        """Count one lookup made with :meth:`peek` (object info counts as metadata)."""
        if hit:
            self.counters.hit(ctx=ctx.as_kind("metadata"))
        else:
            self.counters.add("misses", ctx=ctx.as_kind("metadata"))

    def peek(self, path: str) -> ObjectInfo | None:
        """Like :meth:`get`, without counting (the caller counts: the chain's hot path)."""
        # Lock-free for the same reasons as MemoryTier.get; writers hold the lock.
        entries = self._entries
        entry = entries.get(path)
        if entry is None:
            return None
        info, expires_at = entry
        if expires_at >= self._clock():
            try:  # noqa: SIM105  # contextlib.suppress costs a call on the hot path
                entries.move_to_end(path)
            except KeyError:
                pass  # dropped meanwhile; the info we hold was fresh when read
            return info
        with self._lock:
            if entries.get(path) is entry:
                del entries[path]
        return None

    def put(self, info: ObjectInfo, epoch: int | None = None, *, age_s: float = 0.0) -> None:
        """Remember ``info`` for its path, unless an invalidation happened since ``epoch``.

        Args:
            info: The object info.
            epoch: :attr:`epoch` as seen before the info was fetched.
            age_s: How long ago the info was fetched (info shared by another pod); it is trusted
                for the rest of ``ttl_s`` only.
        """
        if is_immutable(info.path):
            expires_at = math.inf
        elif self.fresh_for(info.path, age_s) <= 0:
            return
        else:
            expires_at = self._clock() + self.fresh_for(info.path, age_s)
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            self._entries[info.path] = (info, expires_at)
            self._entries.move_to_end(info.path)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def fresh_for(self, path: str, age_s: float) -> float:
        """Seconds info of ``path`` fetched ``age_s`` ago may still be trusted (inf: immutable)."""
        return math.inf if is_immutable(path) else self.ttl_s - max(0.0, age_s)

    def discard(self, path: str) -> None:
        """Forget ``path``."""
        with self._lock:
            self._epoch += 1
            self._entries.pop(path, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class InfoStore:
    """Object info for the chain: the table, the sharing tiers, the origin (in that order).

    Args:
        origin: Where info comes from when nobody has it.
        table: The in-process table.
        slots: The chain's slots; those whose tier shares documents
            (:class:`~tiercache.protocol.DocumentTier`) are asked and filled.
        fills: The chain's background fill queue (sharing happens behind the read).
        flight: Where readers that waited on another reader's request are counted.
    """

    def __init__(
        self,
        origin: Origin,
        table: InfoCache,
        slots: Sequence[TierSlot],
        fills: FillQueue,
        flight: FlightCounters,
    ) -> None:
        self.origin = origin
        self.table = table
        self.fills = fills
        self.flight = flight
        #: The slots whose tier shares documents (Redis), with the tier typed as such.
        self.document_slots = [(s, s.tier) for s in slots if isinstance(s.tier, DocumentTier)]
        #: One request per path at a time; a cold read's leader resolves it with what it
        #: learnt (a :class:`Discovered`), an info request with the info.
        self.requests: SingleFlight[str, Discovered | ObjectInfo] = SingleFlight()

    def info(self, path: str, scope: ReadScope) -> ObjectInfo:
        """Return the info of ``path``: from the table, else :meth:`fetch` (counted)."""
        info = self.table.get(path, scope.ctx("metadata"))
        return info if info is not None else self.fetch(path, scope)

    def fetch(self, path: str, scope: ReadScope) -> ObjectInfo:
        """Ask the sharing tiers, else the origin, for the info of ``path`` (single-flight);
        keep it if it is a file."""
        ctx = scope.ctx("metadata")
        _mine, theirs = self.requests.claim([path])
        if theirs:
            self.flight.add("info_waits", ctx=ctx)
            found = theirs[path].result()
            return found.info if isinstance(found, Discovered) else found
        try:
            info = self.shared(path, scope)
            if info is None:
                epoch = self.table.epoch
                info = self.origin.info(path, ctx=ctx)
                self.table.counters.add("origin", ctx=ctx)
                if info.raw.get("type", "file") == "file":
                    self.table.put(info, epoch)
                    self.share(info, ctx)
        except BaseException as exc:
            self.requests.fail(path, exc)
            raise
        self.requests.resolve(path, info)
        return info

    def learnt(self, info: ObjectInfo, epoch: int, ctx: ReadContext) -> None:
        """Keep info a cold read learnt from the origin (unless invalidated since ``epoch``)."""
        self.table.counters.add("origin", ctx=ctx.as_kind("metadata"))
        self.table.put(info, epoch)
        self.share(info, ctx)

    def shared(self, path: str, scope: ReadScope) -> ObjectInfo | None:
        """Ask the tiers that share object info (Redis) for fresh info of ``path``."""
        ctx = scope.ctx("metadata")
        for slot, document in self.documents(path, scope):
            try:
                info, fetched_at = parse_info_document(document)
            except ValueError as exc:
                slot.corrupt(exc, ctx)
                continue
            age_s = time.time() - fetched_at
            if info.path != path or self.table.fresh_for(path, age_s) <= 0:
                continue  # stale for this process's INFO_TTL: ask the origin
            self.table.put(info, age_s=age_s)
            self.table.counters.add("shared_hits", ctx=ctx)
            return info
        return None

    def documents(self, path: str, scope: ReadScope) -> Iterator[tuple[TierSlot, bytes]]:
        """Ask each tier that shares documents (Redis) for the one stored under ``path``.

        A tier that fails is skipped, and not asked again during this read; a document that
        fails its integrity check is counted as corrupt in its tier.
        """
        ctx = scope.ctx("metadata")
        for slot, tier in self.document_slots:
            if path in slot.untrusted or slot in scope.failed:
                continue
            try:
                document = slot.call(tier.get_info, self.origin.target, path, ctx=ctx)
            except IntegrityError as exc:
                slot.corrupt(exc, ctx)
                continue
            except TierError:
                scope.failed.add(slot)
                continue
            if document is not None:
                yield slot, document

    def share(self, info: ObjectInfo, ctx: ReadContext) -> None:
        """Hand fresh object info to the tiers that share it, behind the read."""
        if self.document_slots:
            self.share_document(info.path, info_document(info, time.time()), ctx)

    def share_document(self, path: str, document: bytes, ctx: ReadContext) -> None:
        """Store ``document`` under ``path`` in each tier that shares documents, behind the read."""
        ctx = ctx.as_kind("metadata")
        for slot, tier in self.document_slots:
            if path not in slot.untrusted:
                job = _putter(slot, tier, self.origin.target, path, document=document, ctx=ctx)
                self.fills.submit(job, len(document), ctx=ctx)


def _putter(
    slot: TierSlot, tier: DocumentTier, target: str, path: str, *, document: bytes, ctx: ReadContext
) -> Callable[[], None]:
    """A fill job: store ``document`` under ``path`` in ``tier`` (a failure is the tier's)."""

    def job() -> None:
        with contextlib.suppress(TierError):
            slot.call(tier.put_info, target, path, document, read=False, ctx=ctx)

    return job
