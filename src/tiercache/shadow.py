"""A shadow cache: the miss-ratio curve of the block stream, in bounded memory (SHARDS).

:class:`ShadowCache` watches the stream of block references and estimates the hit ratio an LRU
cache would reach at *any* size, so that the operator can see what 0.25x to 16x the current RAM
(or disk) budget would buy without running those caches. It implements fixed-size SHARDS
(Waldspurger et al., "Efficient MRC Construction with SHARDS", FAST'15):

- **Spatial sampling.** A reference to a key with hash ``h`` is sampled iff
  ``(h & MASK) < threshold``; the sampling rate is ``R = threshold / MODULUS``. Every reference to a
  sampled key is sampled, so the reuse structure of the sampled keys is exact.
- **Reuse distance.** For a sampled reference, the distance is the bytes of the distinct sampled
  keys referenced since the previous reference to the same key, scaled by ``1/R``, plus the
  block's own size: an LRU cache of ``C`` bytes hits iff ``distance <= C`` (exact for
  :class:`tiercache.tiers.memory.MemoryTier`'s byte-bounded LRU when ``R = 1``). First references
  are cold: infinite distance. The distance is a Fenwick-tree query over access timestamps,
  ``O(log max_keys)``; timestamps are renumbered when the tree is full (amortized ``O(1)``).
- **Fixed size.** At most ``max_keys`` sampled keys are tracked. When one more would be tracked,
  the keys with the largest ``h & MASK`` are dropped, the threshold is lowered to that value,
  and the histogram gathered so far is rescaled by ``R_new / R_old`` (as if it had been sampled at
  the new rate throughout).
- **Adjustment** (SHARDS_adj). When the total number of references is known (:meth:`record`
  counts it, or pass ``references=``), the difference between the expected number of sampled
  references (``references * R``) and the histogram's total is added at distance zero: it
  corrects most of the error that comes from a very hot key being (or not being) sampled.

Memory is ``O(max_keys + bins)`` whatever the length of the stream: a dict, a heap and three
lists of about ``2 * max_keys`` entries for the sampled keys, and a histogram of distances in
units of ``unit_bytes`` (the block size): exact up to 255 units, then 64 log-spaced bins per
octave (each under 1.1 % wide), at most a few thousand bins in all. The histogram and the curve
read from it are :mod:`tiercache.mrc` (re-exported here); drawing curves is
:func:`tiercache.ops.plots.plot_curves`.

**Hot-path contract.** An unsampled reference must cost next to nothing, so the caller does the
check inline and calls :meth:`access` only for sampled keys::

    h = hash(key)                      # e.g. the BlockKey tuple; randomized per process: fine
    if (h & MASK) < shadow.threshold:  # one attribute read, an AND and a compare
        shadow.access(h, len(block))   # takes a lock; rare at low rates

``threshold`` is a plain int attribute, read without a lock. A reader that sees a stale value
may call :meth:`access` for a key that is no longer sampled: :meth:`access` checks again under
its lock and ignores it. Callers that check inline count the references themselves and pass a
``references`` callable (for example the memory tier's hits plus misses) so that the adjustment
can be applied; :meth:`record` does check, count and access in one call (a :class:`Tally` add
per reference).

Hash quality: CPython's tuple hash is linear in the last element, so the blocks of one object
(consecutive ``block_index``) fall on a low-discrepancy lattice of ``h & MASK`` values rather than
independently. Each key is still sampled with probability ``R`` (the estimate is unbiased); the
sampled blocks of one object are just spread more evenly than at random.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from tiercache.minisim import MiniSims
from tiercache.mrc import (
    FACTORS,
    SNAPSHOT_VERSION,
    MissRatioCurve,
    bin_bounds,
    bin_of,
    curve_from_snapshot,
    sizes_around,
)
from tiercache.stats import Tally

#: The modulus ``P`` of the sampling condition ``(h & MASK) < threshold`` (``R = threshold / P``).
MODULUS: Final = 1 << 24
#: ``MODULUS - 1``: ``h & MASK == h mod MODULUS`` for any int ``h``, negative ones included.
MASK: Final = MODULUS - 1


class ShadowCache:
    """Estimates the LRU hit ratio at every cache size from the live key stream (fixed-size SHARDS).

    Memory: ``O(max_keys + bins)``, independent of the stream's length (see the module docstring).
    Cost: an unsampled reference costs the caller's inline check only; a sampled one
    (:meth:`access`) takes the lock and ``O(log max_keys)`` work.

    Args:
        unit_bytes: The block size: the default size of a reference and the unit of the histogram.
        max_keys: Sampled keys tracked at most; the rate drops as needed to stay within it.
        rate: Initial sampling rate, in ``(0, 1]``.
        references: Returns the number of references of the stream so far, sampled or not (for
            callers that check inline and count elsewhere). Without it, the count of
            :meth:`record` calls is used.
        simulate_bytes: Also model S3-FIFO at 0.25x to 16x this budget by miniature simulation
            on the same sample (:mod:`tiercache.minisim`; :meth:`s3fifo_points`). None: LRU only.
    """

    def __init__(
        self,
        unit_bytes: int,
        *,
        max_keys: int = 8192,
        rate: float = 1.0,
        references: Callable[[], int] | None = None,
        simulate_bytes: int | None = None,
    ) -> None:
        if unit_bytes <= 0:
            raise ValueError(f"unit_bytes must be > 0, got {unit_bytes}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.unit_bytes = unit_bytes
        self.max_keys = max_keys
        self._initial_threshold = max(1, round(rate * MODULUS))
        self._references = references
        self._simulate = simulate_bytes
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        #: Keys with ``(h & MASK) < threshold`` are sampled. Read-only for callers; read it
        #: without a lock on the hot path.
        self.threshold: int = self._initial_threshold
        self._seen = Tally()
        self._sampled = 0  # sampled references, raw (not rescaled)
        # Histogram bin -> count, and cold references, both in units of ``1 / _scale``: a rate
        # change rescales everything by changing ``_scale`` alone, in O(1).
        self._hist: dict[int, float] = {}
        self._cold = 0.0
        self._scale = 1.0
        self._weight = 1.0  # 1 / _scale: what one sampled reference adds
        # Tracked keys: key -> timestamp slot. Per slot: the key and its size (or None / 0).
        self._slot_of: dict[int, int] = {}
        self._capacity = 2 * self.max_keys + 2
        self._slot_key: list[int | None] = [None] * self._capacity
        self._slot_size: list[int] = [0] * self._capacity
        self._tree: list[int] = [0] * (self._capacity + 1)  # Fenwick tree over slot sizes
        self._next = 0  # next free slot
        self._bytes = 0  # sum of the tracked keys' sizes (the tree's total)
        self._heap: list[tuple[int, int]] = []  # (-(h & MASK), h): the key to drop first on top
        self._sims: MiniSims | None = None
        if self._simulate:
            sizes = sizes_around(self._simulate)
            self._sims = MiniSims(sizes, modulus=MODULUS, threshold=self.threshold)

    def clear(self) -> None:
        """Forget everything (keys, histogram, the count of :meth:`record`): start a new curve.

        A ``references`` callable passed to the constructor is not reset: pass one that counts
        from the last :meth:`clear` (or none) if you clear.
        """
        with self._lock:
            self._reset()

    @property
    def rate(self) -> float:
        """The current sampling rate ``R``."""
        return self.threshold / MODULUS

    @property
    def references(self) -> int | None:
        """References seen, sampled or not: from ``references=``, else :meth:`record`'s count."""
        if self._references is not None:
            return self._references()
        count = self._seen.totals()[0]
        return count or None

    def __len__(self) -> int:
        """Return the number of sampled keys tracked (at most ``max_keys``)."""
        return len(self._slot_of)

    def record(self, h: int, size: int | None = None) -> None:
        """Count one reference to the key of hash ``h`` and sample it if its hash says so."""
        self._seen.add()
        if (h & MASK) < self.threshold:
            self.access(h, size)

    def access(self, h: int, size: int | None = None) -> None:  # noqa: PLR0912, PLR0915  # flat: hot
        """Record a reference to a sampled key (the caller checked ``(h & MASK) < threshold``).

        Args:
            h: The key's hash; keys with equal hashes are taken as one key.
            size: The block's size in bytes (default ``unit_bytes``).
        """
        if size is None:
            size = self.unit_bytes
        with self._lock:
            threshold = self.threshold
            if (h & MASK) >= threshold:
                return  # the threshold dropped since the caller's check
            self._sampled += 1
            if self._sims is not None:
                self._sims.access(h, size)
            slot_of = self._slot_of
            slot = slot_of.get(h)
            if slot is not None and slot == self._next - 1 and self._slot_size[slot] == size:
                # The key referenced last, again (a reader walking through one block): nothing
                # in between, the distance is the block itself, and the order does not change.
                index = bin_of(-(-size // self.unit_bytes))
                self._hist[index] = self._hist.get(index, 0.0) + self._weight
                return
            if self._next == self._capacity:
                self._renumber()
                slot = slot_of.get(h)
            now = self._next
            self._next = now + 1
            tree = self._tree
            capacity = self._capacity
            slot_key, slot_size = self._slot_key, self._slot_size
            slot_key[now] = h
            slot_size[now] = size
            slot_of[h] = now
            j = now + 1  # the next Fenwick node on the path up from ``now``
            if slot is None:
                self._cold += self._weight
                self._bytes += size
                while j <= capacity:
                    tree[j] += size
                    j += j & -j
                heapq.heappush(self._heap, (-(h & MASK), h))
                if len(slot_of) > self.max_keys:
                    self._shrink()
                return
            # Bytes of the distinct keys referenced since: the slots after ``slot``.
            i = slot + 1
            before = 0
            while i:
                before += tree[i]
                i &= i - 1
            old = slot_size[slot]
            since = self._bytes - before
            # Scaled by 1/R = MODULUS/threshold, plus the block itself; ceilings in ints.
            distance = -(-since * MODULUS // threshold) + size
            index = bin_of(-(-distance // self.unit_bytes))
            hist = self._hist
            hist[index] = hist.get(index, 0.0) + self._weight
            slot_key[slot] = None
            slot_size[slot] = 0
            self._bytes += size - old
            # Move the key's bytes from ``slot`` to ``now``: walk both update paths until they
            # meet; above that node the two changes add up to ``size - old`` (0: stop there).
            i = slot + 1
            while i != j and i <= capacity:
                if i < j:
                    tree[i] -= old
                    i += i & -i
                else:
                    tree[j] += size
                    j += j & -j
            delta = size - old if i == j else size
            if delta:
                while j <= capacity:
                    tree[j] += delta
                    j += j & -j

    def _shrink(self) -> None:
        """Drop the keys with the largest ``h & MASK`` and lower the rate to match (lock held)."""
        heap = self._heap
        old_threshold = self.threshold
        new_threshold = -heap[0][0]
        while heap and -heap[0][0] >= new_threshold:
            _, h = heapq.heappop(heap)
            slot = self._slot_of.pop(h)
            size = self._slot_size[slot]
            self._slot_key[slot] = None
            self._slot_size[slot] = 0
            self._bytes -= size
            i = slot + 1
            tree = self._tree
            while i <= self._capacity:
                tree[i] -= size
                i += i & -i
        self.threshold = max(1, new_threshold)
        if self._sims is not None:
            self._sims.shrink(self.threshold)
        scale = self.threshold / old_threshold
        self._scale *= scale
        self._weight = 1.0 / self._scale

    def _renumber(self) -> None:
        """Pack the tracked keys' timestamps into the first slots, keeping order (lock held)."""
        keys: list[int | None] = [None] * self._capacity
        sizes = [0] * self._capacity
        n = 0
        for key, size in zip(self._slot_key, self._slot_size, strict=True):
            if key is not None:
                keys[n] = key
                sizes[n] = size
                self._slot_of[key] = n
                n += 1
        tree = [0, *sizes]
        for i in range(1, self._capacity + 1):
            parent = i + (i & -i)
            if parent <= self._capacity:
                tree[parent] += tree[i]
        self._slot_key, self._slot_size, self._tree, self._next = keys, sizes, tree, n

    def mrc(self) -> MissRatioCurve:
        """Return the miss-ratio curve gathered so far (a consistent copy)."""
        references = self.references
        with self._lock:
            scale = self._scale
            bins = tuple((*bin_bounds(i), c * scale) for i, c in sorted(self._hist.items()) if c)
            cold = self._cold * scale
            return MissRatioCurve(self.unit_bytes, bins, cold, self.rate, references)

    @property
    def simulated_bytes(self) -> int | None:
        """The budget the S3-FIFO simulations run around (None: no simulation)."""
        return self._simulate

    def s3fifo_points(self) -> list[tuple[int, float]]:
        """S3-FIFO's estimated hit ratio at 0.25x to 16x ``simulate_bytes`` (empty: none)."""
        references = self.references
        with self._lock:
            if self._sims is None:
                return []
            return self._sims.points(references)

    def hit_ratio(self, size_bytes: int) -> float:
        """Estimate the fraction of all references an LRU cache of ``size_bytes`` would hit."""
        return self.mrc().hit_ratio(size_bytes)

    def curve(self, sizes_bytes: Sequence[int]) -> list[tuple[int, float]]:
        """Return ``[(size, estimated hit ratio), ...]`` for each size."""
        return self.mrc().curve(sizes_bytes)

    def snapshot(self, sizes_bytes: Sequence[int] = ()) -> dict[str, Any]:
        """Return a JSON-ready summary; :meth:`MissRatioCurve.from_snapshot` reads it back.

        Keys: ``version``, ``rate``, ``threshold``, ``modulus``, ``max_keys``, ``keys`` (sampled
        keys tracked), ``sampled`` (sampled references, not rescaled), ``references`` (every
        reference, or ``None``), ``histogram`` (:meth:`MissRatioCurve.to_dict`) and ``curve``:
        ``[[size, hit ratio], ...]`` at ``sizes_bytes``.
        """
        mrc = self.mrc()
        with self._lock:
            keys, sampled, threshold = len(self._slot_of), self._sampled, self.threshold
        return {
            "version": SNAPSHOT_VERSION,
            "rate": mrc.rate,
            "threshold": threshold,
            "modulus": MODULUS,
            "max_keys": self.max_keys,
            "keys": keys,
            "sampled": sampled,
            "references": mrc.references,
            "histogram": mrc.to_dict(),
            "curve": [[size, ratio] for size, ratio in mrc.curve(sizes_bytes)],
        }


__all__ = [
    "FACTORS",
    "MASK",
    "MODULUS",
    "SNAPSHOT_VERSION",
    "MissRatioCurve",
    "ShadowCache",
    "curve_from_snapshot",
    "sizes_around",
]
