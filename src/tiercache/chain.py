"""TierChain: lookup order, promotion, single-flight origin fetches and background fills.

For a range ``[start, end)`` of one object version, the chain splits the range into fixed
blocks and, for each block, asks the tiers in order (memory, then disk and Redis where they
take the block's class). A hit in a lower tier is promoted upward. The blocks still missing are
grouped into contiguous runs, each fetched from the origin with one request (several runs
concurrently), and concurrent readers of the same missing block wait on one fetch. A reader that
wants less than the blocks it misses stops waiting once the fetch is late and reads its own
range from the origin (:mod:`tiercache.lateness`); the fetch still fills the tiers. Slower tiers
are filled behind the read through the bounded :class:`~tiercache.fills.FillQueue`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from .blocks import block_bounds, block_span, classify, contiguous_runs, normalize_range
from .config import Settings
from .documents import (
    info_document,
    listing_document,
    listing_key,
    parse_info_document,
    parse_listing_document,
)
from .errors import IntegrityError, ObjectChangedError, OriginError, TierError
from .fills import FillQueue
from .flight import SingleFlight
from .guard import WARNING_INTERVAL_S, BreakerState, CircuitBreaker, Guard
from .lateness import late_after_s
from .origin import FsspecOrigin
from .protocol import (
    BlockKey,
    BlockKind,
    BudgetedTier,
    DocumentTier,
    InProcessTier,
    ObjectInfo,
    ReportingTier,
    SizedTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
)
from .shadow import FACTORS as SHADOW_FACTORS
from .shadow import MASK as SHADOW_MASK
from .shadow import ShadowCache, sizes_around
from .stats import (
    KINDS,
    PURPOSES,
    FlightCounters,
    Histogram,
    Tally,
    TierCounters,
    carry,
    prefetching,
    set_kind,
)
from .tiers.memory import InfoCache

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_new_key = tuple.__new__


def _first_failure(done: Iterable[Future[Any]]) -> BaseException | None:
    """Return the error of the first failed (or dropped) future among ``done``, if any."""
    for future in done:
        if future.cancelled():
            return OriginError("the filesystem was closed before the origin fetch started")
        error = future.exception()
        if error is not None:
            return error
    return None


def _budget_of(tier: Tier, by_name: Mapping[str, float], default_s: float) -> float:
    """The guard's time budget for ``tier``: given by name, else the tier's own, else default.

    The tier's own (:class:`~tiercache.protocol.BudgetedTier`) comes with the tier, so a user's
    tier that happens to be named "disk" never gets the disk tier's budget.
    """
    if tier.name in by_name:
        return by_name[tier.name]
    return tier.timeout_s if isinstance(tier, BudgetedTier) else default_s


def _join(blocks: list[bytes], head: int, tail: int) -> bytes:
    """Join consecutive blocks, from ``head`` in the first to ``tail`` in the last.

    Views, not slices: every byte is copied once.
    """
    parts = [memoryview(block) for block in blocks]
    parts[-1] = parts[-1][:tail]
    parts[0] = parts[0][head:]
    return b"".join(parts)


#: How often one read restarts on a new version after the object changed under it.
VERSION_RETRIES = 3

#: Every chain not yet closed (for the metrics exporter and the stats file).
LIVE_CHAINS: weakref.WeakSet[TierChain] = weakref.WeakSet()
_SERIALS = itertools.count()
#: Directory listings a chain keeps for reuse (Delta logs: one per table read).
_MAX_LISTINGS = 256


@dataclass(eq=False)
class TierSlot:
    """One tier in the chain with its counters and, unless it runs in process, its guard."""

    tier: Tier
    counters: TierCounters
    guard: Guard | None
    # Paths whose invalidation failed in this tier: it is not trusted for them any more.
    untrusted: set[str] = field(default_factory=set)
    _last_corrupt_warning: float = -WARNING_INTERVAL_S

    @property
    def name(self) -> str:
        return self.tier.name

    @property
    def state(self) -> BreakerState:
        return BreakerState.CLOSED if self.guard is None else self.guard.breaker.state

    def corrupt(self, reason: object) -> None:
        """Count a value that failed its checks; one WARNING per interval, not one per value."""
        self.counters.add("corrupt")
        now = time.monotonic()
        if now - self._last_corrupt_warning >= WARNING_INTERVAL_S:
            self._last_corrupt_warning = now
            logger.warning("tier %r served a bad value (%s); it was dropped", self.name, reason)

    def call(self, fn: Callable[..., Any], *args: object, read: bool = True) -> Any:
        """Call a tier method, through the guard when there is one."""
        if self.guard is None:
            return fn(*args)
        return self.guard.call(fn, *args, read=read)


@dataclass(frozen=True)
class _Discovered:
    """What the leader of a cold read learnt: the info and the bytes it read."""

    info: ObjectInfo
    offset: int
    data: bytes


class TierChain:
    """The tiers, the origin and the read algorithm between them.

    Args:
        origin: Where the bytes live.
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
    """

    def __init__(
        self,
        origin: FsspecOrigin,
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
    ) -> None:
        self.origin = origin
        self.target = origin.target
        self.block_size = block_size
        self.info_cache = InfoCache(info_ttl_s)
        # Directory listings kept for reuse (see cached_listing): path -> (entries, fetched at).
        self._listings: dict[str, tuple[list[dict[str, Any]], float]] = {}
        self._listings_lock = threading.Lock()
        self.fills = FillQueue(fill_queue_size, fill_queue_bytes)
        timeouts = dict(tier_timeouts_s or {})
        names = [tier.name for tier in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        self.slots: list[TierSlot] = []
        for tier in tiers:
            counters = TierCounters()
            guard = None
            if not (isinstance(tier, InProcessTier) and tier.in_process):
                guard = Guard(
                    tier.name,
                    timeout_s=_budget_of(tier, timeouts, default_timeout_s),
                    breaker=CircuitBreaker(breaker_failures, breaker_cooldown_s),
                    counters=counters,
                    on_thread_exit=(
                        tier.release_thread if isinstance(tier, ThreadBoundTier) else None
                    ),
                )
            if guard is not None and isinstance(tier, StartableTier) and not tier.ready:
                guard.breaker.disable()  # it could not start; probed after each cooldown
                reason = tier.last_error or "not ready"
                guard.warn(f"tier {tier.name!r} disabled at start ({reason}); reads go on")
            self.slots.append(TierSlot(tier, counters, guard))
        # Tiers are asked in the order given. A first tier that runs in process (RAM) is the
        # "front": probed inline on the hot path, without the per-block class check.
        self._front = self.slots[0] if self.slots and self.slots[0].guard is None else None
        self._lower = [s for s in self.slots if s is not self._front]
        if 0 < fill_queue_bytes < block_size and self._lower:
            logger.warning(
                "the fill queue's budget (%d bytes) is smaller than a block (%d bytes): blocks "
                "are never written to the slower tiers (counted in fills.dropped)",
                fill_queue_bytes,
                block_size,
            )
        # Tiers that share object info across processes (Redis): get_info / put_info.
        self._info_slots = [(s, s.tier) for s in self._lower if isinstance(s.tier, DocumentTier)]
        self._blocks_flight: SingleFlight[BlockKey, bytes] = SingleFlight()
        self._info_flight: SingleFlight[str, _Discovered | ObjectInfo] = SingleFlight()
        self._runs = ThreadPoolExecutor(max_workers=run_workers, thread_name_prefix="tiercache-run")
        # Block fetches a reader may stop waiting for (see _fetch). Apart from the run pool:
        # fetches left behind on a slow origin must not hold the threads that whole-range
        # readers' extra runs wait on.
        self._fetches = ThreadPoolExecutor(
            max_workers=fetch_workers, thread_name_prefix="tiercache-fetch"
        )
        self._closed = threading.Event()
        self._scope = threading.local()  # per-thread state of the read in progress
        # Hits of the hot path: an info hit and a memory-tier hit each (see read_range), per
        # block class.
        self._fast_meta = Tally()
        self._fast_data = Tally()
        self.flight = FlightCounters()
        self.read_latency = Histogram()  # reads that leave the hot path
        self.started_at = time.time()
        self._started = time.monotonic()
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
        #: Watches the front tier's lookups: the miss-ratio curve (None: off, or no RAM tier).
        self.shadow: ShadowCache | None = None
        if shadow_rate is not None and self._front is not None:
            self.shadow = ShadowCache(
                block_size, rate=shadow_rate, references=self._shadow_references
            )
        LIVE_CHAINS.add(self)

    # -- object info ---------------------------------------------------------------------------

    def info(self, path: str) -> ObjectInfo:
        """Return the object's info: from the in-process table, else the origin (single-flight)."""
        info = self.info_cache.get(path)
        return info if info is not None else self._fetch_info(path)

    def _fetch_info(self, path: str) -> ObjectInfo:
        """Ask the origin for the info of ``path`` (single-flight) and keep it if it is a file."""
        previous = set_kind("metadata")
        try:
            return self._fetch_info_metadata(path)
        finally:
            set_kind(previous)

    def _fetch_info_metadata(self, path: str) -> ObjectInfo:
        _mine, theirs = self._info_flight.claim([path])
        if theirs:
            self.flight.add("info_waits")
            found = theirs[path].result()
            return found.info if isinstance(found, _Discovered) else found
        try:
            info = self._shared_info(path)
            if info is None:
                epoch = self.info_cache.epoch
                info = self.origin.info(path)
                self.info_cache.counters.add("origin")
                if info.raw.get("type", "file") == "file":
                    self.info_cache.put(info, epoch)
                    self._share_info(info)
        except BaseException as exc:
            self._info_flight.fail(path, exc)
            raise
        self._info_flight.resolve(path, info)
        return info

    def _shared_info(self, path: str) -> ObjectInfo | None:
        """Ask the tiers that share object info (Redis) for fresh info of ``path``."""
        previous = set_kind("metadata")
        try:
            return self._shared_info_metadata(path)
        finally:
            set_kind(previous)

    def _shared_info_metadata(self, path: str) -> ObjectInfo | None:
        for slot, document in self._shared_documents(path):
            try:
                info, fetched_at = parse_info_document(document)
            except ValueError as exc:
                slot.corrupt(exc)
                continue
            age_s = time.time() - fetched_at
            if info.path != path or self.info_cache.fresh_for(path, age_s) <= 0:
                continue  # stale for this process's INFO_TTL: ask the origin
            self.info_cache.put(info, age_s=age_s)
            self.info_cache.counters.add("shared_hits")
            return info
        return None

    def _shared_documents(self, path: str) -> Iterator[tuple[TierSlot, bytes]]:
        """Ask each tier that shares documents (Redis) for the one stored under ``path``.

        A tier that fails is skipped, and not asked again during this read; a document that
        fails its integrity check is counted as corrupt in its tier.
        """
        failed = self._failed_in_this_read()
        for slot, tier in self._info_slots:
            if path in slot.untrusted or slot in failed:
                continue
            try:
                document = slot.call(tier.get_info, self.target, path)
            except IntegrityError as exc:
                slot.corrupt(exc)
                continue
            except TierError:
                failed.add(slot)
                continue
            if document is not None:
                yield slot, document

    def _share_info(self, info: ObjectInfo) -> None:
        """Hand fresh object info to the tiers that share it, behind the read."""
        if not self._info_slots:
            return
        self._share_document(info.path, info_document(info, time.time()))

    def _share_document(self, path: str, document: bytes) -> None:
        """Store ``document`` under ``path`` in each tier that shares documents, behind the read."""
        previous = set_kind("metadata")  # carried into the fill jobs
        try:
            for slot, tier in self._info_slots:
                if path in slot.untrusted:
                    continue

                def job(slot: TierSlot = slot, tier: DocumentTier = tier) -> None:
                    with contextlib.suppress(TierError):
                        slot.call(tier.put_info, self.target, path, document, read=False)

                self.fills.submit(job, len(document))
        finally:
            set_kind(previous)

    def invalidate(self, path: str) -> None:
        """Forget what every reachable tier holds for ``path`` (info and blocks, all versions).

        A listing of its directory kept by this process is dropped too (a write of a Delta
        commit through this filesystem is seen by the next open here at once).
        """
        self.info_cache.discard(path)
        with self._listings_lock:
            self._listings.pop(path.rsplit("/", 1)[0], None)
        for slot in self.slots:
            try:
                slot.call(slot.tier.delete_object, self.target, path, read=False)
            except TierError:
                slot.untrusted.add(path)
                logger.warning(
                    "tier %r could not invalidate %r; it is bypassed for that path", slot.name, path
                )
            else:
                slot.untrusted.discard(path)

    def invalidate_all_info(self) -> None:
        """Forget all object info (blocks stay: they are keyed by version)."""
        self.info_cache.clear()

    # -- reads ---------------------------------------------------------------------------------

    def read_range(self, path: str, start: int | None, end: int | None) -> bytes:
        """Return ``[start, end)`` of the object at ``path`` (slice semantics), one version only.

        If the object changes during the read (S3 412), the info is refreshed and the read
        starts over on the new version, at most :data:`VERSION_RETRIES` times.
        """
        info = self.info_cache.peek(path)
        front = self._front
        # The hot path, written out flat (every call costs here): a known object, an explicit
        # in-bounds range inside one block that is in RAM. It counts an info hit and a memory hit
        # with one tally (``_fast_hits``). Anything else takes the general path, which counts the
        # info lookup, looks the block up again and counts the miss.
        if (
            info is not None
            and front is not None
            and start is not None
            and end is not None
            and 0 <= start < end <= info.size
        ):
            bs = self.block_size
            first, last = start // bs, (end - 1) // bs
            get, target, version = front.tier.get, self.target, info.version
            if first == last:
                key = _new_key(BlockKey, (target, path, version, bs, first))
                block = get(key)
                if block is not None:
                    shadow = self.shadow
                    if shadow is not None and (hash(key) & SHADOW_MASK) < shadow.threshold:
                        shadow.access(hash(key), len(block))
                    if (first + 1) * bs > info.metadata_from:
                        self._fast_meta.add(len(block))
                    else:
                        self._fast_data.add(len(block))
                    offset = first * bs
                    return block[start - offset : end - offset]
            else:
                blocks = []
                for index in range(first, last + 1):
                    block = get(_new_key(BlockKey, (target, path, version, bs, index)))
                    if block is None:
                        break
                    blocks.append(block)
                else:
                    self._count_fast_run(blocks, first, info.metadata_from // bs)
                    if self.shadow is not None:
                        for index, block in enumerate(blocks, first):
                            key = _new_key(BlockKey, (target, path, version, bs, index))
                            self._observe(key, len(block))
                    return _join(blocks, start - first * bs, end - last * bs)
        return self._read_general(path, start, end, info)

    def _read_general(
        self, path: str, start: int | None, end: int | None, info: ObjectInfo | None
    ) -> bytes:
        """The general path of :meth:`read_range`: counted, timed, every tier asked."""
        began = time.perf_counter()
        previous = set_kind("metadata")  # object info is metadata
        try:
            if info is None:
                self.info_cache.counters.add("misses")
            else:
                self.info_cache.counters.hit()
        finally:
            set_kind(previous)
        if self.first_minute is None and time.monotonic() - self._started >= self._first_window_s:
            self._freeze_first_minute()
        try:
            return self._read_range(path, start, end, info)
        finally:
            self.read_latency.observe(time.perf_counter() - began)

    def _observe(self, key: BlockKey, size: int) -> None:
        """Show one lookup of the front tier to the shadow cache."""
        shadow = self.shadow
        if shadow is not None:
            h = hash(key)
            if (h & SHADOW_MASK) < shadow.threshold:
                shadow.access(h, size)

    def _shadow_references(self) -> int:
        """Lookups of the front tier so far, every purpose (the shadow cache's stream)."""
        front = self._front
        if front is None:
            return 0
        total = self._fast_meta.totals()[0] + self._fast_data.totals()[0]
        for purpose in PURPOSES:
            counts = front.counters.snapshot(purpose)
            total += counts["hits"] + counts["misses"]
        return total

    def shadow_curves(self) -> dict[str, Any]:
        """The shadow cache's estimates at 0.25x to 16x of each sized tier (empty: no shadow)."""
        shadow = self.shadow
        if shadow is None:
            return {}
        mrc = shadow.mrc()
        tiers = {}
        for slot in self.slots:
            if not isinstance(slot.tier, SizedTier) or slot.tier.capacity_bytes <= 0:
                continue
            capacity = slot.tier.capacity_bytes
            tiers[slot.name] = {
                "capacity_bytes": capacity,
                "curve": [
                    {"scale": factor, "size_bytes": size, "hit_ratio": mrc.hit_ratio(size)}
                    for factor, size in zip(SHADOW_FACTORS, sizes_around(capacity), strict=True)
                ],
            }
        return {
            "rate": shadow.rate,
            "keys": len(shadow),
            "references": mrc.references,
            "tiers": tiers,
        }

    def _count_fast_run(self, blocks: list[bytes], first: int, first_meta: int) -> None:
        """Count a multi-block hot-path hit: an info hit, and memory hits per block class."""
        front = self._front
        assert front is not None
        previous = set_kind("metadata")
        try:
            self.info_cache.counters.hit()
            meta = blocks[max(0, first_meta - first) :]
            if meta:
                front.counters.hit(sum(map(len, meta)), len(meta))
            set_kind("data")
            data = blocks[: max(0, first_meta - first)]
            if data:
                front.counters.hit(sum(map(len, data)), len(data))
        finally:
            set_kind(previous)

    def prefetch(self, path: str, start: int | None, end: int | None) -> bytes:
        """Read ``[start, end)`` as :meth:`read_range` does, counted as prefetch, not demand.

        Everything the read causes (tier hits and misses, origin requests, fills) is counted in
        ``stats()["prefetch"]``.
        """
        with prefetching():
            info = self.info_cache.peek(path)
            previous = set_kind("metadata")
            try:
                if info is None:
                    self.info_cache.counters.add("misses")
                else:
                    self.info_cache.counters.hit()
            finally:
                set_kind(previous)
            return self._read_range(path, start, end, info)

    def seed_info(self, info: ObjectInfo) -> None:
        """Remember object info learnt elsewhere (a Delta log, a listing): no HEAD for it.

        Info already held for the path is kept: it came from the object store itself.
        """
        if self.info_cache.peek(info.path) is None:
            self.info_cache.put(info)

    # -- directory listings (Delta logs) ------------------------------------------------------

    def cached_listing(self, path: str, max_age_s: float) -> list[dict[str, Any]] | None:
        """Return a listing of ``path`` made at most ``max_age_s`` ago, or ``None``.

        From this process first, else from the tiers that share object info (Redis), where
        another process put it with :meth:`share_listing`. Only callers that accept a listing
        that old ask (``TIERCACHE_DELTA_LOG_TTL``); a listing is never reused otherwise.
        """
        if max_age_s <= 0:
            return None
        with self._listings_lock:
            held = self._listings.get(path)
        if held is not None and time.time() - held[1] <= max_age_s:
            self.info_cache.counters.add("listings_reused")
            return held[0]
        previous = set_kind("metadata")
        try:
            return self._shared_listing(path, max_age_s)
        finally:
            set_kind(previous)

    def _shared_listing(self, path: str, max_age_s: float) -> list[dict[str, Any]] | None:
        for slot, document in self._shared_documents(listing_key(path)):
            try:
                listed, entries, fetched_at = parse_listing_document(document)
            except ValueError as exc:
                slot.corrupt(exc)
                continue
            # Ages come from wall clocks: a writer whose clock runs ahead of ours makes its
            # listing look younger by the skew (as with shared object info).
            if listed != path or time.time() - fetched_at > max_age_s:
                continue
            self._keep_listing(path, entries, fetched_at)
            self.info_cache.counters.add("listings_reused")
            return entries
        return None

    def share_listing(self, path: str, entries: Sequence[Mapping[str, Any]]) -> None:
        """Keep a fresh listing of ``path`` for :meth:`cached_listing`, in this process and,
        behind the read, in the tiers that share object info."""
        fetched_at = time.time()
        self._keep_listing(path, [dict(entry) for entry in entries], fetched_at)
        self._share_document(listing_key(path), listing_document(path, entries, fetched_at))

    def _keep_listing(self, path: str, entries: list[dict[str, Any]], fetched_at: float) -> None:
        with self._listings_lock:
            if len(self._listings) >= _MAX_LISTINGS and path not in self._listings:
                self._listings.clear()  # a handful of Delta tables is the use: no LRU needed
            self._listings[path] = (entries, fetched_at)

    @contextlib.contextmanager
    def _one_read(self) -> Iterator[None]:
        """Scope of one read: a tier that fails once is not asked again during it.

        So a hung tier costs one time budget per read, not one per block: the breaker needs
        ``TIERCACHE_BREAKER_FAILURES`` reads to open, and until then no read pays twice.
        """
        scope = self._scope
        if getattr(scope, "failed", None) is not None:  # nested: the outer read owns it
            yield
            return
        scope.failed = set()
        try:
            yield
        finally:
            scope.failed = None

    def _failed_in_this_read(self) -> set[TierSlot]:
        failed: set[TierSlot] | None = getattr(self._scope, "failed", None)
        return failed if failed is not None else set()

    def _read_range(
        self, path: str, start: int | None, end: int | None, info: ObjectInfo | None
    ) -> bytes:
        if not self._lower:
            return self._read_range_scoped(path, start, end, info)
        with self._one_read():
            return self._read_range_scoped(path, start, end, info)

    def _read_range_scoped(
        self, path: str, start: int | None, end: int | None, info: ObjectInfo | None
    ) -> bytes:
        for _ in range(VERSION_RETRIES):
            if info is None and self._info_slots:
                info = self._shared_info(path)  # another pod may have fetched it already
            if info is None:
                if (
                    self.origin.can_discover
                    and start is not None
                    and end is not None
                    and 0 <= start < end
                ):
                    found = self._discover(path, start, end)
                    if isinstance(found, bytes):
                        return found
                    info = found
                else:
                    info = self._fetch_info(path)
                if info.raw.get("type", "file") != "file":
                    # Not a file (a directory, say): whatever the target does, tiercache does.
                    return bytes(self.origin.fs.cat_file(path, start=start, end=end))
            if start is not None and end is not None and 0 <= start <= end <= info.size:
                lo, hi = start, end  # the common case needs no normalising
            else:
                lo, hi = normalize_range(start, end, info.size)
            if lo == hi:
                return b""
            try:
                return self.read_pinned(info, lo, hi)
            except ObjectChangedError:
                self.origin.counters.add("changed")
                self.info_cache.discard(path)
                self.origin.forget(path)
                info = None
        raise ObjectChangedError(f"{path!r} changed {VERSION_RETRIES} times during one read")

    def read_pinned(self, info: ObjectInfo, start: int, end: int) -> bytes:
        """Return ``[start, end)`` (clipped to the size) of exactly the version in ``info``.

        Raises:
            ObjectChangedError: A block had to come from the origin and the object has changed.
        """
        if not self._lower:  # no tier that can fail: no scope to keep (the common hot path)
            return self._read_pinned_scoped(info, start, end)
        with self._one_read():
            return self._read_pinned_scoped(info, start, end)

    def _read_pinned_scoped(self, info: ObjectInfo, start: int, end: int) -> bytes:
        end = min(end, info.size)
        if start >= end:
            return b""
        bs = self.block_size
        first = start // bs
        if first == (end - 1) // bs:  # the common case: one block, one slice
            # tuple.__new__ skips NamedTuple's Python-level __new__ (half the cost, hot path).
            key = _new_key(BlockKey, (self.target, info.path, info.version, bs, first))
            block = self._lookup(key, info)
            if block is None:
                fetched = self._fetch(info, [key], start, end)
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
            block = self._lookup(key, info)
            if block is None:
                missing.append(key)
            else:
                blocks[key.block_index] = block
        if missing:
            fetched = self._fetch(info, missing, start, end)
            if isinstance(fetched, bytes):  # narrowed: [start, end) within the missing span
                lo, hi = self._narrowed_range(info, missing, start, end)
                return b"".join(
                    (self._slice(blocks, start, lo), fetched, self._slice(blocks, hi, end))
                )
            blocks.update(fetched)
        return _join(
            [blocks[key.block_index] for key in keys],
            start - first * bs,
            end - keys[-1].block_index * bs,
        )

    def _lookup(self, key: BlockKey, info: ObjectInfo) -> bytes | None:
        """Ask the tiers in order; promote a lower-tier hit upward. Failures are misses."""
        kind: BlockKind = (
            "metadata" if (key.block_index + 1) * key.block_size > info.metadata_from else "data"
        )
        previous = set_kind(kind)
        try:
            return self._lookup_kind(key, info, kind)
        finally:
            set_kind(previous)

    def _lookup_kind(self, key: BlockKey, info: ObjectInfo, kind: BlockKind) -> bytes | None:
        front = self._front
        if front is not None:
            block = front.tier.get(key)
            if self.shadow is not None:
                self._observe(
                    key, len(block) if block is not None else self._block_length(key, info)
                )
            if block is not None:
                front.counters.hit(len(block))
                return block
            front.counters.add("misses")
        if not self._lower:
            return None
        above: list[TierSlot] = []
        failed = self._failed_in_this_read()
        for slot in self._lower:
            if not slot.tier.accepts(kind) or info.path in slot.untrusted or slot in failed:
                continue
            try:
                block = cast("bytes | None", slot.call(slot.tier.get, key))
            except IntegrityError as exc:  # the tier has dropped the bad value
                slot.corrupt(exc)
                block = None
            except TierError:  # counted by the guard (errors, timeouts, rejected)
                failed.add(slot)
                block = None
            if block is not None and len(block) != self._block_length(key, info):
                slot.corrupt("a block of the wrong length")  # never served
                block = None
            if block is None:
                slot.counters.add("misses")
                above.append(slot)
                continue
            slot.counters.hit(len(block))
            if front is not None:
                front.tier.put(key, block)
                front.counters.add("bytes_written", len(block))
            for upper in above:
                self._fill(upper, key, block)
            return block
        return None

    def _block_length(self, key: BlockKey, info: ObjectInfo) -> int:
        lo, hi = block_bounds(key.block_index, key.block_size, info.size)
        return hi - lo

    def _store(self, key: BlockKey, block: bytes, kind: BlockKind | None, info: ObjectInfo) -> None:
        """Keep a block fetched from the origin: the memory tier now, slower tiers behind."""
        front = self._front
        if front is not None:
            front.tier.put(key, block)
            front.counters.add("bytes_written", len(block))
        if not self._lower:
            return
        if kind is None:
            kind = classify(info.path, key.block_index, key.block_size, info.size)
        for slot in self._lower:
            if slot.tier.accepts(kind) and info.path not in slot.untrusted:
                self._fill(slot, key, block)

    def _fill(self, slot: TierSlot, key: BlockKey, block: bytes) -> None:
        def job() -> None:
            try:
                slot.call(slot.tier.put, key, block, read=False)
            except TierError:
                return
            slot.counters.add("bytes_written", len(block))

        self.fills.submit(job, len(block))

    # -- origin fetches ------------------------------------------------------------------------
    #
    # A reader whose range is smaller than the blocks it misses does not fetch them in its own
    # thread: the fetch runs on the fetch pool while the reader waits until it is late
    # (tiercache.lateness); then the reader asks the origin for its own range, in its own thread
    # and under the deadline its read started with. The fetch goes on and, if it succeeds,
    # stores its blocks and resolves the single-flight as always. A reader that wants every
    # byte of what is fetched fetches in its own thread, as it always did.

    def _narrowed_range(
        self, info: ObjectInfo, missing: Sequence[BlockKey], start: int, end: int
    ) -> tuple[int, int]:
        """Return the part of the reader's ``[start, end)`` inside the missing blocks' span."""
        bs = self.block_size
        return (
            max(start, missing[0].block_index * bs),
            min(end, (missing[-1].block_index + 1) * bs, info.size),
        )

    def _slice(self, blocks: Mapping[int, bytes], start: int, end: int) -> bytes:
        """Return ``[start, end)`` of the object out of whole blocks (by index)."""
        if start >= end:
            return b""
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        parts = [blocks[index] for index in range(first, last + 1)]
        return _join(parts, start - first * bs, end - last * bs)

    def _fetch(
        self, info: ObjectInfo, missing: list[BlockKey], start: int, end: int
    ) -> dict[int, bytes] | bytes:
        """Fetch missing blocks: one origin request per contiguous run, single-flight per block.

        Returns the blocks by index; or, when the fetch was late and the reader read its own
        range instead (:meth:`_narrowed_range` of ``[start, end)``), those bytes.
        """
        bs = self.block_size
        span = (missing[0].block_index * bs, min((missing[-1].block_index + 1) * bs, info.size))
        narrowed = self._narrowed_range(info, missing, start, end)
        if narrowed == span:  # the reader wants every byte fetched: nothing to narrow
            return self._fetch_blocks(info, missing)
        deadline = time.monotonic() + self.origin.timeout_s
        mine, theirs = self._blocks_flight.claim(missing)
        result: dict[int, bytes] = {}
        runs: list[Future[dict[int, bytes]]] = []
        if mine:
            to_fetch = self._still_missing(mine, result)
            if to_fetch:
                template = to_fetch[0]
                for lo, hi in contiguous_runs(key.block_index for key in to_fetch):
                    runs.append(self._start_run(info, template, lo, hi, deadline))
        if theirs:
            self.flight.add("block_waits", len(theirs))
        pending: list[Future[Any]] = [*runs, *theirs.values()]
        if pending:
            # Counted as the run would be: metadata when all of its blocks are.
            previous = set_kind("metadata" if span[0] // bs >= info.metadata_from // bs else "data")
            try:
                data = self._await_or_narrow(
                    pending,
                    span[1] - span[0],
                    deadline,
                    lambda: self.origin.read(info, *narrowed, deadline=deadline),
                )
            finally:
                set_kind(previous)
            if data is not None:
                return data
        for run in runs:
            result.update(run.result())
        for key, future in theirs.items():
            result[key.block_index] = future.result()
        return result

    def _fetch_blocks(self, info: ObjectInfo, missing: list[BlockKey]) -> dict[int, bytes]:
        """Fetch missing blocks in this thread (the first run) and the run pool (the others)."""
        mine, theirs = self._blocks_flight.claim(missing)
        result: dict[int, bytes] = {}
        if mine:
            runs_of = self._still_missing(mine, result)
            try:
                runs = contiguous_runs(key.block_index for key in runs_of)
                template = runs_of[0] if runs_of else None
                if template is not None:
                    futures: list[Future[dict[int, bytes]]] = [
                        self._runs.submit(carry(self._fetch_run), info, template, lo, hi)
                        for lo, hi in runs[1:]
                    ]
                    result.update(self._fetch_run(info, template, *runs[0]))
                    for future in futures:
                        result.update(future.result())
            except BaseException as exc:
                for key in runs_of:
                    self._blocks_flight.fail(key, exc)
                raise
        if theirs:
            self.flight.add("block_waits", len(theirs))
        for key, pending in theirs.items():
            result[key.block_index] = pending.result()
        return result

    def _still_missing(self, mine: list[BlockKey], result: dict[int, bytes]) -> list[BlockKey]:
        """Return the claimed keys still to fetch; hand out those stored meanwhile.

        Another reader may have stored a block between our lookup and our claim.
        """
        front = self._front
        if front is None:
            return mine
        missing: list[BlockKey] = []
        for key in mine:
            block = front.tier.get(key)
            if block is None:
                missing.append(key)
            else:
                result[key.block_index] = block
                self._blocks_flight.resolve(key, block)
        return missing

    def _fetch_run(
        self,
        info: ObjectInfo,
        template: BlockKey,
        lo: int,
        hi: int,
        deadline: float | None = None,
    ) -> dict[int, bytes]:
        """Fetch blocks ``[lo, hi)`` with one origin request; store and hand out each block."""
        bs = self.block_size
        run_start = lo * bs
        # A run counts as metadata when all of its blocks are; a mixed run counts as data.
        previous = set_kind("metadata" if lo >= info.metadata_from // bs else "data")
        try:
            data = self.origin.read(info, run_start, min(hi * bs, info.size), deadline=deadline)
        finally:
            set_kind(previous)
        blocks: dict[int, bytes] = {}
        for index in range(lo, hi):
            block = data[(index - lo) * bs : (index - lo + 1) * bs] if hi - lo > 1 else data
            key = template._replace(block_index=index)
            self._store(key, block, None, info)
            blocks[index] = block
            self._blocks_flight.resolve(key, block)
        return blocks

    def _start_run(
        self, info: ObjectInfo, template: BlockKey, lo: int, hi: int, deadline: float
    ) -> Future[dict[int, bytes]]:
        """Fetch blocks ``[lo, hi)`` on the fetch pool; the run resolves or fails its keys."""
        keys = [template._replace(block_index=index) for index in range(lo, hi)]

        def give_up(exc: BaseException) -> None:
            for key in keys:
                self._blocks_flight.fail(key, exc)

        def run() -> dict[int, bytes]:
            try:
                return self._fetch_run(info, template, lo, hi, deadline)
            except BaseException as exc:
                give_up(exc)
                raise

        return self._in_background(carry(run), give_up)

    def _in_background(
        self, fn: Callable[[], _T], give_up: Callable[[BaseException], None]
    ) -> Future[_T]:
        """Run ``fn`` on the fetch pool; ``give_up`` if the pool drops it (closed meanwhile)."""
        try:
            future = self._fetches.submit(fn)
        except RuntimeError:  # the chain is closed: fetch in this thread, as before
            future = Future()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            return future

        def dropped(done: Future[_T]) -> None:
            if done.cancelled():
                give_up(OriginError("the filesystem was closed before the origin fetch started"))

        future.add_done_callback(dropped)
        return future

    def _await_or_narrow(
        self,
        pending: Sequence[Future[Any]],
        nbytes: int,
        deadline: float,
        narrow: Callable[[], bytes],
    ) -> bytes | None:
        """Wait for fetches of ``nbytes`` until they are late, then read the reader's own range.

        Returns the bytes ``narrow`` read, or None when every fetch arrived (their results are
        then ready). If the narrowed read fails, waits for the fetches until ``deadline``.

        Raises:
            Exception: A fetch failed (its error); or the narrowed read failed and the fetches
                did not arrive by the deadline (the narrowed read's error).
        """
        late_s = late_after_s(self.origin.timeout_s, self.origin.expected_s(nbytes))
        done, waiting = wait(pending, timeout=late_s, return_when=FIRST_EXCEPTION)
        failure = _first_failure(done)
        if failure is not None:
            raise failure
        if not waiting:
            return None
        self.origin.counters.add("narrowed_requests")
        try:
            data = narrow()
        except Exception as exc:
            remaining_s = max(0.0, deadline - time.monotonic())
            done, waiting = wait(pending, timeout=remaining_s, return_when=FIRST_EXCEPTION)
            failure = _first_failure(done)
            if failure is None and not waiting:
                return None  # the fetches arrived after all
            if failure is None or isinstance(exc, ObjectChangedError):
                raise  # nothing arrived in time, or the object changed: the reader's own error
            raise failure from exc
        self.origin.counters.add("narrowed")
        return data

    def _discover(self, path: str, start: int, end: int) -> bytes | ObjectInfo:
        """Cold read of an unknown object: one ranged GET gives the bytes and the info.

        Returns the bytes when the leader's read (or ours, or our narrowed read) covers the
        range, else the info.
        """
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        lo, hi = first * bs, (last + 1) * bs
        whole = (start, end) == (lo, hi)  # the reader wants every byte fetched
        deadline = time.monotonic() + self.origin.timeout_s

        def narrow() -> bytes:
            return self.origin.read_discover(path, start, end, deadline=deadline)[0]

        _mine, theirs = self._info_flight.claim([path])
        if theirs:
            self.flight.add("info_waits")
            pending = theirs[path]
            if not whole:
                data = self._await_or_narrow([pending], hi - lo, deadline, narrow)
                if data is not None:
                    return data
            found = pending.result()
            if isinstance(found, ObjectInfo):
                return found
            return self._serve_discovered(found, start, end)
        epoch = self.info_cache.epoch
        if whole:
            discovered = self._discover_blocks(path, first, last, epoch, None)
        else:
            future = self._in_background(
                carry(lambda: self._discover_blocks(path, first, last, epoch, deadline)),
                lambda exc: self._info_flight.fail(path, exc),
            )
            data = self._await_or_narrow([future], hi - lo, deadline, narrow)
            if data is not None:
                return data
            discovered = future.result()
        return self._serve_discovered(discovered, start, end)

    def _discover_blocks(
        self, path: str, first: int, last: int, epoch: int, deadline: float | None
    ) -> _Discovered:
        """The leader of a cold read: read blocks ``[first, last]``, keep the info and blocks."""
        bs = self.block_size
        try:
            data, info = self.origin.read_discover(
                path, first * bs, (last + 1) * bs, deadline=deadline
            )
            self.info_cache.counters.add("origin")
            self.info_cache.put(info, epoch)
            self._share_info(info)
            for offset in range(0, len(data), bs):
                index = first + offset // bs
                key = BlockKey(self.target, path, info.version, bs, index)
                self._store(key, data[offset : offset + bs], None, info)
        except BaseException as exc:
            self._info_flight.fail(path, exc)
            raise
        found = _Discovered(info, first * bs, data)
        self._info_flight.resolve(path, found)
        return found

    @staticmethod
    def _serve_discovered(found: _Discovered, start: int, end: int) -> bytes | ObjectInfo:
        lo, hi = normalize_range(start, end, found.info.size)
        if found.offset <= lo and hi <= found.offset + len(found.data):
            return found.data[lo - found.offset : hi - found.offset]
        return found.info

    # -- lifecycle and stats -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return the documented stats snapshot (see :mod:`tiercache.stats`)."""
        if self.first_minute is None and time.monotonic() - self._started >= self._first_window_s:
            self._freeze_first_minute()
        return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        meta_hits, meta_bytes = self._fast_meta.totals()
        data_hits, data_bytes = self._fast_data.totals()
        fast = {"metadata": (meta_hits, meta_bytes), "data": (data_hits, data_bytes)}
        tiers: dict[str, Any] = {}
        for slot in self.slots:
            entry: dict[str, Any] = self._tier_counts(slot, "demand", None, fast)
            entry["state"] = slot.state.value
            if slot.guard is not None:
                entry["transitions"] = slot.guard.breaker.transitions()
                entry["latency"] = slot.guard.latency.snapshot(None)
            if isinstance(slot.tier, ReportingTier):  # its own figures; the chain's counters win
                try:
                    extra = slot.tier.stats()
                except Exception:
                    extra = {}
                entry.update((k, v) for k, v in extra.items() if k not in entry)
            tiers[slot.name] = entry
        info = self.info_cache.counters.snapshot()
        classes = {
            purpose: {
                kind: {
                    "tiers": {
                        slot.name: self._tier_counts(slot, purpose, kind, fast)
                        for slot in self.slots
                    },
                    "origin": {
                        **self.origin.counters.snapshot(purpose, kind),
                        "latency": self.origin.latency.snapshot(purpose, kind),
                    },
                }
                for kind in KINDS
            }
            for purpose in PURPOSES
        }
        return {
            "tiers": tiers,
            "origin": {
                **self.origin.counters.snapshot(),
                "latency": self.origin.latency.snapshot(),
            },
            "info": {**info, "hits": info["hits"] + meta_hits + data_hits},
            "fills": self.fills.counters.snapshot(),
            "flight": self.flight.snapshot(),
            "reads": {"ram_hits": meta_hits + data_hits, "latency": self.read_latency.snapshot()},
            "block_size": self.block_size,
            "prefetch": {
                "tiers": {slot.name: slot.counters.prefetch_snapshot() for slot in self.slots},
                "origin": self.origin.counters.prefetch_snapshot(),
                "info": self.info_cache.counters.prefetch_snapshot(),
            },
            "classes": classes,
            "uptime_s": time.monotonic() - self._started,
            "first_minute": self.first_minute,
            "shadow": self.shadow_curves(),
        }

    def _tier_counts(
        self,
        slot: TierSlot,
        purpose: str,
        kind: str | None,
        fast: Mapping[str, tuple[int, int]],
    ) -> dict[str, Any]:
        """A tier's counters; the front tier's include the hot path's hits (demand only)."""
        entry: dict[str, Any] = slot.counters.snapshot(purpose, kind)
        if slot is self._front and purpose == "demand":
            for name in KINDS if kind is None else (kind,):
                entry["hits"] += fast[name][0]
                entry["bytes_read"] += fast[name][1]
        return entry

    def _freeze_first_minute(self) -> None:
        with self._freeze_lock:
            if self.first_minute is None:
                frozen = self._snapshot()
                frozen["window_s"] = self._first_window_s
                self.first_minute = frozen

    def close(self) -> None:
        """Stop the fill workers, the guards and the run pool; close every tier."""
        if self._closed.is_set():
            return
        self._closed.set()
        LIVE_CHAINS.discard(self)
        self.fills.close()
        self._runs.shutdown(wait=False, cancel_futures=True)
        self._fetches.shutdown(wait=False, cancel_futures=True)
        for slot in self.slots:
            if slot.guard is not None:
                slot.guard.close()
            try:
                slot.tier.close()
            except Exception:
                logger.warning("tier %r failed to close", slot.name, exc_info=True)
