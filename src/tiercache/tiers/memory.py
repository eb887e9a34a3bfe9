"""The RAM tier: a byte-bounded, thread-safe LRU of blocks."""

from __future__ import annotations

import threading
from collections import OrderedDict

from tiercache.protocol import BlockKey, BlockKind
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
    #: ``TIERCACHE_MEMORY_POLICY`` (the scan-resistant one: :mod:`tiercache.tiers.s3fifo`).
    policy = "lru"

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
        return {
            "used_bytes": self._used_bytes,
            "capacity_bytes": self.capacity_bytes,
            "policy": self.policy,
        }

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


def __getattr__(name: str) -> object:
    """``InfoCache`` moved to :mod:`tiercache.chain.info` (this path works for one release)."""
    if name == "InfoCache":
        import warnings

        from tiercache.chain.info import InfoCache

        warnings.warn(
            "tiercache.tiers.memory.InfoCache moved to tiercache.chain.info.InfoCache; "
            "the old path goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return InfoCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
