"""Delta Lake + DataFusion benchmark: SQL over a Delta table of trace spans, through tiercache.

A Delta table of trace spans (``trace_id``, ``span_id``, ``service``, ``start_time``,
``duration_ms``, ``attributes``, partitioned by ``day``) is written in several commits (one file
per commit, a checkpoint every 10 commits) to an S3 server (moto in a subprocess) that readers
reach through a latency proxy (default 20 ms to first byte, 100 MB/s per stream, like a real
object store). Trace ids start with the trace's start second in hex (as AWS X-Ray's do), so a
lookup by trace id is pruned to one file by the Delta statistics and to one row group by the
Parquet statistics. Two queries, through DataFusion (``SessionContext``):

- **selective**: every span of one trace (``WHERE trace_id = ...``);
- **aggregation**: spans, mean and max duration per service over a 6-hour window of
  ``start_time``.

Three measurements, each a ratio against a reference measured in the same run:

- **(a) warm**: the query through tiercache (the table registered once with
  ``tiercache.integrations.datafusion.register_delta``, the RAM tier warm) against the same query
  over a local copy of the table (deltalake's ``to_pyarrow_dataset`` with pyarrow's local
  filesystem, the page cache warm). Target: <= 1.3x.
- **(b) cold**: a fresh ``TieredFileSystem`` (fresh RAM-only tiers, a fresh s3fs client) and a
  fresh registration every round, against the direct path: deltalake's ``to_pyarrow_dataset``
  over ``PyFileSystem(FSSpecHandler(s3fs))`` with a fresh s3fs client every round. The query is
  timed; the registration (reading the Delta log: deltalake's own reader on the direct path,
  through the tiers on tiercache's) is timed apart. Target: <= 1.1x. Origin requests of both are
  counted.
- **(c) new process**: a child Python process registers the table and runs the selective query
  once, with ``TIERCACHE_REDIS_URL`` pointing at a Redis (a ``redis-server`` this program starts)
  that an earlier child warmed, against the same child without Redis. Timed inside the child:
  registration + query (imports, the s3fs client and the filesystem are set up before). Target:
  the warm-Redis child >= 2x faster.

Settings come from ``TIERCACHE_*`` variables (never a disk tier; the Redis URL and prefix are set
by the program). Run: ``python benchmarks/delta_datafusion.py`` (``--quick`` for a smoke run,
``--json FILE`` to keep the raw figures, ``--check`` to exit non-zero when a target is missed).
The Markdown it prints is what ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import datafusion
import deltalake
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset  # imported before any clock starts (deltalake imports it lazily)
import pyarrow.fs as pafs
import s3fs
from datafusion import SessionContext
from deltalake import DeltaTable, WriterProperties, write_deltalake

import tiercache
from harness.context import BUCKET
from harness.fmt import fmt_count
from harness.proxy import CountingProxy
from harness.timing import Sample, measure, spread
from redis_footers import HMAC_KEY
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.gateway.shared import shared
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import storage_options_for
from tiercache.parsing import KIB, MIB
from tiercache.testing import HttpFaultProxy, RedisServer, S3Server

TABLE_KEY = "spans"
TABLE_ROOT = f"{BUCKET}/{TABLE_KEY}"
TABLE_URI = f"s3://{TABLE_ROOT}"
SEED = 20261124
EPOCH = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
CHECKPOINT_INTERVAL = 10
SERVICES = tuple(
    f"svc-{name}"
    for name in (
        "ads",
        "api",
        "auth",
        "cache",
        "cart",
        "checkout",
        "db",
        "email",
        "frontend",
        "inventory",
        "payment",
        "queue",
        "recommend",
        "search",
        "shipping",
        "user",
    )
)
OPERATIONS = ("GET /v1/items", "POST /v1/cart", "SELECT", "INSERT", "publish", "consume", "rpc")
STATUS_CODES = (200, 200, 200, 200, 201, 204, 404, 500)

SELECTIVE = "selective"
AGGREGATION = "aggregation"
QUERIES = (SELECTIVE, AGGREGATION)
LOCAL = "local files"
WARM = "tiercache warm"
DIRECT = "direct s3fs"
COLD = "tiercache cold"
CHILD_COLD = "new process, no Redis"
CHILD_WARM_UP = "warm-up process (Redis empty)"
CHILD_WARM = "new process, warm Redis"
CHILD_SHARED = "new process, warm Redis, log listing shared"
CHILDREN = (CHILD_COLD, CHILD_WARM_UP, CHILD_WARM, CHILD_SHARED)
#: What the (c) children with a shared log listing set (a listing up to a minute old is reused).
SHARED_LISTING_ENV = {"TIERCACHE_DELTA_LOG_TTL": "60s"}

WARM_TARGET = 1.3
COLD_TARGET = 1.1
PROCESS_TARGET = 2.0


# -- the table -------------------------------------------------------------------------------


@dataclass
class Shape:
    """How much table to write."""

    days: int
    slices_per_day: int  # one commit (one file) per slice of a day
    traces_per_slice: int
    row_group_rows: int


FULL_SHAPE = Shape(days=4, slices_per_day=8, traces_per_slice=1_100, row_group_rows=2_048)
QUICK_SHAPE = Shape(days=2, slices_per_day=4, traces_per_slice=600, row_group_rows=2_048)


@dataclass
class Table:
    """What was written: the table's files and what the queries look for."""

    commits: int
    files: int
    bytes: int
    rows: int
    row_groups: int
    log_files: int
    checkpoints: int
    trace_id: str
    window: tuple[dt.datetime, dt.datetime]
    file_sizes: list[int] = field(default_factory=list)


def span_batch(
    rng: random.Random, start_s: float, seconds: float, traces: int
) -> tuple[pa.Table, list[str]]:
    """Spans of ``traces`` traces starting in ``[start_s, start_s + seconds)``, by start time."""
    columns: dict[str, list[Any]] = {
        name: []
        for name in ("trace_id", "span_id", "service", "start_time", "duration_ms", "attributes")
    }
    days: list[str] = []
    trace_ids: list[str] = []
    for begin in sorted(start_s + rng.random() * seconds for _ in range(traces)):
        trace_id = f"{int(begin):08x}{rng.randbytes(12).hex()}"  # X-Ray style: time first
        trace_ids.append(trace_id)
        day = dt.datetime.fromtimestamp(begin, dt.UTC).strftime("%Y-%m-%d")
        for _ in range(rng.randint(2, 14)):
            attributes = {
                "http.status_code": rng.choice(STATUS_CODES),
                "operation": rng.choice(OPERATIONS),
                "host": f"node-{rng.randrange(64):02d}",
                "user.id": rng.randbytes(6).hex(),
                "retry": rng.random() < 0.05,
            }
            columns["trace_id"].append(trace_id)
            columns["span_id"].append(rng.randbytes(8).hex())
            columns["service"].append(rng.choice(SERVICES))
            columns["start_time"].append(int((begin + rng.random() * 0.5) * 1e6))
            columns["duration_ms"].append(round(rng.expovariate(1 / 40), 3))
            columns["attributes"].append(json.dumps(attributes))
            days.append(day)
    table = pa.table(
        {
            "trace_id": pa.array(columns["trace_id"], pa.string()),
            "span_id": pa.array(columns["span_id"], pa.string()),
            "service": pa.array(columns["service"], pa.string()),
            "start_time": pa.array(columns["start_time"], pa.timestamp("us", tz="UTC")),
            "duration_ms": pa.array(columns["duration_ms"], pa.float64()),
            "attributes": pa.array(columns["attributes"], pa.string()),
            "day": pa.array(days, pa.string()),
        }
    )
    return table, trace_ids


def write_table(server: S3Server, shape: Shape, local_dir: str) -> Table:
    """Write the Delta table to the S3 server (not through the proxy), then copy it to disk."""
    rng = random.Random(SEED)
    options = storage_options_for(server.storage_options())
    slice_s = 86_400 / shape.slices_per_day
    commits = shape.days * shape.slices_per_day
    middle = commits // 2
    trace_id = ""
    for commit in range(commits):
        start = EPOCH.timestamp() + commit * slice_s
        batch, trace_ids = span_batch(rng, start, slice_s, shape.traces_per_slice)
        if commit == middle:
            trace_id = trace_ids[len(trace_ids) // 2]
        write_deltalake(
            TABLE_URI,
            batch,
            partition_by=["day"],
            mode="append",
            storage_options=options,
            writer_properties=WriterProperties(max_row_group_size=shape.row_group_rows),
            # Spark's default: the log stays a checkpoint and at most 9 JSON commits.
            configuration=(
                {"delta.checkpointInterval": str(CHECKPOINT_INTERVAL)} if commit == 0 else None
            ),
        )
    client = s3fs.S3FileSystem(**server.storage_options(), skip_instance_cache=True)
    objects = client.find(TABLE_ROOT, detail=True)
    for path in objects:
        target = os.path.join(local_dir, os.path.relpath(path, TABLE_ROOT))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        client.get_file(path, target)
    table = DeltaTable(local_dir)
    dataset = local_dataset(local_dir)
    row_groups = sum(f.num_row_groups for f in dataset.get_fragments())
    sizes = [
        int(info["size"])
        for path, info in objects.items()
        if path.endswith(".parquet") and "/_delta_log/" not in path
    ]
    window_start = EPOCH + dt.timedelta(days=min(1, shape.days - 1), hours=6)
    return Table(
        commits=table.version() + 1,
        files=len(dataset.files),
        bytes=sum(sizes),
        rows=dataset.count_rows(),
        row_groups=row_groups,
        log_files=sum("/_delta_log/" in path for path in objects),
        checkpoints=sum(path.endswith(".checkpoint.parquet") for path in objects),
        trace_id=trace_id,
        window=(window_start, window_start + dt.timedelta(hours=6)),
        file_sizes=sizes,
    )


def sql(table: Table) -> dict[str, str]:
    """The two queries."""
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.window)
    return {
        SELECTIVE: (
            "SELECT span_id, service, start_time, duration_ms, attributes FROM spans "
            f"WHERE trace_id = '{table.trace_id}'"
        ),
        AGGREGATION: (
            "SELECT service, count(*) AS spans, avg(duration_ms) AS mean_ms, "
            "max(duration_ms) AS max_ms FROM spans "
            f"WHERE start_time >= TIMESTAMP '{start}' AND start_time < TIMESTAMP '{end}' "
            "GROUP BY service ORDER BY service"
        ),
    }


def pruning(local_dir: str, table: Table) -> dict[str, tuple[int, int]]:
    """Files and row groups each query's filter leaves (pyarrow's view of the same predicate)."""
    dataset = local_dataset(local_dir)
    kind = pa.timestamp("us", tz="UTC")
    filters = {
        SELECTIVE: pc.field("trace_id") == table.trace_id,
        AGGREGATION: (pc.field("start_time") >= pa.scalar(table.window[0], kind))
        & (pc.field("start_time") < pa.scalar(table.window[1], kind)),
    }
    out = {}
    for name, expression in filters.items():
        fragments = list(dataset.get_fragments(filter=expression))
        groups = sum(len(f.split_by_row_group(filter=expression)) for f in fragments)
        out[name] = (len(fragments), groups)
    return out


# -- the read paths --------------------------------------------------------------------------


def local_dataset(local_dir: str) -> Any:
    """The local copy, data files read with pyarrow's local filesystem."""
    return DeltaTable(local_dir).to_pyarrow_dataset(
        filesystem=pafs.SubTreeFileSystem(local_dir, pafs.LocalFileSystem())
    )


def local_context(local_dir: str) -> SessionContext:
    ctx = SessionContext()
    ctx.register_dataset("spans", local_dataset(local_dir))
    return ctx


def new_client(options: dict[str, Any]) -> s3fs.S3FileSystem:
    """A fresh s3fs client (no listing cache), its botocore client and HTTP session built (no
    request sent).

    aiobotocore builds a client's HTTP session, and with it the TLS context (the CA bundle
    loaded: ~25 ms here, even for an ``http://`` endpoint), on the client's first request. That
    is client set-up, the same with or without tiercache, so it is done here, before any clock
    starts, like the rest of the client. (It reaches into aiobotocore's session object; if that
    changes, the first request pays the set-up again, in every path alike.)
    """
    client = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    client.connect()
    http: Any = getattr(getattr(client.s3, "_endpoint", None), "http_session", None)
    if hasattr(http, "_get_session") and hasattr(http, "_proxy_config"):
        proxy_url = http._proxy_config.proxy_url_for(client.s3.meta.endpoint_url)
        fsspec.asyn.sync(client.loop, http._get_session, proxy_url)
    return client


def tiercache_fs(client: s3fs.S3FileSystem, settings: Settings) -> TieredFileSystem:
    """A new pod: a TieredFileSystem with its own, empty tiers."""
    return TieredFileSystem(fs=client, settings=settings, tiers=default_tiers(settings))


def direct_context(client: s3fs.S3FileSystem, storage_options: dict[str, str]) -> SessionContext:
    """deltalake's dataset with data files read by s3fs itself (no tiercache)."""
    filesystem = pafs.SubTreeFileSystem(TABLE_ROOT, pafs.PyFileSystem(pafs.FSSpecHandler(client)))
    dataset = DeltaTable(TABLE_URI, storage_options=storage_options).to_pyarrow_dataset(
        filesystem=filesystem
    )
    ctx = SessionContext()
    ctx.register_dataset("spans", dataset)
    return ctx


def query(ctx: SessionContext, text: str) -> list[pa.RecordBatch]:
    return list(ctx.sql(text).collect())


def runner(ctx: SessionContext, text: str) -> Callable[[int], object]:
    """A case for ``harness.timing.measure``: run the query (its argument is unused)."""
    return lambda _: query(ctx, text)


def canonical(batches: list[pa.RecordBatch]) -> list[tuple[Any, ...]]:
    """Rows, sorted, floats rounded (aggregation order may change the last bits of a mean)."""
    rows = pa.Table.from_batches(batches).to_pylist() if batches else []
    return sorted(
        tuple(round(v, 6) if isinstance(v, float) else v for v in row.values()) for row in rows
    )


# -- (a) warm --------------------------------------------------------------------------------


@dataclass
class WarmResult:
    samples: dict[str, Sample]  # "<query>: <path>"
    origin_requests_warming: int
    origin_requests_timed: int
    memory_hits_timed: int


def warm(
    proxy: CountingProxy,
    server: S3Server,
    settings: Settings,
    *,
    local_dir: str,
    queries: dict[str, str],
    expected: dict[str, list[tuple[Any, ...]]],
    rounds: int,
    reps: int,
) -> WarmResult:
    """(a): the same queries over local files and through a warm tiercache, interleaved."""
    options = server.storage_options(proxy.url)
    local = local_context(local_dir)
    fs = tiercache_fs(new_client(options), settings)
    try:
        ctx = SessionContext()
        register_delta(
            ctx,
            "spans",
            TABLE_URI,
            storage_options=storage_options_for(options),
            filesystem=fs,
            route="dataset",
        )
        for name, text in queries.items():  # warm the RAM tier, check the answers
            for path, c in ((LOCAL, local), (WARM, ctx)):
                got = canonical(query(c, text))
                assert got == expected[name], (name, path)
        before = fs.stats()
        cases: dict[str, Callable[[int], object]] = {}
        for name, text in queries.items():
            for path, c in ((LOCAL, local), (WARM, ctx)):
                cases[f"{name}: {path}"] = runner(c, text)
        samples = measure(cases, list(range(reps)), rounds)
        after = fs.stats()
        return WarmResult(
            samples=samples,
            origin_requests_warming=before["origin"]["requests"],
            origin_requests_timed=after["origin"]["requests"] - before["origin"]["requests"],
            memory_hits_timed=after["tiers"]["memory"]["hits"] - before["tiers"]["memory"]["hits"],
        )
    finally:
        fs.close()


# -- (b) cold --------------------------------------------------------------------------------


@dataclass
class ColdRound:
    register_s: float
    query_s: float
    log_requests: int  # proxy requests during registration (deltalake reading the log)
    get: int  # proxy requests during the query
    head: int
    other: int
    origin_requests: int | None = None  # stats()["origin"] (tiercache)
    origin_bytes: int | None = None

    @property
    def requests(self) -> int:
        return self.get + self.head + self.other


def cold_round(
    proxy: CountingProxy, server: S3Server, settings: Settings, path: str, text: str
) -> tuple[ColdRound, list[tuple[Any, ...]]]:
    """One cold registration + query, by the direct path or through a new tiercache pod."""
    options = server.storage_options(proxy.url)
    storage_options = storage_options_for(options)
    client = new_client(options)
    fs = tiercache_fs(client, settings) if path == COLD else None
    try:
        proxy.reset_counters()
        start = time.perf_counter()
        if fs is None:
            ctx = direct_context(client, storage_options)
        else:
            ctx = SessionContext()
            register_delta(
                ctx,
                "spans",
                TABLE_URI,
                storage_options=storage_options,
                filesystem=fs,
                route="dataset",
            )
        registered = time.perf_counter()
        log_requests = proxy.requests()
        proxy.reset_counters()
        batches = query(ctx, text)
        done = time.perf_counter()
        get, head, total = proxy.requests("GET"), proxy.requests("HEAD"), proxy.requests()
        result = ColdRound(
            register_s=registered - start,
            query_s=done - registered,
            log_requests=log_requests,
            get=get,
            head=head,
            other=total - get - head,
        )
        if fs is not None:
            origin = fs.stats()["origin"]
            result.origin_requests = origin["requests"]
            result.origin_bytes = origin["bytes"]
        return result, canonical(batches)
    finally:
        if fs is not None:
            fs.close()


def cold(
    proxy: CountingProxy,
    server: S3Server,
    settings: Settings,
    queries: dict[str, str],
    expected: dict[str, list[tuple[Any, ...]]],
    *,
    rounds: int,
) -> dict[str, list[ColdRound]]:
    """(b): every round, each query cold by both paths, in shuffled order."""
    results: dict[str, list[ColdRound]] = {
        f"{name}: {path}": [] for name in queries for path in (DIRECT, COLD)
    }
    steps = [(name, path) for name in queries for path in (DIRECT, COLD)]
    cold_round(proxy, server, settings, DIRECT, queries[SELECTIVE])  # not counted: warm moto up
    shuffle = random.Random(SEED).shuffle
    for _ in range(rounds):
        shuffle(steps)
        for name, path in steps:
            result, rows = cold_round(proxy, server, settings, path, queries[name])
            assert rows == expected[name], (name, path)
            results[f"{name}: {path}"].append(result)
    return results


# -- (c) a new process -----------------------------------------------------------------------


@dataclass
class ChildRound:
    """What one child process measured (timed inside it) and the proxy saw."""

    setup_s: float  # s3fs client + TieredFileSystem (+ Redis connection), not in the figure
    register_s: float
    query_s: float
    wall_s: float  # spawn to exit, seen by the parent (imports included)
    proxy_requests: int  # log and data files
    origin_requests: int  # stats(): data files only
    origin_bytes: int
    redis_hits: int | None
    redis_bytes_read: int | None
    fills_done: int
    rows: int

    @property
    def total_s(self) -> float:
        return self.register_s + self.query_s


def child_main(config: dict[str, Any]) -> int:
    """Run in the child: set up, then time register_delta + the selective query once."""
    started = time.perf_counter()
    settings = Settings.from_env(disk_dir=None)  # TIERCACHE_REDIS_URL from the parent, or none
    fs = tiercache_fs(new_client(config["s3fs"]), settings)
    shared(fs)  # the gateway the log is read through: started with the pod, as a pod does
    ctx = SessionContext()
    ready = time.perf_counter()
    register_delta(
        ctx,
        "spans",
        TABLE_URI,
        storage_options=config["storage_options"],
        filesystem=fs,
        route="dataset",
    )
    registered = time.perf_counter()
    batches = query(ctx, config["sql"])
    done = time.perf_counter()
    fs.chain.fills.join()  # a warm-up process leaves Redis holding what it fetched
    stats = fs.stats()
    redis_tier = stats["tiers"].get("redis")
    out = {
        "setup_s": ready - started,
        "register_s": registered - ready,
        "query_s": done - registered,
        "origin_requests": stats["origin"]["requests"],
        "origin_bytes": stats["origin"]["bytes"],
        "redis_hits": None if redis_tier is None else redis_tier["hits"],
        "redis_bytes_read": None if redis_tier is None else redis_tier["bytes_read"],
        "fills_done": stats["fills"]["done"],
        "rows": canonical(batches),
    }
    fs.close()
    print(json.dumps(out, default=str))
    return 0


def spawn_child(
    proxy: CountingProxy,
    server: S3Server,
    text: str,
    redis_url: str | None,
    prefix: str,
    *,
    extra_env: dict[str, str] | None = None,
) -> tuple[ChildRound, list[Any]]:
    options = server.storage_options(proxy.url)
    config = {"s3fs": options, "storage_options": storage_options_for(options), "sql": text}
    # The parent's TIERCACHE_* settings, but no disk tier, only the program's own Redis, and
    # the Delta log listed on every open unless this child is one that shares the listing.
    own = (
        "TIERCACHE_DISK_DIR",
        "TIERCACHE_REDIS_URL",
        "TIERCACHE_REDIS_PREFIX",
        "TIERCACHE_REDIS_HMAC_KEY",
        "TIERCACHE_DELTA_LOG_TTL",
    )
    env = {k: v for k, v in os.environ.items() if k not in own}
    env.update(extra_env or {})
    if redis_url is not None:
        env["TIERCACHE_REDIS_URL"] = redis_url
        env["TIERCACHE_REDIS_PREFIX"] = prefix
        env["TIERCACHE_REDIS_HMAC_KEY"] = HMAC_KEY
    proxy.reset_counters()
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"child failed:\n{completed.stdout}\n{completed.stderr[-4000:]}")
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    rows = out.pop("rows")
    return ChildRound(wall_s=wall, proxy_requests=proxy.requests(), rows=len(rows), **out), rows


def processes(
    proxy: CountingProxy,
    server: S3Server,
    redis_server: RedisServer,
    text: str,
    expected: list[tuple[Any, ...]],
    *,
    rounds: int,
) -> dict[str, list[ChildRound]]:
    """(c): every round a cold child, and a warm-up child then a measured child with Redis."""
    results: dict[str, list[ChildRound]] = {name: [] for name in CHILDREN}

    want = json.loads(json.dumps(expected, default=str))  # as the child's JSON carries it

    def check(rows: list[Any], name: str) -> None:
        assert rows == want, name

    def no_redis() -> None:
        result, rows = spawn_child(proxy, server, text, None, "")
        check(rows, CHILD_COLD)
        results[CHILD_COLD].append(result)

    def with_redis() -> None:
        prefix = f"tcbench:{uuid.uuid4().hex[:12]}:"  # an empty Redis for the warm-up
        # The warm-up shares its log listing too; the default child ignores it (it lists).
        for name, env in (
            (CHILD_WARM_UP, SHARED_LISTING_ENV),
            (CHILD_WARM, None),
            (CHILD_SHARED, SHARED_LISTING_ENV),
        ):
            result, rows = spawn_child(proxy, server, text, redis_server.url, prefix, extra_env=env)
            check(rows, name)
            results[name].append(result)

    steps = [no_redis, with_redis]
    shuffle = random.Random(SEED).shuffle
    for _ in range(rounds):
        shuffle(steps)
        for step in steps:
            step()
    return results


# -- the report ------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:,.1f} ms"


@dataclass
class Verdict:
    scenario: str
    median_s: float
    spread: float
    reference: str
    reference_s: float
    ratio: float
    target: str
    met: bool
    informative: bool = False  # reported next to a target, not one itself


def verdicts(
    warm_result: WarmResult,
    cold_results: dict[str, list[ColdRound]],
    child_results: dict[str, list[ChildRound]],
) -> list[Verdict]:
    out: list[Verdict] = []
    for name in QUERIES:
        case = warm_result.samples[f"{name}: {WARM}"]
        ref = warm_result.samples[f"{name}: {LOCAL}"]
        ratio = case.median / ref.median
        out.append(
            Verdict(
                f"(a) {name}, {WARM} (RAM)",
                case.median,
                case.spread,
                LOCAL,
                ref.median,
                ratio,
                f"<= {WARM_TARGET}x",
                ratio <= WARM_TARGET,
            )
        )
    for name in QUERIES:
        secs = [r.query_s for r in cold_results[f"{name}: {COLD}"]]
        ref_s = statistics.median(r.query_s for r in cold_results[f"{name}: {DIRECT}"])
        ratio = statistics.median(secs) / ref_s
        out.append(
            Verdict(
                f"(b) {name}, {COLD} (query)",
                statistics.median(secs),
                spread(secs),
                DIRECT,
                ref_s,
                ratio,
                f"<= {COLD_TARGET}x",
                ratio <= COLD_TARGET,
            )
        )
    ref_s = statistics.median(r.total_s for r in child_results[CHILD_COLD])
    for name in (CHILD_SHARED, CHILD_WARM):
        secs = [r.total_s for r in child_results[name]]
        speedup = ref_s / statistics.median(secs)
        out.append(
            Verdict(
                f"(c) {SELECTIVE}, {name} (register + query)",
                statistics.median(secs),
                spread(secs),
                CHILD_COLD,
                ref_s,
                speedup,
                f">= {PROCESS_TARGET}x faster" if name == CHILD_SHARED else "(not a target)",
                speedup >= PROCESS_TARGET,
                informative=name != CHILD_SHARED,
            )
        )
    return out


def report(
    *,
    table: Table,
    prune: dict[str, tuple[int, int]],
    queries: dict[str, str],
    warm_result: WarmResult,
    cold_results: dict[str, list[ColdRound]],
    child_results: dict[str, list[ChildRound]],
    results: list[Verdict],
) -> str:
    lines = [
        "#### Targets",
        "",
        "| scenario | median | spread (±IQR/2) | reference | reference median | ratio | target "
        "| met |",
        "|---|---:|---:|---|---:|---:|---|---|",
    ]
    for v in results:
        ratio = f"{v.ratio:.2f}x" + (" faster" if v.scenario.startswith("(c)") else "")
        lines.append(
            f"| {v.scenario} | {fmt_ms(v.median_s)} | {v.spread:.0%} | {v.reference} "
            f"| {fmt_ms(v.reference_s)} | {ratio} | {v.target} "
            f"| {'—' if v.informative else 'yes' if v.met else 'no'} |"
        )
    lines += [
        "",
        f"- Table: {table.commits} commits, {table.files} data files of "
        f"{min(table.file_sizes) / MIB:.2f}-{max(table.file_sizes) / MIB:.2f} MiB "
        f"({table.bytes / MIB:.1f} MiB), {table.rows:,} spans in {table.row_groups} row groups, "
        f"partitioned by day; {table.log_files} objects in `_delta_log`, {table.checkpoints} of "
        f"them checkpoints (`delta.checkpointInterval` {CHECKPOINT_INTERVAL}).",
    ]
    for name in QUERIES:
        files, groups = prune[name]
        lines.append(
            f"- {name}: `{queries[name]}` — the filter leaves {files} of {table.files} files, "
            f"{groups} of their row groups."
        )
    lines += [
        "",
        "#### (a) Warm queries (RAM tier warm; local files in the page cache)",
        "",
        "| query: path | median | spread (±IQR/2) | x local |",
        "|---|---:|---:|---:|",
    ]
    for name in QUERIES:
        ref = warm_result.samples[f"{name}: {LOCAL}"].median
        for path in (LOCAL, WARM):
            s = warm_result.samples[f"{name}: {path}"]
            lines.append(
                f"| {name}: {path} | {fmt_ms(s.median)} | {s.spread:.0%} | {s.median / ref:.2f} |"
            )
    lines += [
        "",
        f"While timed, the warm queries sent {warm_result.origin_requests_timed} requests to the "
        f"origin ({warm_result.memory_hits_timed:,} RAM-tier hits); warming them sent "
        f"{warm_result.origin_requests_warming}.",
        "",
        "#### (b) Cold queries (fresh client and tiers, fresh registration, every round)",
        "",
        "| query: path | query (median) | spread (±IQR/2) | ÷ direct | proxy GET | proxy HEAD "
        "| origin requests (stats) | origin MiB | registration (median) | log requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    dash = "—"
    for name in QUERIES:
        ref = statistics.median(r.query_s for r in cold_results[f"{name}: {DIRECT}"])
        for path in (DIRECT, COLD):
            rs = cold_results[f"{name}: {path}"]
            secs = [r.query_s for r in rs]
            origin = [r.origin_requests for r in rs if r.origin_requests is not None]
            mib = [r.origin_bytes / MIB for r in rs if r.origin_bytes is not None]
            lines.append(
                f"| {name}: {path} | {fmt_ms(statistics.median(secs))} | {spread(secs):.0%} "
                f"| {statistics.median(secs) / ref:.3f} | {fmt_count([r.get for r in rs])} "
                f"| {fmt_count([r.head for r in rs])} "
                f"| {fmt_count(origin) if origin else dash} "
                f"| {f'{statistics.median(mib):.2f}' if mib else dash} "
                f"| {fmt_ms(statistics.median(r.register_s for r in rs))} "
                f"| {fmt_count([r.log_requests for r in rs])} |"
            )
    lines += [
        "",
        "#### (c) A new process running the selective query once",
        "",
        "| process | register + query (median) | spread (±IQR/2) | registration | query "
        "| set-up (not counted) | spawn to exit | proxy requests (log + data) "
        "| origin requests (stats) | Redis hits | Redis MiB read |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CHILDREN:
        children = child_results[name]
        totals = [c.total_s for c in children]
        hits = [c.redis_hits for c in children if c.redis_hits is not None]
        mib = [c.redis_bytes_read / MIB for c in children if c.redis_bytes_read is not None]
        lines.append(
            f"| {name} | {fmt_ms(statistics.median(totals))} | {spread(totals):.0%} "
            f"| {fmt_ms(statistics.median(c.register_s for c in children))} "
            f"| {fmt_ms(statistics.median(c.query_s for c in children))} "
            f"| {fmt_ms(statistics.median(c.setup_s for c in children))} "
            f"| {fmt_ms(statistics.median(c.wall_s for c in children))} "
            f"| {fmt_count([c.proxy_requests for c in children])} "
            f"| {fmt_count([c.origin_requests for c in children])} "
            f"| {fmt_count(hits) if hits else dash} "
            f"| {f'{statistics.median(mib):.2f}' if mib else dash} |"
        )
    cold_q = statistics.median(r.query_s for r in child_results[CHILD_COLD])
    warm_q = statistics.median(r.query_s for r in child_results[CHILD_WARM])
    lines += [
        "",
        f'The children marked "log listing shared" run with '
        f"`{' '.join(f'{k}={v}' for k, v in SHARED_LISTING_ENV.items())}` (the warm-up child too): "
        "a listing of `_delta_log` up to that old, shared through Redis, is reused instead of a "
        "LIST. The others list the log on every open (the default).",
        "",
        f"Query alone, no Redis ÷ warm Redis: {fmt_ms(cold_q)} ÷ {fmt_ms(warm_q)} = "
        f"{cold_q / warm_q:.1f}x.",
        "",
    ]
    return "\n".join(lines)


@dataclass
class DeltaRun:
    """Everything one run of the three measurements produced."""

    table: Table
    prune: dict[str, tuple[int, int]]
    queries: dict[str, str]
    warm_result: WarmResult
    cold_results: dict[str, list[ColdRound]]
    child_results: dict[str, list[ChildRound]]
    verdicts: list[Verdict]

    def report(self) -> str:
        return report(
            table=self.table,
            prune=self.prune,
            queries=self.queries,
            warm_result=self.warm_result,
            cold_results=self.cold_results,
            child_results=self.child_results,
            results=self.verdicts,
        )

    def raw(self) -> dict[str, Any]:
        """The raw figures, as ``--json`` writes them (without the run's settings)."""
        return {
            "table": {**asdict(self.table), "window": [t.isoformat() for t in self.table.window]},
            "queries": self.queries,
            "pruning": self.prune,
            "verdicts": [asdict(v) for v in self.verdicts],
            "warm": {
                "samples": {k: s.rounds for k, s in self.warm_result.samples.items()},
                "origin_requests_timed": self.warm_result.origin_requests_timed,
            },
            "cold": {
                k: [{**asdict(r), "requests": r.requests} for r in rs]
                for k, rs in self.cold_results.items()
            },
            "processes": {k: [asdict(r) for r in rs] for k, rs in self.child_results.items()},
        }


def measure_all(
    server: S3Server,
    proxy: CountingProxy,
    redis_server: RedisServer,
    settings: Settings,
    shape: Shape,
    *,
    workdir: str,
    rounds: int,
    reps: int,
    cold_rounds: int,
    process_rounds: int,
) -> DeltaRun:
    """Write the table (bucket ``bench`` must exist; the local copy goes under ``workdir``), then
    measure (a), (b) and (c)."""
    local_dir = os.path.join(workdir, TABLE_KEY)
    table = write_table(server, shape, local_dir)
    queries = sql(table)
    prune = pruning(local_dir, table)
    local = local_context(local_dir)
    expected = {name: canonical(query(local, text)) for name, text in queries.items()}
    warm_result = warm(
        proxy,
        server,
        settings,
        local_dir=local_dir,
        queries=queries,
        expected=expected,
        rounds=rounds,
        reps=reps,
    )
    cold_results = cold(proxy, server, settings, queries, expected, rounds=cold_rounds)
    child_results = processes(
        proxy,
        server,
        redis_server,
        queries[SELECTIVE],
        expected[SELECTIVE],
        rounds=process_rounds,
    )
    return DeltaRun(
        table=table,
        prune=prune,
        queries=queries,
        warm_result=warm_result,
        cold_results=cold_results,
        child_results=child_results,
        verdicts=verdicts(warm_result, cold_results, child_results),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller table, few rounds")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of the warm cases (15)")
    parser.add_argument("--cold-rounds", type=int, default=9, help="rounds of the cold cases (9)")
    parser.add_argument("--process-rounds", type=int, default=5, help="rounds of (c) (5)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="proxy first-byte delay")
    parser.add_argument("--mbps", type=float, default=100.0, help="proxy bandwidth, MB/s")
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run as the (c) child
    args = parser.parse_args(argv)
    if args.child is not None:
        return child_main(json.loads(args.child))
    shape = FULL_SHAPE
    rounds, reps, cold_rounds, process_rounds = (
        args.rounds,
        5,
        args.cold_rounds,
        args.process_rounds,
    )
    if args.quick:
        shape = QUICK_SHAPE
        rounds, reps, cold_rounds, process_rounds = 5, 3, 3, 2
    settings = Settings.from_env(disk_dir=None, redis_url=None)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="tiercache-delta-bench-")
    try:
        with (
            S3Server() as server,
            HttpFaultProxy(
                server.endpoint_url,
                delay_s=args.delay_ms / 1000,
                bandwidth_bytes_per_s=args.mbps * 1e6,
            ) as proxy,
            RedisServer() as redis_server,
        ):
            server.create_bucket(BUCKET)
            run = measure_all(
                server,
                proxy,
                redis_server,
                settings,
                shape,
                workdir=workdir,
                rounds=rounds,
                reps=reps,
                cold_rounds=cold_rounds,
                process_rounds=process_rounds,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"python {sys.version.split()[0]}, tiercache {tiercache.__version__}, "
        f"fsspec {fsspec.__version__}, s3fs {s3fs.__version__}, pyarrow {pa.__version__}, "
        f"deltalake {deltalake.__version__}, datafusion {datafusion.__version__}, "
        f"{os.cpu_count()} cpus; block size {settings.block_size_bytes // KIB:,} KiB, "
        f"RAM tier {settings.memory_bytes // MIB:,} MiB, Redis timeout "
        f"{settings.redis_timeout_s * 1e3:g} ms; proxy {args.delay_ms:g} ms + {args.mbps:g} MB/s; "
        f"rounds: warm {rounds} x {reps}, cold {cold_rounds}, processes {process_rounds}; "
        f"took {time.perf_counter() - started:.0f} s\n"
    )
    print(run.report())
    misses = [v for v in run.verdicts if not v.met and not v.informative]
    for v in misses:
        print(f"TARGET MISSED: {v.scenario}: {v.ratio:.2f}x {v.reference} (target {v.target})")
    if not misses:
        print("All targets met.")
    if args.json:
        raw = {
            "settings": {
                "block_size": settings.block_size_bytes,
                "memory_bytes": settings.memory_bytes,
                "delay_ms": args.delay_ms,
                "mbps": args.mbps,
                "shape": asdict(shape),
                "rounds": {"warm": rounds, "reps": reps, "cold": cold_rounds},
                "process_rounds": process_rounds,
            },
            **run.raw(),
        }
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
