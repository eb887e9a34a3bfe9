"""The RAM tier's scan-resistant policy: byte-weighted S3-FIFO (``TIERCACHE_MEMORY_POLICY``).

S3-FIFO (Yang, Zhang, Qiu, Yue, Vinayak: "FIFO queues are all you need for cache eviction",
SOSP 2023) keeps three FIFO queues:

- **S**, the small queue (10 % of the budget): every new block enters here;
- **M**, the main queue (the other 90 %);
- **G**, the ghost queue: keys only (no data), as many as M holds blocks.

A hit sets a 2-bit frequency counter (0..3) and moves nothing. When the tier is over budget it
evicts from S while S holds more than its share, else from M. A block leaving S goes to M if it was
hit while in S (its counter is reset), otherwise it is dropped and its key remembered in G. A block
leaving M with a counter above 0 is put back at M's head with its counter decremented; with 0 it is
dropped. A miss on a key in G enters M directly: it was dropped from S too early.

A one-pass scan therefore only ever churns S (10 % of the budget): the blocks in M, hit at least
twice, stay. The budget counts payload bytes (blocks vary in size); S's share is in bytes too. One
departure from the paper: a block is never evicted from S while it is S's only block and M holds
blocks (with a budget of under ten blocks, S could not hold even the block just stored).

Library choice (issue 17): no PyPI package fitted. ``cachebox`` (Rust) is weighted
(``getsizeof``) but offers LRU, LFU, FIFO, RR and TTL policies, not S3-FIFO; ``theine`` (W-TinyLFU)
bounds entries, not bytes; ``s3fifo`` and ``s3fifo-cache`` are single early releases with no
byte weighting we could rely on. All would also need the per-object index kept beside them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from tiercache.protocol import BlockKey, BlockKind
from tiercache.tiers import _malloc
from tiercache.tiers.memory import _RELEASE_MIN_BYTES

#: The frequency counter saturates here (two bits).
MAX_FREQ = 3
#: Share of the budget (bytes) of the small queue S.
SMALL_SHARE = 0.10

# Where an entry is.
_SMALL, _MAIN, _GONE = 0, 1, -1


class _Entry:
    """One cached block: its data, counter and queue. ``data`` is None once it left the tier."""

    __slots__ = ("data", "freq", "key", "size", "where")

    def __init__(self, key: BlockKey, data: bytes, where: int) -> None:
        self.key = key
        self.data: bytes | None = data
        self.size = len(data)
        self.freq = 0
        self.where = where


class S3FifoTier:
    """A byte-bounded S3-FIFO cache of blocks, safe to share between threads.

    Same interface and budget rules as :class:`~tiercache.tiers.memory.MemoryTier` (the LRU):
    a block larger than the budget is not admitted; invalidation drops every version of an
    object; freed memory is handed back to the operating system every quarter of the budget
    evicted (at least 8 MiB).

    Args:
        capacity_bytes: The budget in bytes (> 0; ``TIERCACHE_MEMORY_BYTES``).
    """

    name = "memory"
    in_process = True
    policy = "s3fifo"

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be > 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._small_target = int(capacity_bytes * SMALL_SHARE)
        self._lock = threading.Lock()
        self._release_every = max(capacity_bytes // 4, _RELEASE_MIN_BYTES)
        self._reset()

    def _reset(self) -> None:
        self._entries: dict[BlockKey, _Entry] = {}
        # Oldest on the left. Entries deleted by invalidation stay until popped (``where`` is
        # _GONE, their data dropped); ``_stale`` counts them, and they are swept when many.
        self._small: deque[_Entry] = deque()
        self._main: deque[_Entry] = deque()
        self._ghost: OrderedDict[BlockKey, None] = OrderedDict()
        self._by_object: dict[tuple[str, str], set[BlockKey]] = {}
        self._small_bytes = self._main_bytes = self._used_bytes = 0
        self._small_count = self._main_count = self._stale = 0
        self._evicted_bytes = 0
        #: Blocks that entered M from S (hit in S), and from G (a ghost hit): for tests and stats.
        self.promoted = 0
        self.ghost_admitted = 0

    @property
    def used_bytes(self) -> int:
        """Bytes currently held."""
        return self._used_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def in_main(self, key: BlockKey) -> bool:
        """Whether ``key`` is held in the main queue M (for tests)."""
        entry = self._entries.get(key)
        return entry is not None and entry.where == _MAIN

    def in_ghost(self, key: BlockKey) -> bool:
        """Whether ``key`` is remembered in the ghost queue G (for tests)."""
        return key in self._ghost

    def stats(self) -> dict[str, object]:
        """Tier-specific figures, merged into ``stats()["tiers"]["memory"]``."""
        return {
            "used_bytes": self._used_bytes,
            "capacity_bytes": self.capacity_bytes,
            "policy": self.policy,
            "small_bytes": self._small_bytes,
            "main_bytes": self._main_bytes,
            "ghost_keys": len(self._ghost),
            "promoted": self.promoted,
            "ghost_admitted": self.ghost_admitted,
        }

    def accepts(self, kind: BlockKind, /) -> bool:
        """Take every class of block."""
        return True

    def get(self, key: BlockKey, /) -> bytes | None:
        """Return the block and count the hit, or ``None``.

        Lock-free: one dict lookup and an int store. A counter update lost to a race only
        makes one hit not count; an entry evicted meanwhile answers its data or ``None``.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.freq < MAX_FREQ:
            entry.freq += 1
        return entry.data

    def put(self, key: BlockKey, data: bytes, /) -> None:
        """Store a block (in S, or in M if G remembers it), evicting to stay within budget."""
        self._put(key, data, prefetched=False)

    def put_prefetched(self, key: BlockKey, data: bytes, /) -> None:
        """Store a block fetched ahead of demand (readahead, warmup): its first hit is the
        demand read it was fetched for, not a reuse, so it does not count (the counter starts
        at -1). A scan read through readahead therefore stays a one-hit wonder in S, as it
        would without readahead; a block read ahead and never read leaves without a ghost."""
        self._put(key, data, prefetched=True)

    def _put(self, key: BlockKey, data: bytes, /, *, prefetched: bool) -> None:
        size = len(data)
        if size > self.capacity_bytes:
            return
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:  # a new value for a held key: keep its place and counter
                delta = size - entry.size
                entry.data, entry.size = data, size
                self._used_bytes += delta
                if entry.where == _SMALL:
                    self._small_bytes += delta
                else:
                    self._main_bytes += delta
            else:
                self._admit(key, data, prefetched=prefetched)
            while self._used_bytes > self.capacity_bytes:
                if self._main_count == 0 or (
                    self._small_bytes > self._small_target and self._small_count > 1
                ):
                    self._evict_small()
                else:
                    self._evict_main()
            release = self._evicted_bytes >= self._release_every
            if release:
                self._evicted_bytes = 0
        if release:  # outside the lock: other readers and writers go on meanwhile
            _malloc.release()

    def _admit(self, key: BlockKey, data: bytes, *, prefetched: bool) -> None:
        """Add a new block: to M if G remembers its key, else to S (lock held)."""
        size = len(data)
        if key in self._ghost:
            del self._ghost[key]
            entry = _Entry(key, data, _MAIN)
            self._main.append(entry)
            self._main_bytes += size
            self._main_count += 1
            self.ghost_admitted += 1
        else:
            entry = _Entry(key, data, _SMALL)
            if prefetched:
                entry.freq = -1
            self._small.append(entry)
            self._small_bytes += size
            self._small_count += 1
        self._entries[key] = entry
        self._used_bytes += size
        self._by_object.setdefault((key.target, key.path), set()).add(key)

    def _evict_small(self) -> None:
        """Take S's oldest block: to M if it was hit, else out (its key to G). Lock held."""
        while True:
            entry = self._small.popleft()
            if entry.where == _SMALL:
                break
            self._stale -= 1
        self._small_bytes -= entry.size
        self._small_count -= 1
        if entry.freq > 0:
            entry.freq = 0
            entry.where = _MAIN
            self._main.append(entry)
            self._main_bytes += entry.size
            self._main_count += 1
            self.promoted += 1
            return
        self._drop(entry)
        if entry.freq < 0:
            return  # fetched ahead and never read: nothing says it was evicted too early
        ghost = self._ghost
        ghost[entry.key] = None
        # As many keys as M holds blocks (at the mean size of the blocks held now).
        limit = max(1, self._main_count, len(self._entries) * 9 // 10)
        while len(ghost) > limit:
            ghost.popitem(last=False)

    def _evict_main(self) -> None:
        """Take M's oldest block: back to M's head if hit since (counter - 1), else out."""
        main = self._main
        while True:
            entry = main.popleft()
            if entry.where != _MAIN:
                self._stale -= 1
                continue
            if entry.freq > 0:
                entry.freq -= 1
                main.append(entry)
                continue
            break
        self._main_bytes -= entry.size
        self._main_count -= 1
        self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        """Forget an entry that left both queues (lock held)."""
        del self._entries[entry.key]
        entry.where = _GONE
        entry.data = None
        self._used_bytes -= entry.size
        self._evicted_bytes += entry.size
        keys = self._by_object.get((entry.key.target, entry.key.path))
        if keys is not None:
            keys.discard(entry.key)
            if not keys:
                del self._by_object[(entry.key.target, entry.key.path)]

    def delete_object(self, target: str, path: str, /) -> None:
        """Drop every block of one object, all versions."""
        with self._lock:
            for key in self._by_object.pop((target, path), ()):
                entry = self._entries.pop(key, None)
                if entry is None:
                    continue
                if entry.where == _SMALL:
                    self._small_bytes -= entry.size
                    self._small_count -= 1
                else:
                    self._main_bytes -= entry.size
                    self._main_count -= 1
                self._used_bytes -= entry.size
                entry.where = _GONE
                entry.data = None
                self._stale += 1
            if self._stale > len(self._entries) + 64:
                self._small = deque(e for e in self._small if e.where == _SMALL)
                self._main = deque(e for e in self._main if e.where == _MAIN)
                self._stale = 0

    def held(self) -> dict[BlockKey, int]:
        """Every key held and its size (a consistent copy; for tests and checks)."""
        with self._lock:
            return {key: entry.size for key, entry in self._entries.items()}

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            for entry in self._entries.values():
                entry.data = None
            self._reset()

    def close(self) -> None:
        """Release the memory."""
        self.clear()
