"""``tiercache demo``: the project's main job, end to end, on a machine with nothing set up.

It starts a local S3 server (moto, in a subprocess) behind an HTTP proxy that makes it behave
like a real object store (``--latency`` to first byte, 100 MB/s per stream), writes a Delta
table of trace spans to it with deltalake (one commit per day, partitioned by day), and runs two
DataFusion SQL queries over it through the tiers
(:func:`tiercache.integrations.datafusion.register_delta`):

- a lookup of one trace by ``trace_id`` (selective: the Delta statistics and the Parquet row
  group statistics leave one row group of one file to read);
- a time-window aggregation: spans, average and p95 duration per service over 36 hours.

Each query runs three ways: **direct** (the same SQL over deltalake's own pyarrow dataset, no
tiercache: the reference result and latency), **cold** (a fresh :class:`TieredFileSystem` with
fresh tiers: an empty RAM tier, an empty disk tier in a new directory, and a fresh key prefix in
Redis when ``TIERCACHE_REDIS_URL`` is set, with ``TIERCACHE_REDIS_HMAC_KEY``) and **warm** (the
same query again on that filesystem). The results must be equal; a mismatch makes the exit status 1.

Progress goes to stderr, the result table (or ``--json``) to stdout. Everything it starts or
creates (servers, temporary directories) is removed at the end, also on an error or Ctrl-C.

Needs the ``demo`` extra: ``pip install 'tiercache[demo]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from tiercache.config import Settings, parse_duration, redact_url
from tiercache.errors import ConfigError

#: Module to import -> the distribution that provides it (all in the ``demo`` extra).
REQUIRED = {
    "moto": "moto[s3]",
    "flask": "flask",
    "flask_cors": "flask-cors",
    "s3fs": "s3fs",
    "pyarrow": "pyarrow",
    "deltalake": "deltalake",
    "datafusion": "datafusion",
}
BANDWIDTH_BYTES_PER_S = 100_000_000  # 100 MB/s per stream, as a real object store gives
DAYS = 7
FIRST_DAY = 1_793_491_200  # 2026-11-01T00:00:00Z
MIN_ROWS = 100
ROW_GROUP_ROWS = 8192
BUCKET = "demo"
TABLE_URI = f"s3://{BUCKET}/spans"
TIERS = ("memory", "disk", "redis")
PHASES = ("direct", "cold", "warm")
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
LEGEND = (
    "direct: deltalake's own reader, no tiercache; cold: a new TieredFileSystem, every tier empty;",
    "warm: the same query on it again. open ms: opening the table (reading the Delta log: by",
    "deltalake itself on the direct path, through the tiers on the others; warm reuses it).",
    "latency: the SQL alone. origin req: requests for data files (direct: counted at the",
    "proxy). hit/miss: blocks found / not found in the tier.",
)


def missing_packages() -> list[str]:
    """Return the distributions of the ``demo`` extra whose modules cannot be imported."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]


def _say(message: str) -> None:
    print(f"tiercache demo: {message}", file=sys.stderr, flush=True)


# -- the table -----------------------------------------------------------------------------------


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


def write_table(storage_options: dict[str, str], rows: int, seed: int = 7) -> str:
    """Write the spans table, one commit per day; return the trace id the lookup asks for."""
    from deltalake import WriterProperties, write_deltalake

    properties = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="ZSTD")
    wanted = ""
    for day in range(DAYS):
        count = rows // DAYS + (1 if day < rows % DAYS else 0)
        _say(f"writing commit {day + 1}/{DAYS}: {count:,} spans of {_day_name(day)}")
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


# -- the queries ---------------------------------------------------------------------------------


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


def run_tiered(
    query: Query, storage_options: dict[str, str], fs: Any, phase: str, ctx: Any | None
) -> tuple[Any, Phase, Any]:
    """Run ``query`` through ``fs``; register the table first when ``ctx`` is None."""
    from datafusion import SessionContext

    from tiercache.integrations.datafusion import register_delta

    open_ms = 0.0
    if ctx is None:
        began = time.perf_counter()
        ctx = SessionContext()
        register_delta(ctx, "spans", TABLE_URI, storage_options=storage_options, filesystem=fs)
        open_ms = (time.perf_counter() - began) * 1000
    before = fs.stats()
    table, latency_ms = _run_sql(ctx, query.sql)
    fs.chain.fills.join()  # count what the slower tiers stored for this phase in this phase
    after = fs.stats()
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


# -- the run -------------------------------------------------------------------------------------


def _settings() -> tuple[Settings, bool]:
    """Settings from the environment; the second item says whether the disk dir is ours."""
    settings = Settings.from_env()
    return settings, settings.disk_dir is None


def _fresh_filesystem(settings: Settings, s3_options: dict[str, Any]) -> Any:
    import s3fs

    from tiercache.fs import TieredFileSystem, default_tiers

    target = s3fs.S3FileSystem(**s3_options, skip_instance_cache=True)
    # Build the S3 client now (botocore loads its service model: 50-100 ms, no request sent):
    # a process pays it once, and deltalake's client in the direct run was built at open too.
    target.connect()
    return TieredFileSystem(fs=target, settings=settings, tiers=default_tiers(settings))


def run(rows: int, latency_s: float) -> dict[str, Any]:
    """Run the demo; return the report (see ``--json``). Cleans up everything it started."""
    from tiercache.integrations.delta import storage_options_for
    from tiercache.testing import HttpFaultProxy, S3Server

    began = time.perf_counter()
    settings, own_disk = _settings()
    if settings.disk_dir is not None:
        os.makedirs(settings.disk_dir, mode=0o700, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="tiercache-demo-", dir=settings.disk_dir)
        )
        _say("starting a local S3 server (moto, in a subprocess)")
        server = stack.enter_context(S3Server())
        proxy = stack.enter_context(
            HttpFaultProxy(
                server.endpoint_url,
                delay_s=latency_s,
                bandwidth_bytes_per_s=BANDWIDTH_BYTES_PER_S,
            )
        )
        _say(
            f"S3 at {server.endpoint_url}; reads go through a proxy at {proxy.url} adding "
            f"{latency_s * 1000:g} ms to first byte and pacing bodies to 100 MB/s"
        )
        server.create_bucket(BUCKET)
        # Written straight to the server: the proxy's latency is for the reads being measured.
        trace_id = write_table(storage_options_for(server.storage_options()), rows)
        s3_options = server.storage_options(proxy.url)
        read_options = storage_options_for(s3_options)
        tiers = ["memory"] if settings.memory_bytes > 0 else []
        tiers.append("disk")
        where = "a temporary directory" if own_disk else f"a directory under {settings.disk_dir}"
        _say(f"disk tier: {where}, fresh for every cold run")
        if settings.redis_url is not None:
            tiers.append("redis")
            _say(
                f"Redis tier: {redact_url(settings.redis_url)}, a fresh key prefix for every cold "
                f"run (entries expire after TIERCACHE_REDIS_TTL, {settings.redis_ttl_s:g} s)"
            )
        report: dict[str, Any] = {
            "rows": rows,
            "latency_ms": latency_s * 1000,
            "bandwidth_bytes_per_s": BANDWIDTH_BYTES_PER_S,
            "commits": DAYS,
            "table": TABLE_URI,
            "tiers": tiers,
            "block_size": settings.block_size_bytes,
            "queries": [],
        }
        for number, query in enumerate(queries(trace_id), start=1):
            _say(f"query {number}, {query.name}: direct (deltalake's own reader, no tiercache)")
            direct, direct_phase = run_direct(query, read_options, proxy)
            phase_settings = dataclasses.replace(
                settings,
                disk_dir=os.path.join(scratch, f"disk-{number}"),
                redis_prefix=f"{settings.redis_prefix}demo-{run_id}-{number}:",
            )
            fs = _fresh_filesystem(phase_settings, s3_options)
            stack.callback(fs.close)
            _say(f"query {number}, {query.name}: cold (fresh tiers)")
            cold, cold_phase, ctx = run_tiered(query, read_options, fs, "cold", None)
            _say(f"query {number}, {query.name}: warm (the same filesystem again)")
            warm, warm_phase, _ = run_tiered(query, read_options, fs, "warm", ctx)
            equal = cold.equals(direct) and warm.equals(direct)
            report["queries"].append(
                {
                    "name": query.name,
                    "sql": query.sql,
                    "results_equal": equal,
                    "phases": [p.to_dict() for p in (direct_phase, cold_phase, warm_phase)],
                    "result": direct.to_pylist()[:20],
                }
            )
        report["results_equal"] = all(q["results_equal"] for q in report["queries"])
        _say("cleaning up (servers, temporary directories)")
    report["duration_s"] = round(time.perf_counter() - began, 3)
    return report


# -- output --------------------------------------------------------------------------------------


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
        out.append(f"{query['name']}: direct, cold and warm results {verdict}")
    out.append(f"done in {report['duration_s']:.1f} s")
    return "\n".join(out)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the demo runs (main thread only): the S3
    server runs in a session of its own and would otherwise outlive a terminated demo."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(args: argparse.Namespace) -> int:
    """The ``tiercache demo`` command: 0 when every result matched, 1 when one did not,
    2 when the demo's packages are missing or an argument is bad, 130 on Ctrl-C (143 on
    SIGTERM)."""
    missing = missing_packages()
    if missing:
        print(
            f"tiercache demo needs packages that are not installed: {', '.join(missing)}.\n"
            "Install them with: pip install 'tiercache[demo]'",
            file=sys.stderr,
        )
        return 2
    latency_s = parse_duration(str(args.latency), variable="--latency")
    if args.rows < MIN_ROWS:
        raise ConfigError(f"--rows must be at least {MIN_ROWS}, got {args.rows}")
    try:
        with _terminate_as_interrupt():
            report = run(args.rows, latency_s)
    except KeyboardInterrupt as exc:
        _say("interrupted; servers stopped and temporary directories removed")
        return 143 if isinstance(exc, _Terminated) else 130
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_table(report))
    if not report["results_equal"]:
        _say("results differ between direct, cold and warm runs")
        return 1
    return 0
