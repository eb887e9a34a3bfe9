"""``register_delta``'s native route: DataFusion's own Parquet reader, through the process's
shared gateway, over exactly the files of the Delta snapshot; compared with deltalake's own
reader (no tiercache anywhere) on the same table."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake

from tiercache import ConfigError, Settings, TieredFileSystem
from tiercache.gateway import Gateway, GatewayError
from tiercache.gateway.shared import shared
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import storage_options_for
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DAYS = ("2026-11-01", "2026 11 02 %")  # the second needs escaping in paths and in URLs
ROWS = 20_000
QUERIES = (
    "SELECT day, count(*) AS n, sum(amount) AS total, min(id) AS first FROM events "
    "GROUP BY day ORDER BY day",
    "SELECT id, kind, amount FROM events WHERE id BETWEEN 12345 AND 12350 ORDER BY id, day",
    f"SELECT count(*) AS n, max(id) AS last FROM events WHERE day = '{DAYS[1]}'",
)


def _events(first: int, rows: int = ROWS) -> pa.Table:
    ids = range(first, first + rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "kind": pa.array([("click", "view", "buy", "leave")[i % 4] for i in ids]),
            "amount": pa.array([(i * 2_654_435_761) % 1_000_003 for i in ids], pa.int64()),
            "day": pa.array([DAYS[i % 2] for i in ids]),
        }
    )


class Table:
    """A partitioned Delta table on the S3 server: two appends and a delete (so the folder
    holds a file the snapshot no longer has)."""

    def __init__(self, s3_server: S3Server, proxy: HttpFaultProxy) -> None:
        self.bucket = f"native-{uuid.uuid4().hex[:12]}"
        s3_server.create_bucket(self.bucket)
        self.uri = f"s3://{self.bucket}/events"
        self.options = storage_options_for(s3_server.storage_options())
        self.options["AWS_REGION"] = "us-east-1"
        self.proxy = proxy
        self.target = {**s3_server.storage_options(proxy.url), "skip_instance_cache": True}
        write_deltalake(self.uri, _events(0), storage_options=self.options, partition_by=["day"])
        write_deltalake(
            self.uri, _events(ROWS), storage_options=self.options, mode="append",
            partition_by=["day"],
        )  # fmt: skip
        DeltaTable(self.uri, storage_options=self.options).delete("kind = 'leave' AND id < 5000")

    def filesystem(self, **settings: Any) -> TieredFileSystem:
        """A filesystem whose origin is the S3 server behind the counting proxy."""
        chosen = Settings(**{"memory_bytes": 64 << 20, **settings})
        return TieredFileSystem(
            target_protocol="s3",
            target_options=self.target,
            settings=chosen,
            skip_instance_cache=True,
        )

    def direct(self, sql: str, version: int | None = None) -> list[dict[str, Any]]:
        """``sql`` over deltalake's own reader: no tiercache anywhere."""
        table = DeltaTable(self.uri, storage_options=self.options, version=version)
        ctx = SessionContext()
        ctx.register_dataset("events", table.to_pyarrow_dataset())
        return ctx.sql(sql).to_pylist()


@pytest.fixture
def table(s3_server: S3Server) -> Iterator[Table]:
    with HttpFaultProxy(s3_server.endpoint_url) as proxy:
        yield Table(s3_server, proxy)


def _native(table: Table, fs: TieredFileSystem, **kwargs: Any) -> tuple[SessionContext, Any]:
    ctx = SessionContext()
    registered = register_delta(ctx, "events", table.uri, filesystem=fs, route="native", **kwargs)
    return ctx, registered


def test_the_same_rows_as_deltalake_and_the_second_query_reaches_the_store_not_at_all(
    table: Table,
) -> None:
    fs = table.filesystem()
    ctx, registered = _native(table, fs)
    assert registered.route == "native"
    snapshot = DeltaTable(table.uri, storage_options=table.options)
    assert registered.version == snapshot.version()
    # Exactly the snapshot's files: the file the delete replaced is in the folder, not here.
    assert sorted(unquote(url) for url in registered.files) == sorted(snapshot.file_uris())
    table.proxy.reset_counters()
    first = [ctx.sql(sql).to_pylist() for sql in QUERIES]
    # The files' info came from the log (seeded into the gateway): no HEAD reached the store.
    assert table.proxy.requests("HEAD") == 0
    assert table.proxy.requests("GET") > 0
    assert first == [table.direct(sql) for sql in QUERIES]
    assert all(first)  # every query selects something
    table.proxy.reset_counters()
    assert [ctx.sql(sql).to_pylist() for sql in QUERIES] == first
    assert table.proxy.requests() == 0  # no data GET, no listing, no HEAD


def test_time_travel_reads_the_older_snapshot(table: Table) -> None:
    fs = table.filesystem()
    sql = QUERIES[0]
    ctx, registered = _native(table, fs, version=0)
    assert registered.version == 0
    assert ctx.sql(sql).to_pylist() == table.direct(sql, version=0)
    assert sum(row["n"] for row in ctx.sql(sql).to_pylist()) == ROWS


def test_a_partition_filter_reads_only_that_partition(table: Table) -> None:
    ctx, _ = _native(table, table.filesystem())
    sql = f"SELECT sum(amount) AS total FROM events WHERE day = '{DAYS[1]}'"
    assert ctx.sql(sql).to_pylist() == table.direct(sql)
    plan = ctx.sql(f"EXPLAIN {sql}").to_pylist()
    physical = next(row["plan"] for row in plan if row["plan_type"] == "physical_plan")
    # The gateway's snapshot view has directories of one partition's files each: exactly the
    # files of the partition asked for are scanned, none of the other.
    scanned = re.findall(r"_tiercache_snapshot/[0-9a-f]+/p\d+/\d+\.parquet", physical)
    snapshot = DeltaTable(table.uri, storage_options=table.options)
    wanted = [uri for uri in snapshot.file_uris() if "day=2026%2011%2002%20%25" in uri]
    assert len(scanned) == len(wanted) > 0
    assert len(wanted) < len(snapshot.file_uris())


def test_registering_again_sees_a_new_commit(table: Table) -> None:
    fs = table.filesystem()
    ctx, before = _native(table, fs)
    count = "SELECT count(*) AS n FROM events"
    n = ctx.sql(count).to_pylist()[0]["n"]
    write_deltalake(
        table.uri, _events(10 * ROWS, 10), storage_options=table.options, mode="append",
        partition_by=["day"],
    )  # fmt: skip
    assert ctx.sql(count).to_pylist()[0]["n"] == n  # the snapshot registered
    after = register_delta(ctx, "events", table.uri, filesystem=fs)
    assert after.version == before.version + 1
    assert ctx.sql(count).to_pylist()[0]["n"] == n + 10


def test_the_filesystems_share_one_gateway_per_target_and_settings(table: Table) -> None:
    one, two = table.filesystem(), table.filesystem()
    other = table.filesystem(memory_bytes=32 << 20)
    assert shared(one) is shared(two)
    assert shared(other) is not shared(one)
    _, registered = _native(table, one)
    assert registered.route == "native"
    stats = shared(one).stats()
    assert stats["gateway"]["requests"]["GetObject"]  # the log came through it


def test_an_empty_snapshot_is_an_empty_table(table: Table) -> None:
    fs = table.filesystem()
    DeltaTable(table.uri, storage_options=table.options).delete()
    ctx, registered = _native(table, fs)
    assert registered.files == ()
    assert ctx.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]
    assert ctx.table("events").schema().names == ["id", "kind", "amount", "day"]


def test_a_local_table_cannot_take_the_native_route(tmp_path: Any) -> None:
    uri = str(tmp_path / "local")
    write_deltalake(uri, _events(0, 100))
    ctx = SessionContext()
    with pytest.raises(ConfigError, match=r"native route cannot read .*no gateway reaches it"):
        register_delta(ctx, "events", uri, route="native")
    registered = register_delta(ctx, "events", uri)  # auto: the dataset route, and why
    assert registered.route == "dataset"
    assert registered.reason is not None
    assert "s3://" in registered.reason
    assert ctx.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 100}]
    with pytest.raises(ConfigError, match="route must be"):
        register_delta(ctx, "events", uri, route="fast")  # type: ignore[arg-type]


def test_without_a_snapshot_view_each_file_is_read_on_its_own_url(
    table: Table, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any) -> str:
        raise GatewayError(501, "POST /-/snapshot: HTTP 501: an older gateway")

    monkeypatch.setattr(Gateway, "snapshot", refuse)
    ctx, registered = _native(table, table.filesystem(memory_bytes=24 << 20))
    assert registered.route == "native"
    assert "made no snapshot view" in caplog.text
    plan = ctx.sql(f"EXPLAIN {QUERIES[0]}").to_pylist()
    physical = next(row["plan"] for row in plan if row["plan_type"] == "physical_plan")
    assert "_tiercache_snapshot" not in physical
    assert physical.count(".parquet") == len(registered.files)  # one scan per real file
    assert [ctx.sql(sql).to_pylist() for sql in QUERIES] == [table.direct(sql) for sql in QUERIES]
