"""DataFusion's native reader over a Delta table, through the gateway and without it.

A Delta table (``rows`` rows in ``files`` commits, one Parquet file each, ids ascending so a
range of ids is one row group of one file) is written to the S3 server. Two queries: a full
aggregate (every row of two columns) and a selective one (a range of 100 ids). Five ways, every
one DataFusion's own Parquet reader on exactly the snapshot's files except the fsspec route:

- **local**: the snapshot's files copied to a local directory (the floor; page cache warm);
- **direct**: DataFusion's ``AmazonS3`` on the emulated store (20 ms to first byte, 100 MB/s
  per stream): what a user runs without tiercache, one session for every query. DataFusion 55
  keeps the Parquet footers it read in the session (its file-metadata cache), so a repeated
  query pays again for the HEADs and the data only; **direct, new session**: the same with a new
  ``SessionContext`` per query (an engine or a service that keeps nothing between queries): every
  footer read again. The cold target compares with this one: both start with nothing;
- **gateway warm**: ``register_delta`` (the native route) once, the query run once to warm the
  gateway's RAM tier, then timed;
- **gateway cold**: a fresh gateway (every tier empty: RAM only) and a new session per query;
  the registration (the log read through it) untimed, the query timed;
- **fsspec route warm**: ``register_delta(route="dataset")`` (a pyarrow dataset over the
  ``TieredFileSystem``), the RAM tier warm: what tiercache offered before the gateway;
- **fsspec route cold**: the same over a fresh ``TieredFileSystem`` (RAM only, empty; over an
  s3fs client built once: a cold cache, not a cold client) and a new session per query, the
  registration untimed;
- **direct, new session, N partitions**: "direct, new session" with DataFusion's
  ``target_partitions`` set to N (the default is the number of CPUs): more partitions read more
  ranges at once. The cold targets compare both routes with the best of the direct settings
  measured in the same run.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from datafusion import SessionConfig, SessionContext
from datafusion.object_store import AmazonS3
from deltalake import DeltaTable, write_deltalake

from harness.context import BUCKET, STORE, Context
from tiercache import TieredFileSystem
from tiercache.build import default_tiers
from tiercache.gateway.shared import close_shared, shared
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import storage_options_for
from tiercache.integrations.native import register_files

TABLE = "gateway-sql/events"
QUERIES = {
    "aggregate": "SELECT kind, count(*) AS n, sum(amount) AS total FROM t GROUP BY kind "
    "ORDER BY kind",
    "selective": "SELECT id, kind, amount FROM t WHERE id BETWEEN {lo} AND {hi} ORDER BY id",
}
KINDS = ("click", "view", "buy", "leave", "share")
#: The ``target_partitions`` settings the direct reader is also measured at (a new session each).
PARTITIONS = (8, 16)
#: The direct ways in a new session: DataFusion's default, then each of :data:`PARTITIONS`.
DIRECT_FRESH = (
    "direct, new session",
    *(f"direct, new session, {n} partitions" for n in PARTITIONS),
)
WAYS = (
    "local",
    "direct",
    *DIRECT_FRESH,
    "gateway warm",
    "gateway cold",
    "fsspec route warm",
    "fsspec route cold",
)


@dataclass(frozen=True)
class Shape:
    rows: int
    files: int
    rounds: int


def _batch(first: int, rows: int) -> pa.Table:
    rng = random.Random(first)
    return pa.table(
        {
            "id": pa.array(range(first, first + rows), pa.int64()),
            "kind": pa.array(
                [("click", "view", "buy", "leave", "share")[i % 5] for i in range(rows)]
            ),
            "amount": pa.array([rng.randrange(1_000_000) for _ in range(rows)], pa.int64()),
            "note": pa.array([f"n{rng.randrange(10_000)}" for _ in range(rows)]),
        }
    )


def write_table(ctx: Context, shape: Shape, local: Path) -> tuple[str, dict[str, str]]:
    """Write the table straight to the S3 server and copy its files to ``local``."""
    uri = f"s3://{BUCKET}/{TABLE}"
    direct = storage_options_for(ctx.server.storage_options())
    direct["AWS_REGION"] = "us-east-1"
    per_file = shape.rows // shape.files
    for i in range(shape.files):
        write_deltalake(uri, _batch(i * per_file, per_file), storage_options=direct, mode="append")
    table = DeltaTable(uri, storage_options=direct)
    client = ctx.client("loopback")
    local.mkdir(parents=True, exist_ok=True)
    for n, file_uri in enumerate(table.file_uris()):
        (local / f"part-{n}.parquet").write_bytes(client.cat_file(file_uri.removeprefix("s3://")))
    return uri, direct


def _sql(shape: Shape) -> dict[str, str]:
    lo = shape.rows // 2 + 17
    return {name: text.format(lo=lo, hi=lo + 99) for name, text in QUERIES.items()}


def _run(session: SessionContext, text: str) -> tuple[float, list[dict[str, Any]]]:
    t0 = time.perf_counter()
    rows = session.sql(text).to_pylist()
    return time.perf_counter() - t0, rows


def _direct_session(
    ctx: Context, uri: str, direct: dict[str, str], partitions: int | None = None
) -> SessionContext:
    """DataFusion's ``AmazonS3`` on the emulated store, over exactly the snapshot's files
    (``partitions``: its ``target_partitions``; None: DataFusion's default)."""
    options = ctx.options(STORE)
    store = AmazonS3(
        bucket_name=BUCKET,
        endpoint=ctx.proxies[STORE].url,
        allow_http=True,
        access_key_id=options["key"],
        secret_access_key=options["secret"],
        region="us-east-1",
    )
    config = SessionConfig()
    if partitions is not None:
        config = config.with_target_partitions(partitions)
    session = SessionContext(config)
    register_files(session, "t", DeltaTable(uri, storage_options=direct), store, (BUCKET, TABLE))
    return session


def _pod(ctx: Context, client: Any = None, **overrides: Any) -> TieredFileSystem:
    """A filesystem over the emulated store, RAM only (its gateway's tiers: RAM only too); over
    ``client`` (an s3fs filesystem) when given, else over a new s3fs client."""
    settings = dataclasses.replace(ctx.settings, disk_dir=None, redis_url=None, **overrides)
    if client is not None:
        # Tiers of its own: the chain shared by target and settings may be an earlier pod's,
        # reading through that pod's s3fs client, not this one.
        tiers = default_tiers(settings)
        return TieredFileSystem(fs=client, settings=settings, tiers=tiers, skip_instance_cache=True)
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**ctx.options(STORE), "skip_instance_cache": True},
        settings=settings,
        skip_instance_cache=True,
    )


def _cold(
    ctx: Context, uri: str, text: str, fresh: int, client: Any = None
) -> tuple[float, list[dict[str, Any]]]:
    """``text`` through a gateway with empty tiers (started for a settings value no other used;
    the registration, which reads the log through it, untimed), then stopped. With ``client``
    (an s3fs client already built and connected), the data files are read through empty tiers
    over it on the dataset route: a cold cache, not a cold client (building a botocore client
    costs 100+ ms and varies; a service builds it once, as DataFusion's own store is built before
    the direct queries are timed)."""
    route: Literal["native", "dataset"] = "native" if client is None else "dataset"
    pod = _pod(ctx, client, memory_bytes=ctx.settings.memory_bytes + fresh)
    session = SessionContext()
    assert register_delta(session, "t", uri, filesystem=pod, route=route).route == route
    try:
        return _run(session, text)
    finally:
        shared(pod).close()  # its memory goes with it
        pod.close()


def measure(ctx: Context, shape: Shape) -> dict[str, dict[str, list[float]]]:
    """Seconds per query, by query and way, over ``shape.rounds`` rounds; every answer checked
    against the local one."""
    local_dir = ctx.workdir / "gateway-sql"
    uri, direct_options = write_table(ctx, shape, local_dir)
    queries = _sql(shape)
    local = SessionContext()
    local.register_parquet("t", str(local_dir))
    expected = {name: local.sql(text).to_pylist() for name, text in queries.items()}
    times: dict[str, dict[str, list[float]]] = {q: {w: [] for w in WAYS} for q in queries}
    direct = _direct_session(ctx, uri, direct_options)
    warm_pod = _pod(ctx)
    client = ctx.client(STORE)  # the fsspec route's cold rounds: empty tiers over this client
    warm = SessionContext()
    assert register_delta(warm, "t", uri, filesystem=warm_pod).route == "native"
    fsspec = SessionContext()
    register_delta(fsspec, "t", uri, filesystem=warm_pod, route="dataset")
    sessions = {"local": local, "direct": direct, "gateway warm": warm, "fsspec route warm": fsspec}
    for name, text in queries.items():  # warm every tier and page cache; check the answers
        for way, session in sessions.items():
            assert _run(session, text)[1] == expected[name], (name, way)
    try:
        for n in range(shape.rounds):
            order = list(queries.items())
            random.Random(n).shuffle(order)
            for i, (name, text) in enumerate(order):
                fresh = (n * len(order) + i + 1) * 4096
                for way, over in (("gateway cold", None), ("fsspec route cold", client)):
                    seconds, rows = _cold(ctx, uri, text, fresh, over)
                    assert rows == expected[name], (name, way)
                    times[name][way].append(seconds)
                for way, session in sessions.items():
                    seconds, rows = _run(session, text)
                    times[name][way].append(seconds)
                for way, partitions in zip(DIRECT_FRESH, (None, *PARTITIONS), strict=True):
                    seconds, rows = _run(
                        _direct_session(ctx, uri, direct_options, partitions), text
                    )
                    assert rows == expected[name], (name, way)
                    times[name][way].append(seconds)
    finally:
        close_shared()
        warm_pod.close()
    return times


def medians(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {q: {w: statistics.median(v) for w, v in ways.items()} for q, ways in times.items()}
