"""The miss-ratio curve a :class:`~tiercache.shadow.ShadowCache` gathers, and its histogram bins.

A curve is a histogram of reuse distances: ``count`` references at a distance (in units of the
block size) within ``[lo, hi)``, plus the cold references (infinite distance). An LRU cache of
``C`` bytes hits every reference at a distance of at most ``C``, so the hit ratio at any size is a
sum over the bins. Distances below 256 units get a bin each, so the curve is exact there; every
octave above is split into 64 log-spaced bins (each under 1.1 % wide), a few thousand bins in all
whatever the stream. The curve is what the stats file keeps and ``tiercache advise`` reads back
(:meth:`MissRatioCurve.from_snapshot`): apart from the live sampler, so that reading a snapshot
needs none of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Cache sizes of a default curve, as multiples of the current size.
FACTORS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Version of the :meth:`~tiercache.shadow.ShadowCache.snapshot` format.
SNAPSHOT_VERSION: Final = 1

# Histogram bins, in units of ``unit_bytes``: distances below 2**_EXACT_BITS units get a bin
# each; every octave above is split into 2**_SUB_BITS bins of equal width.
_EXACT_BITS: Final = 8
_SUB_BITS: Final = 6
_EXACT: Final = 1 << _EXACT_BITS
_SUB: Final = 1 << _SUB_BITS


def bin_of(units: int) -> int:
    """Return the histogram bin of a distance of ``units`` (>= 1)."""
    if units < _EXACT:
        return units
    bits = units.bit_length()
    shift = bits - 1 - _SUB_BITS
    return _EXACT + ((bits - 1 - _EXACT_BITS) << _SUB_BITS) + (units >> shift) - _SUB


def bin_bounds(index: int) -> tuple[int, int]:
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


__all__ = [
    "FACTORS",
    "SNAPSHOT_VERSION",
    "MissRatioCurve",
    "bin_bounds",
    "bin_of",
    "curve_from_snapshot",
    "sizes_around",
]
