"""The demo's result table, for people (``--json`` prints the report itself)."""

from __future__ import annotations

from typing import Any

LEGEND = (
    "direct: deltalake's own reader, no tiercache; native direct: DataFusion's own Parquet",
    "reader on the store, no tiercache (a new session: it keeps nothing); cold: register_delta,",
    "DataFusion reading through tiercache's gateway, every tier empty; warm: the same query on",
    "it again. open ms: opening the table (reading the Delta log: through the gateway's tiers on",
    "cold; warm reuses it). latency: the SQL alone. origin req: requests to the store for data",
    "files (direct phases: counted at the proxy). hit/miss: blocks found / not found in the",
    "gateway's tiers.",
)


def _tier_cell(phase: dict[str, Any], tier: str) -> str:
    entry = phase["tiers"].get(tier)
    if entry is None:
        return "-"
    return f"{entry['hits']}/{entry['misses']}"


def format_table(report: dict[str, Any]) -> str:
    """Return the human-readable result table."""
    tiers = list(report["tiers"])
    header = ["query", "phase", "open ms", "latency ms", "rows", "origin req", "origin KiB"] + [
        f"{tier} hit/miss" for tier in tiers
    ]
    lines: list[list[str]] = []
    for query in report["queries"]:
        for phase in query["phases"]:
            lines.append(
                [
                    query["name"],
                    phase["phase"],
                    f"{phase['open_ms']:.1f}" if phase["open_ms"] else "-",
                    f"{phase['latency_ms']:.1f}",
                    f"{phase['rows']:,}",
                    str(phase["origin_requests"]),
                    "-"
                    if phase["origin_bytes"] is None
                    else f"{phase['origin_bytes'] / 1024:,.0f}",
                ]
                + [_tier_cell(phase, tier) for tier in tiers]
            )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def render(row: list[str]) -> str:
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    out = [
        f"{report['rows']:,} spans in {report['commits']} commits at {report['table']}; "
        f"S3 with {report['latency_ms']:g} ms to first byte, 100 MB/s; "
        f"tiers: {', '.join(tiers)}",
        "",
        render(header),
        render(["-" * w for w in widths]),
    ]
    out.extend(render(row) for row in lines)
    out.append("")
    out.extend(LEGEND)
    out.append("")
    for query in report["queries"]:
        verdict = "equal" if query["results_equal"] else "DIFFERENT"
        out.append(f"{query['name']}: direct, native direct, cold and warm results {verdict}")
    out.append(f"done in {report['duration_s']:.1f} s")
    return "\n".join(out)
