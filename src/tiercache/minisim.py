"""S3-FIFO miss-ratio curves by miniature simulation (the shadow cache's model of the RAM policy).

SHARDS reuse distances (:mod:`tiercache.shadow`) give the hit ratio of an LRU at every size at
once; S3-FIFO has no such stack property, so its curve is estimated the way Waldspurger et al.
propose in "Cache Modeling and Optimization using Miniature Simulations" (USENIX ATC 2017): for
each size on the curve (0.25x to 16x the tier's budget), a small S3-FIFO cache is simulated on the
spatially sampled references alone (the shadow cache's sample: ``(h & MASK) < threshold``), its
budget scaled by the sampling rate ``R``. Its hit ratio on the sample estimates the full cache's.

Each simulation holds keys and sizes, never data. It is the policy of
:class:`tiercache.tiers.s3fifo.S3FifoTier`, rule for rule (the small queue's share, the 2-bit
counter, the ghost queue's bound, the newest block never evicted from S while M holds blocks).

Memory: a simulation holds at most the sampled keys that fit in its scaled budget, plus as many
ghost keys; the shadow cache tracks at most ``max_keys`` sampled keys, and when its rate drops
(:meth:`MiniSims.shrink`) every simulation forgets the keys no longer sampled and shrinks its
budget to the new rate, its counts rescaled as SHARDS rescales its histogram. So the whole model
is ``O(len(sizes) * max_keys)`` entries, whatever the stream.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Final

_MAX_FREQ: Final = 3
_SMALL_SHARE: Final = 0.10
_SMALL, _MAIN, _GONE = 0, 1, -1


class _Entry:
    __slots__ = ("freq", "h", "size", "where")

    def __init__(self, h: int, size: int, where: int) -> None:
        self.h, self.size, self.freq, self.where = h, size, 0, where


class SimS3Fifo:
    """A byte-weighted S3-FIFO over key hashes and sizes (no data, no lock)."""

    def __init__(self, capacity_bytes: float) -> None:
        self.capacity = capacity_bytes
        self._entries: dict[int, _Entry] = {}
        self._small: deque[_Entry] = deque()
        self._main: deque[_Entry] = deque()
        self._ghost: OrderedDict[int, None] = OrderedDict()
        self._small_bytes = self._main_bytes = self._used = 0
        self._small_count = self._main_count = 0

    def __len__(self) -> int:
        return len(self._entries) + len(self._ghost)

    def access(self, h: int, size: int) -> bool:
        """Reference key ``h`` of ``size`` bytes; return whether it hit (a miss stores it)."""
        entry = self._entries.get(h)
        if entry is not None:
            if entry.freq < _MAX_FREQ:
                entry.freq += 1
            return True
        if size > self.capacity:
            return False
        if h in self._ghost:
            del self._ghost[h]
            entry = _Entry(h, size, _MAIN)
            self._main.append(entry)
            self._main_bytes += size
            self._main_count += 1
        else:
            entry = _Entry(h, size, _SMALL)
            self._small.append(entry)
            self._small_bytes += size
            self._small_count += 1
        self._entries[h] = entry
        self._used += size
        self._fit()
        return False

    def _fit(self) -> None:
        small_target = self.capacity * _SMALL_SHARE
        while self._used > self.capacity:
            if self._main_count == 0 or (
                self._small_bytes > small_target and self._small_count > 1
            ):
                self._evict_small()
            else:
                self._evict_main()

    def _evict_small(self) -> None:
        entry = self._small.popleft()
        while entry.where != _SMALL:
            entry = self._small.popleft()
        self._small_bytes -= entry.size
        self._small_count -= 1
        if entry.freq > 0:
            entry.freq, entry.where = 0, _MAIN
            self._main.append(entry)
            self._main_bytes += entry.size
            self._main_count += 1
            return
        self._drop(entry)
        self._ghost[entry.h] = None
        limit = max(1, self._main_count, len(self._entries) * 9 // 10)
        while len(self._ghost) > limit:
            self._ghost.popitem(last=False)

    def _evict_main(self) -> None:
        while True:
            entry = self._main.popleft()
            if entry.where != _MAIN:
                continue
            if entry.freq > 0:
                entry.freq -= 1
                self._main.append(entry)
                continue
            break
        self._main_bytes -= entry.size
        self._main_count -= 1
        self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        del self._entries[entry.h]
        entry.where = _GONE
        self._used -= entry.size

    def shrink(self, threshold: int, capacity_bytes: float, mask: int) -> None:
        """Forget the keys with ``(h & mask) >= threshold``; take the new (smaller) budget."""
        for h, entry in list(self._entries.items()):
            if (h & mask) >= threshold:
                if entry.where == _SMALL:
                    self._small_bytes -= entry.size
                    self._small_count -= 1
                else:
                    self._main_bytes -= entry.size
                    self._main_count -= 1
                self._drop(entry)
        self._small = deque(e for e in self._small if e.where == _SMALL)
        self._main = deque(e for e in self._main if e.where == _MAIN)
        self._ghost = OrderedDict((h, None) for h in self._ghost if (h & mask) < threshold)
        self.capacity = capacity_bytes
        self._fit()


class MiniSims:
    """One :class:`SimS3Fifo` per cache size, fed the shadow cache's sampled references.

    Not thread-safe: the shadow cache calls it under its lock.

    Args:
        sizes_bytes: The full-scale cache sizes (e.g. 0.25x to 16x the RAM tier's budget).
        modulus: The sampling modulus ``P`` (``R = threshold / P``).
        threshold: The current sampling threshold.
    """

    def __init__(self, sizes_bytes: Sequence[int], *, modulus: int, threshold: int) -> None:
        self.sizes = [int(s) for s in sizes_bytes]
        self._modulus = modulus
        self._threshold = threshold
        rate = threshold / modulus
        self._sims = [SimS3Fifo(size * rate) for size in self.sizes]
        # Sampled references and hits per size, at the current rate (rescaled on shrink).
        self.sampled = 0.0
        self.hits = [0.0] * len(self.sizes)

    def __len__(self) -> int:
        """Keys held by all simulations (ghost keys included)."""
        return sum(len(sim) for sim in self._sims)

    def access(self, h: int, size: int) -> None:
        """Feed one sampled reference to every simulation."""
        self.sampled += 1
        hits = self.hits
        for index, sim in enumerate(self._sims):
            if sim.access(h, size):
                hits[index] += 1

    def shrink(self, threshold: int) -> None:
        """The rate dropped to ``threshold / P``: drop unsampled keys, scale budgets and counts."""
        factor = threshold / self._threshold
        self._threshold = threshold
        rate = threshold / self._modulus
        for sim, size in zip(self._sims, self.sizes, strict=True):
            sim.shrink(threshold, size * rate, self._modulus - 1)
        self.sampled *= factor
        self.hits = [hits * factor for hits in self.hits]

    def points(self, references: int | None) -> list[tuple[int, float]]:
        """``[(size, estimated hit ratio)]``; ``references``: every reference, if known.

        As SHARDS_adj: the shortfall of sampled references against ``references * R`` is
        counted as hits (it comes mostly from a very hot key being, or not being, sampled).
        """
        rate = self._threshold / self._modulus
        expected = references * rate if references else self.sampled
        if expected <= 0:
            return [(size, 0.0) for size in self.sizes]
        shortfall = expected - self.sampled
        return [
            (size, min(1.0, max(0.0, (hits + shortfall) / expected)))
            for size, hits in zip(self.sizes, self.hits, strict=True)
        ]


def interpolate(points: Sequence[tuple[int, float]], size_bytes: int) -> float:
    """The hit ratio at ``size_bytes`` on a curve of points: linear between, flat outside."""
    if not points:
        return 0.0
    if size_bytes <= points[0][0]:
        return points[0][1] * size_bytes / points[0][0] if points[0][0] else 0.0
    for (lo, low), (hi, high) in itertools.pairwise(points):
        if size_bytes <= hi:
            return low + (high - low) * (size_bytes - lo) / (hi - lo)
    return points[-1][1]
