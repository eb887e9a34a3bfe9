"""The gateway in front of GCS and Azure, and Delta tables on each store, against the real
emulators (gcp-storage-emulator, Azurite) behind a counting proxy.

A native engine that only speaks S3 (DuckDB's httpfs, DataFusion's ``AmazonS3``, deltalake's
own S3 client) reads a GCS bucket or an Azure container through the tiers: the gateway's bucket
is the store's bucket or container. The second pass reads nothing from the store.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake
from fsspec import AbstractFileSystem

from tests.gateway.test_duckdb import httpfs_connection
from tiercache import Settings, TieredFileSystem
from tiercache.gateway import start
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import delta_dataset
from tiercache.testing import AzuriteServer, GcsServer, HttpFaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROWS = 50_000


@dataclass
class Store:
    """One store behind a counting proxy: its URI scheme, a bucket and the target options."""

    name: str
    scheme: str
    protocol: str
    bucket: str
    options: dict[str, Any]
    direct: dict[str, Any]
    proxy: HttpFaultProxy

    def raw(self) -> AbstractFileSystem:
        """The store's own fsspec filesystem, straight to the emulator (for setup)."""
        import fsspec

        return fsspec.filesystem(self.protocol, **self.direct, skip_instance_cache=True)

    def tiered(self) -> TieredFileSystem:
        """tiercache over the store, through the counting proxy."""
        return TieredFileSystem(
            target_protocol=self.protocol,
            target_options=self.options,
            settings=Settings(memory_bytes=64 << 20),
            skip_instance_cache=True,
        )

    def uri(self, path: str) -> str:
        return f"{self.scheme}://{self.bucket}/{path}"


@pytest.fixture(params=["gcs", "azure"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "gcs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        bucket = f"gw-{uuid.uuid4().hex[:12]}"
        gcs.create_bucket(bucket)
        with HttpFaultProxy(gcs.endpoint_url) as proxy:
            yield Store(
                "gcs",
                "gs",
                "gs",
                bucket,
                gcs.storage_options(proxy.url),
                gcs.storage_options(),
                proxy,
            )
        return
    azurite: AzuriteServer = request.getfixturevalue("azurite_server")
    container = f"gw-{uuid.uuid4().hex[:12]}"
    azurite.create_container(container)
    with HttpFaultProxy(azurite.endpoint_url.rsplit("/", 1)[0]) as proxy:
        proxied = f"{proxy.url}/{azurite.endpoint_url.rsplit('/', 1)[1]}"
        yield Store(
            "azure",
            "az",
            "abfs",
            container,
            azurite.storage_options(proxied),
            azurite.storage_options(),
            proxy,
        )


def _parquet(rows: int) -> bytes:
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "kind": pa.array([("a", "b", "c")[i % 3] for i in range(rows)]),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=10_000)
    return buffer.getvalue()


def test_duckdb_reads_the_store_through_the_gateway_and_the_second_query_is_cached(
    store: Store,
) -> None:
    raw = store.raw()
    raw.pipe(f"{store.bucket}/logs/part-0.parquet", _parquet(ROWS))
    raw.pipe(f"{store.bucket}/logs/part-1.parquet", _parquet(ROWS // 2))
    sql = "SELECT count(*), sum(id), count(DISTINCT kind) FROM 's3://{}/logs/*.parquet'"
    expected = [(ROWS + ROWS // 2, sum(range(ROWS)) + sum(range(ROWS // 2)), 3)]
    with start(store.tiered()) as gateway:
        con = httpfs_connection(gateway)
        try:
            store.proxy.reset_counters()
            assert con.execute(sql.format(store.bucket)).fetchall() == expected
            first = store.proxy.requests()
            store.proxy.reset_counters()
            single = f"SELECT count(*) FROM 's3://{store.bucket}/logs/part-0.parquet'"
            assert con.execute(single).fetchall() == [(ROWS,)]
            # The objects' info and blocks are in the gateway's tiers: no request reaches the
            # store (the glob's listing always does, so the second query names one file).
            second = store.proxy.requests()
            with pytest.raises(duckdb.Error, match="404"):
                con.execute(f"SELECT * FROM 's3://{store.bucket}/none.parquet'").fetchall()
        finally:
            con.close()
    assert first > 0
    assert second == 0


def _write_delta(tmp_path: Path, store: Store) -> tuple[str, pa.Table]:
    """A partitioned Delta table with two commits, written locally and copied to the store
    (the emulators' own clients are not what is under test here)."""
    local = tmp_path / "events"
    table = pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "day": pa.array([("2026-12-01", "2026-12-02")[i % 2] for i in range(ROWS)]),
            "amount": pa.array([(i * 7919) % 1000 for i in range(ROWS)], pa.int64()),
        }
    )
    write_deltalake(str(local), table.slice(0, ROWS // 2), partition_by=["day"])
    write_deltalake(str(local), table.slice(ROWS // 2), partition_by=["day"], mode="append")
    raw = store.raw()
    raw.put(str(local), f"{store.bucket}/events", recursive=True)
    assert DeltaTable(str(local)).version() == 1
    return str(local), table


QUERY = "SELECT day, count(*) AS n, sum(amount) AS total FROM events GROUP BY day ORDER BY day"


def test_delta_tables_on_the_store_through_both_routes(store: Store, tmp_path: Path) -> None:
    """``register_delta`` on a ``gs://`` / ``az://`` table: the native route (deltalake's log
    and DataFusion's Parquet reader through the gateway) and the dataset route (the fsspec
    filesystem) give deltalake's own answer on the local copy; a second query of the native
    route reads nothing from the store."""
    local, _ = _write_delta(tmp_path, store)
    ctx = SessionContext()
    ctx.register_dataset("events", DeltaTable(local).to_pyarrow_dataset())
    expected = ctx.sql(QUERY).to_pylist()

    fs = store.tiered()
    native = SessionContext()
    registered = register_delta(native, "events", store.uri("events"), filesystem=fs)
    assert registered.route == "native"
    assert registered.version == 1
    assert native.sql(QUERY).to_pylist() == expected
    store.proxy.reset_counters()
    assert native.sql(QUERY).to_pylist() == expected
    assert store.proxy.requests() == 0

    dataset = SessionContext()
    chosen = register_delta(
        dataset, "events", store.uri("events"), filesystem=store.tiered(), route="dataset"
    )
    assert chosen.route == "dataset"
    assert dataset.sql(QUERY).to_pylist() == expected
    rows = delta_dataset(store.uri("events"), filesystem=fs, version=0).to_table()
    assert rows.num_rows == ROWS // 2


def test_writes_through_the_gateway_reach_the_store_and_are_read_back(store: Store) -> None:
    """boto3 puts, copies, lists and deletes through the gateway over the store; a put of an
    existing key with ``If-None-Match: *`` (how deltalake commits) is refused where the store
    honours the condition: Azurite does (412); gcp-storage-emulator ignores
    ``ifGenerationMatch=0`` (docs/stores.md), so there the store's answer is taken as it is."""
    import boto3
    from botocore.exceptions import ClientError

    with start(store.tiered()) as gateway:
        options = gateway.s3fs_options()
        s3 = boto3.client(
            "s3",
            endpoint_url=gateway.endpoint_url,
            aws_access_key_id=options["key"],
            aws_secret_access_key=options["secret"],
            region_name="us-east-1",
        )
        bucket = store.bucket
        s3.put_object(Bucket=bucket, Key="w/a.bin", Body=b"first")
        assert s3.get_object(Bucket=bucket, Key="w/a.bin")["Body"].read() == b"first"
        s3.put_object(Bucket=bucket, Key="w/a.bin", Body=b"second")  # the cache forgets it
        assert s3.get_object(Bucket=bucket, Key="w/a.bin")["Body"].read() == b"second"
        assert store.raw().cat_file(f"{bucket}/w/a.bin") == b"second"
        s3.copy_object(
            Bucket=bucket, Key="w/b.bin", CopySource={"Bucket": bucket, "Key": "w/a.bin"}
        )
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="w/")
        assert [o["Key"] for o in listed["Contents"]] == ["w/a.bin", "w/b.bin"]
        s3.put_object(Bucket=bucket, Key="w/new.bin", Body=b"n", IfNoneMatch="*")
        if store.name == "azure":
            with pytest.raises(ClientError, match="PreconditionFailed"):
                s3.put_object(Bucket=bucket, Key="w/new.bin", Body=b"again", IfNoneMatch="*")
            assert store.raw().cat_file(f"{bucket}/w/new.bin") == b"n"
        else:  # the emulator's measured behaviour, documented; should it change, so must the docs
            s3.put_object(Bucket=bucket, Key="w/new.bin", Body=b"again", IfNoneMatch="*")
            assert store.raw().cat_file(f"{bucket}/w/new.bin") == b"again"
        s3.delete_object(Bucket=bucket, Key="w/b.bin")
        with pytest.raises(ClientError, match=r"404"):
            s3.head_object(Bucket=bucket, Key="w/b.bin")
