"""TierChain: the read algorithm between the tiers and the origin.

For a range ``[start, end)`` of one object version, the chain splits the range into fixed
blocks and, for each block, asks the tiers in order (memory, then disk and Redis where they
take the block's class). A hit in a lower tier is promoted upward. The blocks still missing are
fetched from the origin (:mod:`tiercache.chain.fetch`); slower tiers are filled behind the read
through the bounded :class:`~tiercache.fills.FillQueue`. Object info comes from
:mod:`tiercache.chain.info`, directory listings kept for reuse from
:mod:`tiercache.chain.listings`, the stats snapshot from :mod:`tiercache.chain.snapshot`.

Every read is counted explicitly: the read's purpose (demand, or prefetch) and each block's
class travel as a :class:`~tiercache.context.ReadContext` to whatever counts.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tiercache.blocks import block_span, normalize_range
from tiercache.context import DEMAND, PREFETCH, Purpose
from tiercache.errors import ObjectChangedError
from tiercache.fills import FillQueue
from tiercache.protocol import BlockKey, ObjectInfo, Origin, Tier
from tiercache.readahead import Readahead
from tiercache.shadow import MASK as SHADOW_MASK
from tiercache.shadow import ShadowCache
from tiercache.stats import FlightCounters, Histogram, Tally

from .fetch import Fetcher, join, slice_blocks
from .info import InfoCache, InfoStore
from .listings import Listings
from .resident import resident_range
from .slots import ReadScope, make_slots
from .snapshot import snapshot
from .tiers import TierWalk

if TYPE_CHECKING:
    from tiercache.config import Settings

logger = logging.getLogger(__name__)

_new_key = tuple.__new__

#: How often one read restarts on a new version after the object changed under it.
VERSION_RETRIES = 3

#: Every chain not yet closed (for the metrics exporter and the stats file).
LIVE_CHAINS: weakref.WeakSet[TierChain] = weakref.WeakSet()
_SERIALS = itertools.count()


class TierChain:
    """The tiers, the origin and the read algorithm between them.

    Args:
        origin: Where the bytes live (:class:`~tiercache.protocol.Origin`).
        tiers: Tiers in lookup order. Tiers with ``in_process = True`` are called directly;
            every other tier is wrapped in a :class:`~tiercache.guard.Guard`.
        block_size: Block size in bytes.
        info_ttl_s: How long info of a mutable path is trusted.
        tier_timeouts_s: Time budget per tier name, set explicitly by the caller; a tier not
            named here gets its own (:class:`~tiercache.protocol.BudgetedTier`), else
            ``default_timeout_s``.
        breaker_failures: Consecutive failures that open a tier's breaker.
        breaker_cooldown_s: Seconds before an open breaker lets a probe through.
        fill_queue_size: Bound of the background fill queue, in jobs.
        fill_queue_bytes: Bound of the background fill queue, in the bytes its jobs hold
            (a block's length, a shared document's length); ``0``: no background fills.
        run_workers: Threads fetching extra runs of one read concurrently.
        fetch_workers: Threads fetching blocks a reader may stop waiting for (a read of less
            than the blocks it misses); as many as origin requests may run at once
            (``TIERCACHE_ORIGIN_CONCURRENCY``), so that no such fetch queues behind another.
        first_window_s: Length of the start-up window whose stats are kept apart
            (:attr:`first_minute`).
        shadow_rate: Sampling rate of the shadow cache that watches the front tier's lookups
            (:mod:`tiercache.shadow`); None: no shadow cache.
        readahead_bytes: Readahead budget of open files (:mod:`tiercache.readahead`); 0: off.
    """

    def __init__(
        self,
        origin: Origin,
        tiers: Sequence[Tier],
        *,
        block_size: int,
        info_ttl_s: float,
        tier_timeouts_s: Mapping[str, float] | None = None,
        default_timeout_s: float = 0.1,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 5.0,
        fill_queue_size: int = 1024,
        fill_queue_bytes: int = 16 << 20,
        run_workers: int = 8,
        fetch_workers: int = 32,
        first_window_s: float = 60.0,
        shadow_rate: float | None = None,
        readahead_bytes: int = 0,
    ) -> None:
        self.origin = origin
        self.target = origin.target
        self.block_size = block_size
        self.fills = FillQueue(fill_queue_size, fill_queue_bytes)
        self.slots = make_slots(
            tiers,
            timeouts_s=dict(tier_timeouts_s or {}),
            default_timeout_s=default_timeout_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
        )
        # Tiers are asked in the order given. A first tier that runs in process (RAM) is the
        # "front": probed inline on the hot path, without the per-block class check.
        self.front = self.slots[0] if self.slots and self.slots[0].guard is None else None
        #: Watches the front tier's lookups: the miss-ratio curve (None: off, or no RAM tier).
        self.shadow: ShadowCache | None = None
        if shadow_rate is not None and self.front is not None:
            # A sized front tier (RAM) is also modelled as S3-FIFO, whichever policy it runs, so
            # that ``tiercache advise`` can compare the two policies on the same stream.
            budget = getattr(self.front.tier, "capacity_bytes", None)
            self.shadow = ShadowCache(
                block_size,
                rate=shadow_rate,
                references=self._shadow_references,
                simulate_bytes=budget if isinstance(budget, int) and budget > 0 else None,
            )
        self.walk = TierWalk(self.slots, self.fills, self.shadow)
        if 0 < fill_queue_bytes < block_size and self.walk.lower:
            logger.warning(
                "the fill queue's budget (%d bytes) is smaller than a block (%d bytes): blocks "
                "are never written to the slower tiers (counted in fills.dropped)",
                fill_queue_bytes,
                block_size,
            )
        self.flight = FlightCounters()
        self.info_table = InfoCache(info_ttl_s)
        self.infos = InfoStore(origin, self.info_table, self.slots, self.fills, self.flight)
        self.listings = Listings(self.infos)
        self.fetcher = Fetcher(
            origin,
            block_size=block_size,
            store=self.walk.store,
            front=self.front,
            infos=self.infos,
            flight=self.flight,
            run_workers=run_workers,
            fetch_workers=fetch_workers,
        )
        self._blocks = self.fetcher.blocks
        # Only with a RAM tier (where the reader finds the blocks); half the origin's slots.
        self.readahead = Readahead(
            self.read_pinned,
            block_size=block_size,
            budget_bytes=readahead_bytes if self.front is not None else 0,
            workers=fetch_workers // 2,
        )
        self._closed = threading.Event()
        # Hits of the hot path: an info hit and a memory-tier hit each (see read_range), per
        # block class.
        self.fast_meta = Tally()
        self.fast_data = Tally()
        self.read_latency = Histogram()  # reads that leave the hot path
        self.started_at = time.time()
        self.started = time.monotonic()
        # The stats of the first minute (for the cold-start triggers), frozen by the first read
        # that leaves the hot path after it ends, or by the first snapshot, whichever is first:
        # after the window only RAM hits can have been counted meanwhile, and they cost no time.
        self.first_minute: dict[str, Any] | None = None
        self._first_window_s = first_window_s
        self._freeze_lock = threading.Lock()
        #: The settings the chain was built from, when it was (shown in the stats file).
        self.settings: Settings | None = None
        #: A number telling this process's chains apart (the ``chain`` label of the metrics).
        self.serial = next(_SERIALS)
        LIVE_CHAINS.add(self)

    @property
    def info_cache(self) -> InfoCache:
        """The old name of :attr:`info_table` (kept for one release)."""
        warnings.warn(
            "TierChain.info_cache is now TierChain.info_table", DeprecationWarning, stacklevel=2
        )
        return self.info_table

    # -- object info ---------------------------------------------------------------------------

    def info(self, path: str) -> ObjectInfo:
        """Return the object's info: from the in-process table, else the origin (single-flight)."""
        return self.infos.info(path, ReadScope("demand"))

    def seed_info(self, info: ObjectInfo) -> None:
        """Remember object info learnt elsewhere (a Delta log, a listing): no HEAD for it.

        Info already held for the path is kept: it came from the object store itself.
        """
        if self.info_table.peek(info.path) is None:
            self.info_table.put(info)

    def cached_listing(self, path: str, max_age_s: float) -> list[dict[str, Any]] | None:
        """Return a listing of ``path`` made at most ``max_age_s`` ago, or ``None``
        (:meth:`Listings.cached <tiercache.chain.listings.Listings.cached>`)."""
        return self.listings.cached(path, max_age_s, ReadScope("demand"))

    def share_listing(self, path: str, entries: Sequence[Mapping[str, Any]]) -> None:
        """Keep a fresh listing of ``path`` for :meth:`cached_listing`, here and in the tiers
        that share documents."""
        self.listings.share(path, entries, DEMAND)

    def invalidate(self, path: str) -> None:
        """Forget what every reachable tier holds for ``path`` (info and blocks, all versions).

        A listing of its directory kept by this process is dropped too (a write of a Delta
        commit through this filesystem is seen by the next open here at once).
        """
        self.info_table.discard(path)
        self.listings.drop(path.rsplit("/", 1)[0])
        self.walk.invalidate(self.target, path)

    def invalidate_all_info(self) -> None:
        """Forget all object info (blocks stay: they are keyed by version)."""
        self.info_table.clear()

    # -- reads ---------------------------------------------------------------------------------

    def read_range(self, path: str, start: int | None, end: int | None) -> bytes:
        """Return ``[start, end)`` of the object at ``path`` (slice semantics), one version only.

        If the object changes during the read (S3 412), the info is refreshed and the read
        starts over on the new version, at most :data:`VERSION_RETRIES` times.
        """
        info = self.info_table.peek(path)
        front = self.front
        # The hot path, written out flat (every call costs here): a known object, an explicit
        # in-bounds range in one block (or two) in RAM, counted with one tally per block
        # (``fast_meta`` / ``fast_data``). Anything else takes the general path, which counts
        # the info lookup and looks the blocks up (and counts them) as usual.
        if (
            info is not None
            and front is not None
            and start is not None
            and end is not None
            and 0 <= start < end <= info.size
        ):
            bs = self.block_size
            first = start // bs
            last = (end - 1) // bs
            if last == first + 1:  # across a block boundary (64 KiB reads: 1 in 16)
                if (data := resident_range(self, info, start, end)) is not None:
                    return data
            elif first == last:
                key = _new_key(BlockKey, (self.target, path, info.version, bs, first))
                since = self._blocks.resolutions  # before the lookup (see Fetcher.fetch)
                block = front.tier.get(key)
                if block is not None:
                    shadow = self.shadow
                    if shadow is not None and (hash(key) & SHADOW_MASK) < shadow.threshold:
                        shadow.access(hash(key), len(block))
                    if (first + 1) * bs > info.metadata_from:
                        self.fast_meta.add(len(block))
                    else:
                        self.fast_data.add(len(block))
                    offset = first * bs
                    return block[start - offset : end - offset]
                missed = (key, since)
                return self._read_general(path, start, end, info, "demand", front_missed=missed)
        return self._read_general(path, start, end, info, "demand")

    def prefetch(self, path: str, start: int | None, end: int | None) -> bytes:
        """Read ``[start, end)`` as :meth:`read_range` does, counted as prefetch, not demand.

        Everything the read causes (tier hits and misses, origin requests, fills) is counted in
        ``stats()["prefetch"]``.
        """
        return self._read_general(path, start, end, self.info_table.peek(path), "prefetch")

    def _read_general(
        self,
        path: str,
        start: int | None,
        end: int | None,
        info: ObjectInfo | None,
        purpose: Purpose,
        *,
        front_missed: tuple[BlockKey, int] | None = None,
    ) -> bytes:
        """The general path of a read: counted, timed, every tier asked."""
        began = time.perf_counter()
        scope = ReadScope(purpose)
        if front_missed is not None:
            scope.front_missed, scope.since = front_missed
        self.info_table.count_lookup(info is not None, scope.ctx("metadata"))
        if self.first_minute is None and time.monotonic() - self.started >= self._first_window_s:
            self._freeze_first_minute()
        try:
            return self._read_range(path, start, end, info, scope)
        finally:
            if purpose == "demand":
                self.read_latency.observe(time.perf_counter() - began, ctx=DEMAND)

    def _read_range(
        self,
        path: str,
        start: int | None,
        end: int | None,
        info: ObjectInfo | None,
        scope: ReadScope,
    ) -> bytes:
        for _ in range(VERSION_RETRIES):
            if info is None and self.infos.document_slots:
                info = self.infos.shared(path, scope)  # another pod may have fetched it already
            if info is None:
                if (
                    self.origin.can_discover
                    and start is not None
                    and end is not None
                    and 0 <= start < end
                ):
                    found = self.fetcher.discover(path, start, end, scope.ctx("data"))
                    if isinstance(found, bytes):
                        return found
                    info = found
                else:
                    info = self.infos.fetch(path, scope)
                if info.raw.get("type", "file") != "file":
                    # Not a file (a directory, say): whatever the target does, tiercache does.
                    return self.origin.read_object(path, start, end, ctx=scope.ctx("data"))
            if start is not None and end is not None and 0 <= start <= end <= info.size:
                lo, hi = start, end  # the common case needs no normalising
            else:
                lo, hi = normalize_range(start, end, info.size)
            if lo == hi:
                return b""
            try:
                return self._read_pinned(info, lo, hi, scope)
            except ObjectChangedError:
                self.origin.counters.add("changed", ctx=scope.ctx("data"))
                self.info_table.discard(path)
                self.origin.forget(path)
                info = None
        raise ObjectChangedError(f"{path!r} changed {VERSION_RETRIES} times during one read")

    def read_pinned(
        self, info: ObjectInfo, start: int, end: int, purpose: Purpose = "demand"
    ) -> bytes:
        """Return ``[start, end)`` (clipped to the size) of exactly the version in ``info``.

        Raises:
            ObjectChangedError: A block had to come from the origin and the object has changed.
        """
        return self._read_pinned(info, start, end, ReadScope(purpose))

    def _read_pinned(self, info: ObjectInfo, start: int, end: int, scope: ReadScope) -> bytes:
        end = min(end, info.size)
        if start >= end:
            return b""
        bs = self.block_size
        first = start // bs
        since = self._blocks.resolutions if scope.since is None else scope.since
        if first == (end - 1) // bs:  # the common case: one block, one slice
            # tuple.__new__ skips NamedTuple's Python-level __new__ (half the cost, hot path).
            key = _new_key(BlockKey, (self.target, info.path, info.version, bs, first))
            block = self.walk.lookup(key, info, scope)
            if block is None:
                fetched = self.fetcher.fetch(
                    info, [key], start, end, ctx=scope.ctx("data"), since=since
                )
                if isinstance(fetched, bytes):  # narrowed: exactly [start, end)
                    return fetched
                block = fetched[first]
            offset = first * bs
            return block[start - offset : end - offset]
        keys = [
            BlockKey(self.target, info.path, info.version, bs, i)
            for i in block_span(start, end, bs)
        ]
        blocks: dict[int, bytes] = {}
        missing: list[BlockKey] = []
        for key in keys:
            block = self.walk.lookup(key, info, scope)
            if block is None:
                missing.append(key)
            else:
                blocks[key.block_index] = block
        if missing:
            fetched = self.fetcher.fetch(
                info, missing, start, end, ctx=scope.ctx("data"), since=since
            )
            if isinstance(fetched, bytes):  # narrowed: [start, end) within the missing span
                lo, hi = self.fetcher.narrowed_range(info, missing, start, end)
                return b"".join(
                    (
                        slice_blocks(blocks, bs, start, lo),
                        fetched,
                        slice_blocks(blocks, bs, hi, end),
                    )
                )
            blocks.update(fetched)
        return join(
            [blocks[key.block_index] for key in keys],
            start - first * bs,
            end - keys[-1].block_index * bs,
        )

    def _shadow_references(self) -> int:
        """Lookups of the front tier so far, every purpose (the shadow cache's stream)."""
        front = self.front
        if front is None:
            return 0
        total = self.fast_meta.totals()[0] + self.fast_data.totals()[0]
        for ctx in (DEMAND, PREFETCH):
            counts = front.counters.snapshot(ctx.purpose)
            total += counts["hits"] + counts["misses"]
        return total

    # -- lifecycle and stats -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return the documented stats snapshot (see :mod:`tiercache.stats`)."""
        if self.first_minute is None and time.monotonic() - self.started >= self._first_window_s:
            self._freeze_first_minute()
        return snapshot(self)

    def _freeze_first_minute(self) -> None:
        with self._freeze_lock:
            if self.first_minute is None:
                frozen = snapshot(self)
                frozen["window_s"] = self._first_window_s
                self.first_minute = frozen

    def close(self) -> None:
        """Stop the fill workers, the guards and the fetch pools; close every tier."""
        if self._closed.is_set():
            return
        self._closed.set()
        LIVE_CHAINS.discard(self)
        self.fills.close()
        self.readahead.close()
        self.fetcher.close()
        for slot in self.slots:
            if slot.guard is not None:
                slot.guard.close()
            try:
                slot.tier.close()
            except Exception:
                logger.warning("tier %r failed to close", slot.name, exc_info=True)
