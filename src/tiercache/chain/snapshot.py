"""The chain's stats snapshot (documented in :mod:`tiercache.stats`) and the shadow curves.

Built from the counters the chain, its tiers' guards, the origin, the fill queue and the info
table keep. The front tier's entry adds the hot path's hits, which the chain tallies apart
(without a lock) by block class.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from tiercache.context import KINDS, PURPOSES
from tiercache.fills import FillQueue
from tiercache.protocol import Origin, ReportingTier, SizedTier
from tiercache.readahead import Readahead
from tiercache.shadow import FACTORS as SHADOW_FACTORS
from tiercache.shadow import ShadowCache, sizes_around
from tiercache.stats import FlightCounters, Histogram, Tally

from .info import InfoCache
from .slots import TierSlot

Fast = Mapping[str, tuple[int, int]]


class Counted(Protocol):
    """What a snapshot is made of: the parts of a :class:`~tiercache.chain.TierChain`."""

    slots: list[TierSlot]
    front: TierSlot | None
    origin: Origin
    info_table: InfoCache
    fills: FillQueue
    flight: FlightCounters
    read_latency: Histogram
    fast_meta: Tally
    fast_data: Tally
    block_size: int
    started: float
    first_minute: dict[str, Any] | None
    shadow: ShadowCache | None
    readahead: Readahead


def snapshot(chain: Counted) -> dict[str, Any]:
    """Return the documented stats snapshot of ``chain``."""
    meta_hits, meta_bytes = chain.fast_meta.totals()
    data_hits, data_bytes = chain.fast_data.totals()
    fast = {"metadata": (meta_hits, meta_bytes), "data": (data_hits, data_bytes)}
    front = chain.front
    tiers: dict[str, Any] = {}
    for slot in chain.slots:
        entry: dict[str, Any] = tier_counts(slot, front, "demand", None, fast)
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
    origin = chain.origin
    info = chain.info_table.counters.snapshot()
    classes = {
        purpose: {
            kind: {
                "tiers": {
                    slot.name: tier_counts(slot, front, purpose, kind, fast) for slot in chain.slots
                },
                "origin": {
                    **origin.counters.snapshot(purpose, kind),
                    "latency": origin.latency.snapshot(purpose, kind),
                },
            }
            for kind in KINDS
        }
        for purpose in PURPOSES
    }
    return {
        "tiers": tiers,
        "origin": {**origin.counters.snapshot(), "latency": origin.latency.snapshot()},
        "info": {**info, "hits": info["hits"] + meta_hits + data_hits},
        "fills": chain.fills.counters.snapshot(),
        "flight": chain.flight.snapshot(),
        "reads": {"ram_hits": meta_hits + data_hits, "latency": chain.read_latency.snapshot()},
        "block_size": chain.block_size,
        "prefetch": {
            "tiers": {
                slot.name: _with_lookups(slot.counters.prefetch_snapshot()) for slot in chain.slots
            },
            "origin": origin.counters.prefetch_snapshot(),
            "info": chain.info_table.counters.prefetch_snapshot(),
        },
        "readahead": chain.readahead.snapshot(),
        "classes": classes,
        "uptime_s": time.monotonic() - chain.started,
        "first_minute": chain.first_minute,
        "shadow": shadow_curves(chain),
    }


def tier_counts(
    slot: TierSlot, front: TierSlot | None, purpose: str, kind: str | None, fast: Fast
) -> dict[str, Any]:
    """A tier's counters; the front tier's include the hot path's hits (demand only)."""
    entry: dict[str, Any] = slot.counters.snapshot(purpose, kind)
    if slot is front and purpose == "demand":
        for name in KINDS if kind is None else (kind,):
            entry["hits"] += fast[name][0]
            entry["bytes_read"] += fast[name][1]
    return _with_lookups(entry)


def _with_lookups(entry: dict[str, Any]) -> dict[str, Any]:
    """Add ``lookups``: the blocks the chain asked the tier for (hits + misses)."""
    entry["lookups"] = entry["hits"] + entry["misses"]
    return entry


def shadow_curves(chain: Counted) -> dict[str, Any]:
    """The shadow cache's estimates at 0.25x to 16x of each sized tier (empty: no shadow)."""
    shadow = chain.shadow
    if shadow is None:
        return {}
    mrc = shadow.mrc()
    tiers: dict[str, Any] = {}
    for slot in chain.slots:
        if not isinstance(slot.tier, SizedTier) or slot.tier.capacity_bytes <= 0:
            continue
        capacity = slot.tier.capacity_bytes
        sizes = sizes_around(capacity)
        lru = [mrc.hit_ratio(size) for size in sizes]
        entry: dict[str, Any] = {"capacity_bytes": capacity, "curve": _points(sizes, lru)}
        if slot is chain.front and shadow.simulated_bytes == capacity:
            # The RAM tier: both policies' curves; "curve" is the one of the policy it runs.
            fifo = [ratio for _, ratio in shadow.s3fifo_points()]
            policy = str(getattr(slot.tier, "policy", "lru"))
            entry["policy"] = policy
            entry["curves"] = {"lru": _points(sizes, lru), "s3fifo": _points(sizes, fifo)}
            entry["curve"] = entry["curves"].get(policy, entry["curve"])
        tiers[slot.name] = entry
    return {"rate": shadow.rate, "keys": len(shadow), "references": mrc.references, "tiers": tiers}


def _points(sizes: list[int], ratios: list[float]) -> list[dict[str, float]]:
    return [
        {"scale": factor, "size_bytes": size, "hit_ratio": ratio}
        for factor, size, ratio in zip(SHADOW_FACTORS, sizes, ratios, strict=True)
    ]
