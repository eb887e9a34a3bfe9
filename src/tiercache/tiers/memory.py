"""The RAM tier: a byte-bounded, thread-safe LRU of blocks, and the object-info table."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tiercache.blocks import is_immutable
from tiercache.protocol import BlockKey, BlockKind, ObjectInfo
from tiercache.stats import InfoCounters
from tiercache.tiers import _malloc

#: The least evicted bytes between two hand-backs of freed memory to the operating system.
_RELEASE_MIN_BYTES = 8 << 20


class MemoryTier:
    """A byte-bounded LRU of blocks, safe to share between threads.

    The budget counts block payload bytes. A block larger than the whole budget is not admitted
    (it would evict everything and then itself). The tier runs in process and is never slow, so
    the chain calls it without a guard (``in_process = True``). Every quarter of the budget
    evicted (at least 8 MiB), freed memory is handed back to the operating system
    (:mod:`tiercache.tiers._malloc`), so that malloc's per-thread arenas do not keep tens of MiB
    beyond the budget.

    Args:
        capacity_bytes: The budget in bytes (> 0; ``TIERCACHE_MEMORY_BYTES``).
    """

    name = "memory"
    in_process = True

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be > 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._blocks: OrderedDict[BlockKey, bytes] = OrderedDict()
        # (target, path) -> keys, so that invalidating an object frees all of its versions.
        self._by_object: dict[tuple[str, str], set[BlockKey]] = {}
        self._used_bytes = 0
        # Evicted bytes since memory was last handed back to the operating system.
        self._evicted_bytes = 0
        self._release_every = max(capacity_bytes // 4, _RELEASE_MIN_BYTES)

    @property
    def used_bytes(self) -> int:
        """Bytes currently held."""
        return self._used_bytes

    def __len__(self) -> int:
        return len(self._blocks)

    def stats(self) -> dict[str, object]:
        """Tier-specific figures, merged into ``stats()["tiers"]["memory"]``."""
        return {"used_bytes": self._used_bytes, "capacity_bytes": self.capacity_bytes}

    def accepts(self, kind: BlockKind, /) -> bool:
        """Take every class of block."""
        return True

    def get(self, key: BlockKey, /) -> bytes | None:
        """Return the block and mark it most recently used, or ``None``.

        Lock-free: ``OrderedDict.get`` and ``move_to_end`` are each atomic, and a block evicted
        between the two is still a valid answer (bytes are immutable). Writers hold the lock.
        """
        blocks = self._blocks
        data = blocks.get(key)
        if data is not None:
            try:  # noqa: SIM105  # contextlib.suppress costs a call on the hot path
                blocks.move_to_end(key)
            except KeyError:
                pass  # evicted meanwhile
        return data

    def put(self, key: BlockKey, data: bytes, /) -> None:
        """Store a block, evicting least recently used blocks to stay within the budget."""
        size = len(data)
        if size > self.capacity_bytes:
            return
        with self._lock:
            old = self._blocks.pop(key, None)
            if old is not None:
                self._used_bytes -= len(old)
            self._blocks[key] = data
            self._used_bytes += size
            self._by_object.setdefault((key.target, key.path), set()).add(key)
            while self._used_bytes > self.capacity_bytes:
                evicted, value = self._blocks.popitem(last=False)
                self._used_bytes -= len(value)
                self._evicted_bytes += len(value)
                self._unindex(evicted)
                del value  # freed now (unless a reader or a fill still holds it)
            release = self._evicted_bytes >= self._release_every
            if release:
                self._evicted_bytes = 0
        if release:  # outside the lock: other readers and writers go on meanwhile
            _malloc.release()

    def delete_object(self, target: str, path: str, /) -> None:
        """Drop every block of one object, all versions."""
        with self._lock:
            for key in self._by_object.pop((target, path), ()):
                value = self._blocks.pop(key, None)
                if value is not None:
                    self._used_bytes -= len(value)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._blocks.clear()
            self._by_object.clear()
            self._used_bytes = 0

    def close(self) -> None:
        """Release the memory."""
        self.clear()

    def _unindex(self, key: BlockKey) -> None:
        keys = self._by_object.get((key.target, key.path))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_object[(key.target, key.path)]


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

    def get(self, path: str) -> ObjectInfo | None:
        """Return fresh info for ``path``, or ``None`` (unknown or expired); count which."""
        info = self.peek(path)
        if info is None:
            self.counters.add("misses")
        else:
            self.counters.hit()
        return info

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
