"""The demo's two SQL queries, and running one direct (deltalake's reader, or DataFusion's own
on the store) or through the tiers (DataFusion's own reader through the embedded gateway)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from tiercache.cli.demo.table import FIRST_DAY, TABLE_URI


@dataclass
class Query:
    """One SQL query of the demo."""

    name: str
    sql: str


def queries(trace_id: str) -> list[Query]:
    """Return the two queries: a trace lookup and a 36-hour window aggregation."""
    window_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIRST_DAY + 4 * 86_400 + 21_600))
    window_end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIRST_DAY + 5 * 86_400 + 64_800))
    return [
        Query(
            "trace lookup",
            "SELECT trace_id, span_id, parent_span_id, service, name, start_time, duration_ms,"
            f" status FROM spans WHERE trace_id = '{trace_id}' ORDER BY start_time, span_id",
        ),
        Query(
            "window p95",
            "SELECT service, count(*) AS spans, avg(duration_ms) AS avg_ms,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,"
            " max(duration_ms) AS max_ms,"
            " sum(CASE WHEN status = 'ERROR' THEN 1 ELSE 0 END) AS errors"
            f" FROM spans WHERE start_time >= TIMESTAMP '{window_start}'"
            f" AND start_time < TIMESTAMP '{window_end}'"
            " GROUP BY service ORDER BY service",
        ),
    ]


@dataclass
class Phase:
    """What one run of one query did."""

    phase: str
    latency_ms: float
    rows: int
    origin_requests: int
    origin_bytes: int | None  # None for the direct run: only requests are counted at the proxy
    open_ms: float
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COUNTED = ("hits", "misses", "errors", "timeouts", "rejected", "bytes_read", "bytes_written")


def _difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tiers: dict[str, dict[str, Any]] = {}
    for name, now in after["tiers"].items():
        then = before["tiers"].get(name, {})
        entry: dict[str, Any] = {k: int(now.get(k, 0)) - int(then.get(k, 0)) for k in _COUNTED}
        entry["state"] = now.get("state")
        tiers[name] = entry
    return tiers


def _run_sql(ctx: Any, sql: str) -> tuple[Any, float]:
    import pyarrow as pa

    began = time.perf_counter()
    batches = ctx.sql(sql).collect()
    elapsed_ms = (time.perf_counter() - began) * 1000
    table = pa.Table.from_batches(batches) if batches else pa.table({})
    return table, elapsed_ms


def run_direct(query: Query, storage_options: dict[str, str], proxy: Any) -> tuple[Any, Phase]:
    """Run ``query`` over deltalake's own pyarrow dataset (no tiercache)."""
    from datafusion import SessionContext
    from deltalake import DeltaTable

    began = time.perf_counter()
    ctx = SessionContext()
    table = DeltaTable(TABLE_URI, storage_options=storage_options)
    ctx.register_dataset("spans", table.to_pyarrow_dataset())
    open_ms = (time.perf_counter() - began) * 1000
    proxy.reset_counters()
    result, latency_ms = _run_sql(ctx, query.sql)
    requests = proxy.requests()  # the data files only: the log was read at open
    return result, Phase("direct", latency_ms, result.num_rows, requests, None, open_ms)


def run_native_direct(
    query: Query, storage_options: dict[str, str], proxy: Any
) -> tuple[Any, Phase]:
    """Run ``query`` with DataFusion's own Parquet reader on the store (no tiercache): a new
    session over exactly the snapshot's files, as an engine that keeps nothing runs it."""
    from datafusion import SessionContext
    from datafusion.object_store import AmazonS3
    from deltalake import DeltaTable

    from tiercache.integrations.native import register_files, split_location

    began = time.perf_counter()
    table = DeltaTable(TABLE_URI, storage_options=storage_options)
    bucket, root = split_location(TABLE_URI)
    store = AmazonS3(
        bucket_name=bucket,
        endpoint=storage_options["AWS_ENDPOINT_URL"],
        allow_http=True,
        access_key_id=storage_options["AWS_ACCESS_KEY_ID"],
        secret_access_key=storage_options["AWS_SECRET_ACCESS_KEY"],
        region=storage_options.get("AWS_REGION", "us-east-1"),
    )
    ctx = SessionContext()
    register_files(ctx, "spans", table, store, (bucket, root))
    open_ms = (time.perf_counter() - began) * 1000
    proxy.reset_counters()
    result, latency_ms = _run_sql(ctx, query.sql)
    return result, Phase(
        "native direct", latency_ms, result.num_rows, proxy.requests(), None, open_ms
    )


def run_tiered(
    query: Query, storage_options: dict[str, str], fs: Any, phase: str, ctx: Any | None
) -> tuple[Any, Phase, Any]:
    """Run ``query`` through the tiers of ``fs`` (``register_delta``: DataFusion's own reader
    through the embedded gateway); register the table first when ``ctx`` is None. The counts
    are the gateway's (its chain's stats), the fills of the slower tiers included."""
    from datafusion import SessionContext

    from tiercache.gateway.shared import shared
    from tiercache.integrations.datafusion import register_delta

    open_ms = 0.0
    if ctx is None:
        began = time.perf_counter()
        ctx = SessionContext()
        registered = register_delta(
            ctx, "spans", TABLE_URI, storage_options=storage_options, filesystem=fs
        )
        open_ms = (time.perf_counter() - began) * 1000
        if registered.route != "native":
            raise RuntimeError(
                f"the demo's table took the {registered.route} route: {registered.reason}"
            )
    gateway = shared(fs)
    before = gateway.stats(settle=True)["chain"]
    table, latency_ms = _run_sql(ctx, query.sql)
    after = gateway.stats(settle=True)["chain"]  # what the slower tiers stored, counted here
    result = Phase(
        phase,
        latency_ms,
        table.num_rows,
        after["origin"]["requests"] - before["origin"]["requests"],
        after["origin"]["bytes"] - before["origin"]["bytes"],
        open_ms,
        _difference(before, after),
    )
    return table, result, ctx
