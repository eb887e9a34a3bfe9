"""The demo's Delta table: a week of trace spans, one commit per day, partitioned by day.

Deterministic for a seed, and shaped like real tracing data where it matters to the queries:
trace ids that start with the trace's start second (narrow min/max statistics per file and row
group), lognormal durations per service, 2% errors.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

DAYS = 7
FIRST_DAY = 1_793_491_200  # 2026-11-01T00:00:00Z
ROW_GROUP_ROWS = 8192
BUCKET = "demo"
TABLE_URI = f"s3://{BUCKET}/spans"
_SERVICES = {  # service -> (median duration in ms, operations)
    "api-gateway": (40.0, ("GET /cart", "POST /checkout", "GET /search", "GET /item")),
    "auth": (4.0, ("verify-token", "refresh-token")),
    "cart": (8.0, ("get-cart", "add-item", "remove-item")),
    "catalog": (12.0, ("get-item", "list-items")),
    "checkout": (60.0, ("place-order", "validate-order")),
    "payments": (120.0, ("authorize", "capture")),
    "search": (25.0, ("query", "suggest")),
    "shipping": (30.0, ("quote", "book")),
}
_REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")


def _day_name(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(FIRST_DAY + day * 86_400))


def _duration_ms(rng: random.Random, median_ms: float) -> float:
    # Multiples of 2**-10 ms (about a microsecond): sums of up to millions of them are exact in
    # float64, so SUM and AVG give the same bits in whatever order DataFusion's threads add them,
    # and the cold, warm and direct results can be compared for equality, not approximately.
    return round(rng.lognormvariate(0.0, 0.6) * median_ms * 1024) / 1024


def day_spans(day: int, rows: int, seed: int) -> tuple[Any, list[str]]:
    """Return ``rows`` spans of one day as a pyarrow table sorted by start time, and the trace
    ids in the order they were generated.

    Trace ids start with the trace's start second in hex (as AWS X-Ray's do), so that a file's
    min/max statistics on ``trace_id`` are narrow and a lookup by id prunes files and row groups.
    """
    import pyarrow as pa

    rng = random.Random(seed * 1_000_003 + day)
    services = list(_SERVICES)
    day_start_us = (FIRST_DAY + day * 86_400) * 1_000_000
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "trace_id",
            "span_id",
            "parent_span_id",
            "service",
            "name",
            "start_time",
            "duration_ms",
            "status",
            "attributes",
        )
    }
    traces: list[str] = []
    while len(columns["span_id"]) < rows:
        start_us = day_start_us + rng.randrange(86_400 * 1_000_000 - 60_000_000)
        trace_id = f"{start_us // 1_000_000:08x}{rng.getrandbits(96):024x}"
        traces.append(trace_id)
        root_id = f"{rng.getrandbits(64):016x}"
        spans = min(rng.randint(1, 12), rows - len(columns["span_id"]))
        root_ms = _duration_ms(rng, _SERVICES["api-gateway"][0])
        region = rng.choice(_REGIONS)
        for index in range(spans):
            service = "api-gateway" if index == 0 else rng.choice(services[1:])
            median_ms, operations = _SERVICES[service]
            failed = rng.random() < 0.02
            columns["trace_id"].append(trace_id)
            columns["span_id"].append(root_id if index == 0 else f"{rng.getrandbits(64):016x}")
            columns["parent_span_id"].append(None if index == 0 else root_id)
            columns["service"].append(service)
            columns["name"].append(rng.choice(operations))
            offset_us = 0 if index == 0 else rng.randrange(max(1, int(root_ms * 1000)))
            columns["start_time"].append(start_us + offset_us)
            columns["duration_ms"].append(root_ms if index == 0 else _duration_ms(rng, median_ms))
            columns["status"].append("ERROR" if failed else "OK")
            columns["attributes"].append(
                json.dumps(
                    {
                        "host": f"{service}-{rng.randrange(16)}",
                        "region": region,
                        "http.status_code": 500 if failed else 200,
                        "sampled": True,
                    },
                    separators=(",", ":"),
                )
            )
    string = pa.string()
    table = pa.table(
        {
            "trace_id": pa.array(columns["trace_id"], string),
            "span_id": pa.array(columns["span_id"], string),
            "parent_span_id": pa.array(columns["parent_span_id"], string),
            "service": pa.array(columns["service"], string),
            "name": pa.array(columns["name"], string),
            "start_time": pa.array(columns["start_time"], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "duration_ms": pa.array(columns["duration_ms"], pa.float64()),
            "status": pa.array(columns["status"], string),
            "attributes": pa.array(columns["attributes"], string),  # JSON text
            "day": pa.array([_day_name(day)] * len(columns["span_id"]), string),
        }
    )
    return table.sort_by([("start_time", "ascending"), ("span_id", "ascending")]), traces


def write_table(
    storage_options: dict[str, str],
    rows: int,
    seed: int = 7,
    *,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Write the spans table, one commit per day; return the trace id the lookup asks for.

    ``progress`` is told each commit before it is written (the demo prints it on stderr).
    """
    from deltalake import WriterProperties, write_deltalake

    properties = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="ZSTD")
    wanted = ""
    for day in range(DAYS):
        count = rows // DAYS + (1 if day < rows % DAYS else 0)
        if progress is not None:
            progress(f"writing commit {day + 1}/{DAYS}: {count:,} spans of {_day_name(day)}")
        table, traces = day_spans(day, count, seed)
        if day == DAYS // 2 + 1:
            wanted = traces[len(traces) // 2]
        write_deltalake(
            TABLE_URI,
            table,
            mode="append",
            partition_by=["day"],
            storage_options=storage_options,
            writer_properties=properties,
        )
    return wanted
