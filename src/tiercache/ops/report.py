"""Human-readable views of stats snapshots (``tiercache stats FILE``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0 (no data is not a ratio of 0)."""
    return part / whole if whole else None


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """An aligned plain-text table: numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) if rows else False
        for i in range(len(header))
    ]
    lines = []
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def mean_ms(histogram: Mapping[str, Any]) -> float | None:
    """Mean of a histogram snapshot in milliseconds, None when empty."""
    count = histogram.get("count", 0)
    return histogram["sum"] / count * 1000 if count else None


def quantile_ms(histogram: Mapping[str, Any], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q``; None when empty."""
    count = histogram.get("count", 0)
    if not count:
        return None
    wanted = q * count
    seen = 0
    for bound, n in zip(histogram["bounds"], histogram["counts"], strict=False):
        seen += n
        if seen >= wanted:
            return float(bound) * 1000
    return float("inf")


def format_chain(entry: Mapping[str, Any]) -> str:
    """Render one chain of a stats file: tiers, origin, info, prefetch, latency."""
    stats = entry["stats"]
    lines = [
        f"chain {entry['chain']}  target {entry['target']}  uptime "
        f"{stats.get('uptime_s', 0):,.0f} s  block size {stats['block_size']:,} B"
    ]
    rows = []
    for name, tier in stats["tiers"].items():
        lookups = tier["hits"] + tier["misses"]
        latency = tier.get("latency")
        rows.append(
            [
                name,
                tier["state"],
                tier["hits"],
                tier["misses"],
                percent(ratio(tier["hits"], lookups)),
                tier["errors"],
                tier["timeouts"],
                tier["rejected"],
                tier.get("corrupt", 0),
                _mb(tier["bytes_read"]),
                _ms(mean_ms(latency) if latency else None),
            ]
        )
    header = ["tier", "state", "hits", "misses", "hit%", "errors", "timeouts", "rejected",
              "corrupt", "read MB", "mean ms"]  # fmt: skip
    lines += ["", table(rows, header)]
    origin = stats["origin"]
    reads = stats.get("reads", {})
    lines += [
        "",
        f"origin: {origin['requests']:,} requests, {_mb(origin['bytes'])} MB, "
        f"{origin['retries']:,} retries, {origin['errors']:,} errors, "
        f"{origin.get('narrowed', 0):,} narrowed, "
        f"mean {_ms(mean_ms(origin.get('latency', {})))} ms, "
        f"p99 <= {_ms(quantile_ms(origin.get('latency', {}), 0.99))} ms",
        f"reads: {reads.get('ram_hits', 0):,} RAM hits (hot path), "
        f"{reads.get('latency', {}).get('count', 0):,} others: mean "
        f"{_ms(mean_ms(reads.get('latency', {})))} ms, "
        f"p99 <= {_ms(quantile_ms(reads.get('latency', {}), 0.99))} ms",
        f"info: {stats['info']['hits']:,} hits, {stats['info']['misses']:,} misses "
        f"({stats['info']['shared_hits']:,} shared, {stats['info']['origin']:,} from origin)",
        f"fills: {_kv(stats['fills'])}; single-flight waits: {_kv(stats.get('flight', {}))}",
    ]
    prefetch = stats.get("prefetch", {}).get("origin", {})
    if prefetch.get("requests"):
        lines.append(
            f"prefetch: {prefetch['requests']:,} origin requests, {_mb(prefetch['bytes'])} MB"
        )
    return "\n".join(lines)


def format_document(document: Mapping[str, Any]) -> str:
    """Render a whole stats file."""
    head = (
        f"stats of pid {document.get('pid')} on {document.get('host')} "
        f"(tiercache {document.get('tiercache')}), {len(document['chains'])} chain(s)"
    )
    parts = [head, *(format_chain(chain) for chain in document["chains"])]
    return "\n\n".join(parts)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value:,.2f}"


def _kv(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "-"
