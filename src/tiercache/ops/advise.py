"""The triggers of docs/triggers.md, evaluated on a stats snapshot (``tiercache advise``).

Each optional layer (more RAM, the disk tier, the Redis tier, warmup, hedged origin reads,
readahead) has one trigger: a threshold on quantities tiercache reports. :func:`advise` evaluates
every trigger on one chain's stats and returns a :class:`Verdict` per layer: the measured value,
the threshold, and whether the layer is called for (``yes``), not (``no``), earns its place where
it is already on (``keep``) or does not (``drop``), or whether the snapshot cannot tell yet
(``unknown``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tiercache.ops.report import percent, ratio

#: More RAM pays when doubling it gains this much hit ratio ...
RAM_GAIN = 0.05
#: ... and the origin is at least this share of read time.
ORIGIN_SHARE = 0.20
#: The RAM size suggested is the smallest on the curve within this of the 16x hit ratio.
RAM_KNEE = 0.01
#: The RAM policy (TIERCACHE_MEMORY_POLICY) pays when its curve is this far above the other's at
#: the current size (both estimated on the same sample, so most of their error is shared).
POLICY_MARGIN = 0.02
#: The disk tier pays when re-fetches of evicted blocks are this share of origin misses ...
DISK_REFETCH_SHARE = 0.30
#: ... and a configured disk tier earns its place when this share of its lookups hit ...
DISK_HIT_RATIO = 0.10
#: ... at no more than this fraction of the origin's mean latency.
DISK_LATENCY_VS_ORIGIN = 0.5
#: The Redis tier pays when cold metadata fetches are this share of the first minute's read time
REDIS_COLD_SHARE = 0.25
#: ... over at least this many metadata requests (a few files are not worth a server).
REDIS_MIN_REQUESTS = 20
#: A configured Redis tier earns its place when this share of its first-minute lookups hit.
REDIS_HIT_RATIO = 0.30
#: Warmup pays when cold metadata fetches are this share of the first minute's read time ...
WARMUP_COLD_SHARE = 0.10
#: ... over at least this many metadata requests.
WARMUP_MIN_REQUESTS = 10
#: Hedged reads pay when the origin's data requests have a tail: p99 above this multiple of p50 ...
HEDGE_TAIL_RATIO = 4.0
#: ... over at least this many requests ...
HEDGE_MIN_REQUESTS = 100
#: ... and, once hedges were sent, at least this share of them answered first.
HEDGE_WON_SHARE = 0.5
#: Readahead earns its place while this share of the blocks it fetched were read ...
READAHEAD_USED_SHARE = 0.5
#: ... over at least this many blocks read ahead.
READAHEAD_MIN_BLOCKS = 32


@dataclass(frozen=True)
class Verdict:
    """The evaluation of one trigger."""

    layer: str
    verdict: str  # yes | no | keep | drop | unknown
    measured: str
    threshold: str
    detail: str
    failure_mode: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


FAILURE_MODES = {
    "more RAM": "none at run time (RAM cannot fail); sized past the pod's memory limit, the pod "
    "is OOM-killed: grow the limit with it",
    "RAM policy": "none: both policies keep the same byte budget; s3fifo run on a workload that "
    "reads blocks twice in quick succession and then never again keeps them in its small queue "
    "only, and hits a little less than lru",
    "disk tier": "a full, read-only or removed emptyDir disables or bypasses the tier: reads go to "
    "the origin at no added latency; a hung disk costs one TIERCACHE_DISK_TIMEOUT, then the "
    "breaker opens",
    "Redis tier": "Redis down, hung or refusing: at most one TIERCACHE_REDIS_TIMEOUT per read "
    "until the breaker opens, then metadata comes from the origin; one WARNING per episode",
    "warmup": "a slow or failing store: warmup stops at TIERCACHE_WARM_TIME_LIMIT and reports; "
    "startup is delayed by at most that, never failed",
    "hedged reads": "an origin slow for every request: at most TIERCACHE_ORIGIN_HEDGE_BUDGET (5%) "
    "more requests, then the threshold climbs to the new pace and hedging stops",
    "readahead": "reads that look sequential but are not: at most one window "
    "(TIERCACHE_READAHEAD_BYTES) fetched in vain per seek, with at most half the origin's "
    "slots, so demand reads are never starved; random reads send what they did without it",
}


def curve_points(stats: Mapping[str, Any], tier: str) -> list[Mapping[str, Any]]:
    """The shadow cache's curve of ``tier`` (``[{"scale", "size_bytes", "hit_ratio"}]``)."""
    entry = (stats.get("shadow") or {}).get("tiers", {}).get(tier)
    return list(entry["curve"]) if entry else []


def _at(points: Sequence[Mapping[str, Any]], scale: float) -> float | None:
    for point in points:
        if abs(float(point["scale"]) - scale) < 1e-9:
            return float(point["hit_ratio"])
    return None


def _origin_share(stats: Mapping[str, Any]) -> float | None:
    reads = stats.get("reads", {}).get("latency", {})
    origin = stats.get("origin", {}).get("latency", {})
    share = ratio(origin.get("sum", 0.0), reads.get("sum", 0.0))
    return None if share is None else min(share, 1.0)


def _mean(histogram: Mapping[str, Any]) -> float | None:
    count = histogram.get("count", 0)
    return histogram["sum"] / count if count else None


def more_ram(stats: Mapping[str, Any]) -> tuple[Verdict, int | None]:
    """The RAM trigger, and the RAM size the curve suggests (None without a curve)."""
    points = curve_points(stats, "memory")
    threshold = (
        f"gain at 2x >= {percent(RAM_GAIN)} and origin >= {percent(ORIGIN_SHARE)} of read time"
    )
    now, doubled, most = _at(points, 1.0), _at(points, 2.0), _at(points, 16.0)
    share = _origin_share(stats)
    if now is None or doubled is None or most is None or share is None:
        detail = "the shadow cache has no estimate yet"
        mode = FAILURE_MODES["more RAM"]
        return Verdict(
            "more RAM", "unknown", "no curve or no reads yet", threshold, detail, mode
        ), None
    gain = doubled - now
    suggested = next(
        int(p["size_bytes"]) for p in points if float(p["hit_ratio"]) >= most - RAM_KNEE
    )
    verdict = "yes" if gain >= RAM_GAIN and share >= ORIGIN_SHARE else "no"
    measured = (
        f"hit ratio {percent(now)} now, {percent(doubled)} at 2x (gain {percent(gain)}); "
        f"origin {percent(share)} of read time"
    )
    detail = f"the curve flattens at {suggested / 2**20:,.0f} MiB ({percent(most)} at 16x)"
    return Verdict(
        "more RAM", verdict, measured, threshold, detail, FAILURE_MODES["more RAM"]
    ), suggested


def ram_policy(stats: Mapping[str, Any]) -> Verdict:
    """The RAM policy trigger: S3-FIFO vs LRU at the current size, from the shadow's curves."""
    mode = FAILURE_MODES["RAM policy"]
    entry = (stats.get("shadow") or {}).get("tiers", {}).get("memory") or {}
    curves = entry.get("curves") or {}
    running = str(entry.get("policy", "lru"))
    fifo, lru = _at(curves.get("s3fifo", []), 1.0), _at(curves.get("lru", []), 1.0)
    other = "lru" if running == "s3fifo" else "s3fifo"
    threshold = f"{other} >= {percent(POLICY_MARGIN)} above {running} at the current size"
    detail = f"TIERCACHE_MEMORY_POLICY={running}"
    if fifo is None or lru is None:
        return Verdict("RAM policy", "unknown", "no curves of both policies yet", threshold,
                       detail, mode)  # fmt: skip
    measured = f"hit ratio at 1x: s3fifo {percent(fifo)}, lru {percent(lru)}"
    if running == "s3fifo":
        verdict = "drop" if lru - fifo >= POLICY_MARGIN else "keep"
    else:
        verdict = "yes" if fifo - lru >= POLICY_MARGIN else "no"
    if verdict in ("drop", "yes"):
        detail += f"; set TIERCACHE_MEMORY_POLICY={other}"
    return Verdict("RAM policy", verdict, measured, threshold, detail, mode)


def disk_tier(stats: Mapping[str, Any]) -> Verdict:
    """The disk-tier trigger (or, when it is on, whether it earns its place)."""
    mode = FAILURE_MODES["disk tier"]
    disk = stats["tiers"].get("disk")
    if disk is not None:
        lookups = disk["hits"] + disk["misses"]
        hit_ratio = ratio(disk["hits"], lookups)
        disk_mean = _mean(disk.get("latency", {}))
        origin_mean = _mean(stats["classes"]["demand"]["data"]["origin"].get("latency", {}))
        threshold = (
            f"hit ratio >= {percent(DISK_HIT_RATIO)} at <= {DISK_LATENCY_VS_ORIGIN:g}x the "
            "origin's mean data latency"
        )
        if hit_ratio is None or disk_mean is None or origin_mean is None:
            return Verdict("disk tier", "unknown", "no lookups yet", threshold, "on", mode)
        earns = hit_ratio >= DISK_HIT_RATIO and disk_mean <= DISK_LATENCY_VS_ORIGIN * origin_mean
        measured = (
            f"hit ratio {percent(hit_ratio)}, mean {disk_mean * 1000:.2f} ms vs origin "
            f"{origin_mean * 1000:.2f} ms"
        )
        return Verdict("disk tier", "keep" if earns else "drop", measured, threshold, "on", mode)
    points = curve_points(stats, "memory")
    threshold = (
        f"re-fetches of evicted blocks >= {percent(DISK_REFETCH_SHARE)} of misses and origin "
        f">= {percent(ORIGIN_SHARE)} of read time"
    )
    now, most = _at(points, 1.0), _at(points, 16.0)
    share = _origin_share(stats)
    if now is None or most is None or share is None or now >= 1.0:
        return Verdict("disk tier", "unknown", "no curve or no misses yet", threshold, "off", mode)
    refetch = (most - now) / (1.0 - now)
    verdict = "yes" if refetch >= DISK_REFETCH_SHARE and share >= ORIGIN_SHARE else "no"
    measured = (
        f"{percent(refetch)} of misses would hit in 16x RAM (re-fetches); origin "
        f"{percent(share)} of read time"
    )
    return Verdict("disk tier", verdict, measured, threshold, "off", mode)


def _cold_metadata(stats: Mapping[str, Any]) -> tuple[float | None, int]:
    """First minute: the metadata origin time's share of read time, and its request count."""
    first = stats.get("first_minute")
    if not first:
        return None, 0
    meta = first["classes"]["demand"]["metadata"]["origin"]
    reads = first.get("reads", {}).get("latency", {})
    share = ratio(meta.get("latency", {}).get("sum", 0.0), reads.get("sum", 0.0))
    return (None if share is None else min(share, 1.0)), int(meta["requests"])


def redis_tier(stats: Mapping[str, Any]) -> Verdict:
    """The Redis-tier trigger (or, when it is on, whether it earns its place)."""
    mode = FAILURE_MODES["Redis tier"]
    share, requests = _cold_metadata(stats)
    redis = stats["tiers"].get("redis")
    first = stats.get("first_minute")
    if redis is not None:
        threshold = f"first-minute hit ratio >= {percent(REDIS_HIT_RATIO)}"
        if not first or "redis" not in first["tiers"]:
            return Verdict("Redis tier", "unknown", "first minute not over", threshold, "on", mode)
        tier = first["tiers"]["redis"]
        hit_ratio = ratio(tier["hits"], tier["hits"] + tier["misses"])
        if hit_ratio is None:
            return Verdict("Redis tier", "unknown", "no lookups", threshold, "on", mode)
        verdict = "keep" if hit_ratio >= REDIS_HIT_RATIO else "drop"
        lookups = tier["hits"] + tier["misses"]
        measured = f"first-minute hit ratio {percent(hit_ratio)} over {lookups:,} lookups"
        return Verdict("Redis tier", verdict, measured, threshold, "on", mode)
    threshold = (
        f"cold metadata fetches >= {percent(REDIS_COLD_SHARE)} of first-minute read time, "
        f">= {REDIS_MIN_REQUESTS} requests"
    )
    if share is None:
        return Verdict("Redis tier", "unknown", "first minute not over", threshold, "off", mode)
    verdict = "yes" if share >= REDIS_COLD_SHARE and requests >= REDIS_MIN_REQUESTS else "no"
    measured = f"{percent(share)} of first-minute read time, {requests:,} metadata requests"
    detail = "off; pays when pods start often (deploys, autoscaling) and share tables"
    return Verdict("Redis tier", verdict, measured, threshold, detail, mode)


def warmup(stats: Mapping[str, Any]) -> Verdict:
    """The warmup trigger."""
    mode = FAILURE_MODES["warmup"]
    share, requests = _cold_metadata(stats)
    threshold = (
        f"cold metadata fetches >= {percent(WARMUP_COLD_SHARE)} of first-minute read time, "
        f">= {WARMUP_MIN_REQUESTS} requests"
    )
    prefetched = stats.get("prefetch", {}).get("origin", {}).get("requests", 0)
    detail = f"warmup ran ({prefetched:,} prefetch requests)" if prefetched else "no warmup ran"
    if share is None:
        return Verdict("warmup", "unknown", "first minute not over", threshold, detail, mode)
    verdict = "yes" if share >= WARMUP_COLD_SHARE and requests >= WARMUP_MIN_REQUESTS else "no"
    measured = f"{percent(share)} of first-minute read time, {requests:,} metadata requests"
    return Verdict("warmup", verdict, measured, threshold, detail, mode)


def quantile(histogram: Mapping[str, Any], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile of a latency histogram (the last
    bound for the bucket above it); None when it is empty."""
    counts, bounds = histogram.get("counts") or [], histogram.get("bounds") or []
    total = sum(counts)
    if not total or not bounds:
        return None
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= q * total:
            return float(bounds[min(index, len(bounds) - 1)])
    return float(bounds[-1])


def hedged_reads(stats: Mapping[str, Any]) -> Verdict:
    """The hedging trigger: the tail of the origin's data requests, and whether hedges win."""
    mode = FAILURE_MODES["hedged reads"]
    origin = stats.get("origin", {})
    data = stats.get("classes", {}).get("demand", {}).get("data", {}).get("origin", origin)
    latency = data.get("latency", {})
    p50, p99 = quantile(latency, 0.5), quantile(latency, 0.99)
    requests = int(latency.get("count", 0))
    hedges, won = int(origin.get("hedges", 0)), int(origin.get("hedges_won", 0))
    threshold = (
        f"origin data p99 > {HEDGE_TAIL_RATIO:g}x p50 over >= {HEDGE_MIN_REQUESTS} requests; "
        f"once hedging, >= {percent(HEDGE_WON_SHARE)} of hedges answer first"
    )
    detail = f"{hedges:,} hedges sent, {won:,} answered first"
    if p50 is None or p99 is None or requests < HEDGE_MIN_REQUESTS:
        measured = f"{requests:,} origin data requests"
        return Verdict("hedged reads", "unknown", measured, threshold, detail, mode)
    tail = p99 / p50
    measured = f"p99 {p99 * 1000:g} ms = {tail:.1f}x p50 ({p50 * 1000:g} ms) over {requests:,}"
    if hedges:
        share = won / hedges
        verdict = "keep" if share >= HEDGE_WON_SHARE else "drop"
        measured += f"; {percent(share)} of hedges answered first"
        return Verdict("hedged reads", verdict, measured, threshold, detail, mode)
    verdict = "yes" if tail > HEDGE_TAIL_RATIO else "no"
    if verdict == "yes":
        detail += "; is TIERCACHE_ORIGIN_HEDGE off? (on by default)"
    return Verdict("hedged reads", verdict, measured, threshold, detail, mode)


def readahead(stats: Mapping[str, Any]) -> Verdict:
    """The readahead trigger: the share of the blocks read ahead that the reader then read."""
    mode = FAILURE_MODES["readahead"]
    threshold = (
        f">= {percent(READAHEAD_USED_SHARE)} of blocks read ahead then read, over >= "
        f"{READAHEAD_MIN_BLOCKS} blocks"
    )
    counts = stats.get("readahead")
    if not counts:
        return Verdict("readahead", "unknown", "no readahead stats", threshold, "", mode)
    if not counts.get("budget_bytes"):
        detail = (
            "readahead is off (TIERCACHE_READAHEAD_BYTES=0, no RAM tier, or one origin slot); "
            "turn it on if open files are read front to back (the stats cannot tell while off)"
        )
        return Verdict("readahead", "unknown", "off", threshold, detail, mode)
    blocks, hits, wasted = counts["blocks"], counts["hits"], counts["wasted"]
    origin = stats.get("prefetch", {}).get("origin", {})
    seconds = origin.get("latency", {}).get("sum", 0.0)
    speed = ratio(origin.get("bytes", 0) / 1e6, seconds)
    detail = f"{blocks:,} blocks read ahead, {hits:,} read, {wasted:,} never read" + (
        "" if speed is None else f"; {speed:.0f} MB/s per readahead request"
    )
    if blocks < READAHEAD_MIN_BLOCKS or hits + wasted == 0:
        measured = f"{blocks:,} blocks read ahead"
        return Verdict("readahead", "unknown", measured, threshold, detail, mode)
    share = hits / (hits + wasted)
    verdict = "keep" if share >= READAHEAD_USED_SHARE else "drop"
    if verdict == "drop":
        detail += "; reads look sequential but are not: TIERCACHE_READAHEAD_BYTES=0"
    measured = f"{percent(share)} of blocks read ahead then read"
    return Verdict("readahead", verdict, measured, threshold, detail, mode)


def advise(stats: Mapping[str, Any]) -> tuple[list[Verdict], int | None]:
    """Evaluate every trigger on one chain's stats; also return the suggested RAM size."""
    ram, suggested = more_ram(stats)
    verdicts = [
        ram,
        ram_policy(stats),
        disk_tier(stats),
        redis_tier(stats),
        warmup(stats),
        hedged_reads(stats),
        readahead(stats),
    ]
    return verdicts, suggested


def plot(stats_list: Sequence[Mapping[str, Any]], path: str) -> None:
    """Draw the miss-ratio curves of every chain's tiers to a PNG (``tiercache advise --plot``).

    Raises:
        ImportError: matplotlib is not installed (``pip install 'tiercache[plot]'``).
        ValueError: No chain has a curve yet.
    """
    from tiercache.ops.plots import plot_curves

    curves: dict[str, list[tuple[int, float]]] = {}
    marks: dict[str, int] = {}
    for index, stats in enumerate(stats_list):
        suffix = f" (chain {index})" if len(stats_list) > 1 else ""
        for tier, entry in ((stats.get("shadow") or {}).get("tiers") or {}).items():
            label = f"{tier}{suffix}"
            curves[label] = [(int(p["size_bytes"]), float(p["hit_ratio"])) for p in entry["curve"]]
            marks[label] = int(entry["capacity_bytes"])
    if not curves:
        raise ValueError("no miss-ratio curve in the stats file (is the shadow cache off?)")
    plot_curves(curves, path, marks=marks, title="Estimated miss ratio by tier size")
