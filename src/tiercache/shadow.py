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
octave (each under 1.1 % wide), at most a few thousand bins in all.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tiercache.stats import Tally

#: The modulus ``P`` of the sampling condition ``(h & MASK) < threshold`` (``R = threshold / P``).
MODULUS: Final = 1 << 24
#: ``MODULUS - 1``: ``h & MASK == h mod MODULUS`` for any int ``h``, negative ones included.
MASK: Final = MODULUS - 1
#: Cache sizes of a default curve, as multiples of the current size.
FACTORS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Version of the :meth:`ShadowCache.snapshot` format.
SNAPSHOT_VERSION: Final = 1

# Histogram bins, in units of ``unit_bytes``: distances below 2**_EXACT_BITS units get a bin
# each; every octave above is split into 2**_SUB_BITS bins of equal width.
_EXACT_BITS: Final = 8
_SUB_BITS: Final = 6
_EXACT: Final = 1 << _EXACT_BITS
_SUB: Final = 1 << _SUB_BITS


def _bin(units: int) -> int:
    """Return the histogram bin of a distance of ``units`` (>= 1)."""
    if units < _EXACT:
        return units
    bits = units.bit_length()
    shift = bits - 1 - _SUB_BITS
    return _EXACT + ((bits - 1 - _EXACT_BITS) << _SUB_BITS) + (units >> shift) - _SUB


def _bin_bounds(index: int) -> tuple[int, int]:
    """Return the distances ``[lo, hi)`` (units) of histogram bin ``index``."""
    if index < _EXACT:
        return index, index + 1
    octave, sub = divmod(index - _EXACT, _SUB)
    shift = _EXACT_BITS + octave - _SUB_BITS
    lo = (_SUB + sub) << shift
    return lo, lo + (1 << shift)


def sizes_around(current_bytes: int, factors: Sequence[float] = FACTORS) -> list[int]:
    """Return the cache sizes ``current_bytes * f`` for each factor (0.25x to 16x by default)."""
    return [max(1, round(current_bytes * f)) for f in factors]


@dataclass(frozen=True)
class MissRatioCurve:
    """An LRU miss-ratio curve, from a :class:`ShadowCache` or one of its snapshots.

    Attributes:
        unit_bytes: Size of one distance unit (the block size).
        bins: ``(lo, hi, count)``: ``count`` sampled references (rescaled to ``rate``) whose
            distance in units is in ``[lo, hi)``; sorted by ``lo``.
        cold: Sampled references with no previous reference (rescaled).
        rate: The sampling rate the counts are expressed at.
        references: Every reference of the stream, sampled or not; ``None`` if unknown (then no
            adjustment is made and ratios are relative to the sampled references).
    """

    unit_bytes: int
    bins: tuple[tuple[int, int, float], ...]
    cold: float
    rate: float
    references: int | None = None

    @property
    def sampled_total(self) -> float:
        """The histogram's total: rescaled sampled references, cold ones included."""
        return self.cold + sum(count for _, _, count in self.bins)

    @property
    def total(self) -> float:
        """The denominator of every ratio: ``references * rate`` if known, else the histogram's."""
        if self.references:
            return self.references * self.rate
        return self.sampled_total

    def hit_ratio(self, size_bytes: int) -> float:
        """Estimate the fraction of all references an LRU cache of ``size_bytes`` would hit.

        Within a log-spaced bin the distances are taken as evenly spread (exact below 256 units).
        """
        total = self.total
        if total <= 0 or size_bytes <= 0:
            return 0.0
        limit = size_bytes // self.unit_bytes  # hit iff distance (units) <= limit
        hits = total - self.sampled_total  # SHARDS_adj: the shortfall counts at distance 0
        for lo, hi, count in self.bins:
            if hi - 1 <= limit:
                hits += count
            elif lo <= limit:
                hits += count * (limit - lo + 1) / (hi - lo)
            else:
                break
        return min(1.0, max(0.0, hits / total))

    def miss_ratio(self, size_bytes: int) -> float:
        """Return ``1 - hit_ratio(size_bytes)``."""
        return 1.0 - self.hit_ratio(size_bytes)

    def curve(self, sizes_bytes: Sequence[int]) -> list[tuple[int, float]]:
        """Return ``[(size, hit ratio), ...]`` for each size."""
        return [(int(size), self.hit_ratio(size)) for size in sizes_bytes]

    def to_dict(self) -> dict[str, Any]:
        """Return the histogram in the compact JSON form used by :meth:`ShadowCache.snapshot`."""
        return {
            "unit_bytes": self.unit_bytes,
            "rate": self.rate,
            "references": self.references,
            "cold": self.cold,
            "bins": [[lo, hi, count] for lo, hi, count in self.bins],
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> MissRatioCurve:
        """Rebuild the curve from a :meth:`ShadowCache.snapshot` dict (as read back from JSON).

        Raises:
            ValueError: The dict is not a shadow-cache snapshot of a known version.
        """
        try:
            version = snapshot.get("version", SNAPSHOT_VERSION)
            if version != SNAPSHOT_VERSION:
                raise ValueError(f"unsupported shadow snapshot version {version!r}")
            hist = snapshot["histogram"]
            references = hist.get("references")
            bins = tuple((int(lo), int(hi), float(count)) for lo, hi, count in sorted(hist["bins"]))
            return cls(
                unit_bytes=int(hist["unit_bytes"]),
                bins=bins,
                cold=float(hist["cold"]),
                rate=float(hist["rate"]),
                references=None if references is None else int(references),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a shadow-cache snapshot: {exc!r}") from exc


def curve_from_snapshot(
    snapshot: Mapping[str, Any], sizes_bytes: Sequence[int]
) -> list[tuple[int, float]]:
    """Return ``[(size, hit ratio), ...]`` at ``sizes_bytes`` from a snapshot dict."""
    return MissRatioCurve.from_snapshot(snapshot).curve(sizes_bytes)


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
    """

    def __init__(
        self,
        unit_bytes: int,
        *,
        max_keys: int = 8192,
        rate: float = 1.0,
        references: Callable[[], int] | None = None,
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
            slot_of = self._slot_of
            slot = slot_of.get(h)
            if slot is not None and slot == self._next - 1 and self._slot_size[slot] == size:
                # The key referenced last, again (a reader walking through one block): nothing
                # in between, the distance is the block itself, and the order does not change.
                index = _bin(-(-size // self.unit_bytes))
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
            index = _bin(-(-distance // self.unit_bytes))
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
            bins = tuple((*_bin_bounds(i), c * scale) for i, c in sorted(self._hist.items()) if c)
            cold = self._cold * scale
            return MissRatioCurve(self.unit_bytes, bins, cold, self.rate, references)

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


def _format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:g} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plot_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    *,
    marks: Mapping[str, int] | None = None,
    title: str = "Estimated LRU miss ratio",
) -> None:
    """Draw miss-ratio curves to a PNG file.

    Args:
        curves: Label -> ``[(size in bytes, hit ratio), ...]`` (as :meth:`ShadowCache.curve`
            returns); drawn as miss ratio (``1 - hit ratio``) against size on a log scale.
        path: The PNG file to write.
        marks: Label -> size in bytes (e.g. a tier's current budget): a vertical line each.
        title: The plot's title.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'tiercache[plot]'``).
    """
    try:
        from matplotlib.colors import to_hex
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise ImportError(
            "plotting miss-ratio curves needs matplotlib: pip install 'tiercache[plot]'"
        ) from exc
    # A bare Figure renders with Agg and leaves pyplot's global state (and backend) alone.
    figure = Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    colors: dict[str, str] = {}
    for label, points in curves.items():
        ordered = sorted(points)
        (line,) = axes.plot(
            [size for size, _ in ordered],
            [1.0 - ratio for _, ratio in ordered],
            marker="o",
            label=label,
        )
        colors[label] = to_hex(line.get_color())
    for n, (label, size) in enumerate((marks or {}).items()):
        color = colors.get(label, f"C{n + len(curves)}")  # a curve's own colour if it has one
        axes.axvline(size, color=color, linestyle="--", label=f"{label}: current size")
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _format_bytes(x)))
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("cache size")
    axes.set_ylabel("miss ratio")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if curves or marks:
        axes.legend()
    figure.tight_layout()
    figure.savefig(str(path), format="png")


__all__ = [
    "FACTORS",
    "MASK",
    "MODULUS",
    "SNAPSHOT_VERSION",
    "MissRatioCurve",
    "ShadowCache",
    "curve_from_snapshot",
    "plot_curves",
    "sizes_around",
]
