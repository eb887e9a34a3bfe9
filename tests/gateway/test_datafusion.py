"""DataFusion's native reader (Rust ``object_store``'s ``AmazonS3``) through the gateway, over
exactly the files of a Delta snapshot, compared with pyarrow; a repeated query reaches the
origin not at all.

``ctx.register_table(DeltaTable)`` finds no object store for ``s3://`` (datafusion 55 with
deltalake 1.6), so the snapshot's files (``DeltaTable.file_uris()``) are read as Parquet with
DataFusion's own store. Never a directory listing: after a delete the table's folder still
holds the removed files, and a listing would count their rows again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datafusion import SessionContext
from datafusion.object_store import AmazonS3
from deltalake import DeltaTable, write_deltalake

from tests.gateway.conftest import BLOCK
from tests.gateway.engines import arrow_fs, delta_options, new_bucket
from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, start
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROWS = 150_000  # per commit: files of several blocks
QUERY = (
    "SELECT kind, count(*) AS n, sum(amount) AS total, min(id) AS first "
    "FROM events WHERE id % 3 <> 0 GROUP BY kind ORDER BY kind"
)


@pytest.fixture
def origin_proxy(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    """Counts the gateway's requests to the S3 server."""
    with HttpFaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def counted_gateway(s3_server: S3Server, origin_proxy: HttpFaultProxy) -> Iterator[Gateway]:
    """A gateway whose origin is the S3 server behind ``origin_proxy``."""
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(origin_proxy.url), "skip_instance_cache": True},
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20),
        skip_instance_cache=True,
    )
    with start(fs) as running:
        yield running


def _events(ids: range) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "kind": pa.array(
                [("click", "view", "buy", "leave", "share")[i % 5] for i in ids], pa.string()
            ),
            "amount": pa.array([(i * 2_654_435_761) % 1_000_003 for i in ids], pa.int64()),
        }
    )


def _session(gateway: Gateway, bucket: str, uris: list[str]) -> SessionContext:
    """A session whose ``events`` view is exactly the Parquet files ``uris``, read by
    DataFusion's ``AmazonS3`` store on the gateway."""
    options = gateway.s3fs_options()
    store = AmazonS3(
        bucket_name=bucket,
        endpoint=gateway.endpoint_url,
        allow_http=True,
        access_key_id=options["key"],
        secret_access_key=options["secret"],
        region="us-east-1",
    )
    ctx = SessionContext()
    ctx.register_object_store("s3://", store, bucket)  # "s3://bucket" alone matches no URL
    frame: Any = None
    for uri in uris:  # one file each: a file path is a HEAD, never a listing
        part = ctx.read_parquet(uri)
        frame = part if frame is None else frame.union(part)
    ctx.register_view("events", frame)
    return ctx


def _pyarrow_answer(gateway: Gateway, uris: list[str]) -> list[dict[str, Any]]:
    """QUERY computed by pyarrow over the same files, read with pyarrow's own S3 client."""
    fs = arrow_fs(gateway)
    schema = _events(range(0)).schema  # delta-rs rewrote one file with string_view
    table = pa.concat_tables(
        [pq.read_table(uri.removeprefix("s3://"), filesystem=fs).cast(schema) for uri in uris]
    )
    kept = table.filter(pa.array([i % 3 != 0 for i in table["id"].to_pylist()]))
    grouped = kept.group_by("kind").aggregate([("id", "count"), ("amount", "sum"), ("id", "min")])
    rows = [
        {"kind": r["kind"], "n": r["id_count"], "total": r["amount_sum"], "first": r["id_min"]}
        for r in grouped.to_pylist()
    ]
    return sorted(rows, key=lambda r: r["kind"])


def _python_answer(ids: range) -> list[dict[str, Any]]:
    """QUERY over the table as it should be (the first commit's 'leave' rows deleted), in
    plain Python."""
    rows: dict[str, dict[str, Any]] = {}
    table = _events(ids).to_pylist()
    for row in table:
        if (row["kind"] == "leave" and row["id"] < ROWS) or row["id"] % 3 == 0:
            continue
        got = rows.setdefault(row["kind"], {"kind": row["kind"], "n": 0, "total": 0})
        got["n"] += 1
        got["total"] += row["amount"]
        got.setdefault("first", row["id"])
    return [rows[kind] for kind in sorted(rows)]


def test_sql_over_the_snapshot_files_equals_pyarrow_and_repeats_from_the_tiers(
    s3_server: S3Server, counted_gateway: Gateway, origin_proxy: HttpFaultProxy
) -> None:
    gateway = counted_gateway
    bucket = new_bucket(s3_server)
    uri = f"s3://{bucket}/events"
    options = delta_options(gateway)
    write_deltalake(uri, _events(range(ROWS)), storage_options=options)
    write_deltalake(uri, _events(range(ROWS, 2 * ROWS)), storage_options=options, mode="append")
    table = DeltaTable(uri, storage_options=options)
    table.delete(f"kind = 'leave' AND id < {ROWS}")  # rewrites the first file only
    table = DeltaTable(uri, storage_options=options)
    uris = table.file_uris()
    assert len(uris) == 2
    listed = arrow_fs(gateway).get_file_info(pa.fs.FileSelector(f"{bucket}/events"))
    assert sum(i.path.endswith(".parquet") for i in listed) == 3  # the removed one stays

    ctx = _session(gateway, bucket, uris)
    origin_proxy.reset_counters()
    first = ctx.sql(QUERY).to_pylist()
    cold_gets = origin_proxy.requests("GET")
    expected = _pyarrow_answer(gateway, uris)
    assert first == expected
    assert first == _python_answer(range(2 * ROWS))  # no row of a removed file counted
    assert cold_gets > 0  # the appended file's pages came from the origin once

    origin_proxy.reset_counters()
    second = ctx.sql(QUERY).to_pylist()
    assert second == first
    assert origin_proxy.requests("GET") == 0  # no data GET, no listing
    assert origin_proxy.requests() == 0  # no HEAD either: the files are immutable (UUID names)
