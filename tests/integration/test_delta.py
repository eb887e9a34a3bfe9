"""Delta tables through the tiers, against the S3 server: DataFusion via register_delta, the
direct path for comparison, partitions, time travel, warmup, and the ``warm`` command."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import datafusion
import deltalake
import pyarrow as pa
import pytest
import s3fs

from tiercache import Settings, TieredFileSystem, warm
from tiercache.cli import main
from tiercache.datafusion import register_delta
from tiercache.delta import delta_dataset, storage_options_for
from tiercache.fs import default_tiers
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

DAYS = ("2026-11-01", "2026-11-02")
COMMITS = 3
ROWS = 3000  # per commit

LOOKUP = "SELECT span_id, service, duration_ms FROM spans WHERE trace_id = '{}' ORDER BY span_id"
AGGREGATE = (
    "SELECT service, day, count(*) AS n, sum(duration_ms) AS total FROM spans "
    "WHERE start_us BETWEEN 1000 AND 5000000 GROUP BY service, day ORDER BY service, day"
)


def spans(commit: int) -> pa.Table:
    n = ROWS
    base = commit * n
    return pa.table(
        {
            "trace_id": [f"t{(base + i) // 10:08d}" for i in range(n)],
            "span_id": [f"s{base + i:08d}" for i in range(n)],
            "service": [("api", "db", "cache")[i % 3] for i in range(n)],
            "start_us": pa.array([(base + i) * 1000 for i in range(n)], pa.int64()),
            "duration_ms": pa.array([float((i * 7) % 500) for i in range(n)]),
            "day": [DAYS[i % 2] for i in range(n)],
        }
    )


@dataclass
class Table:
    uri: str
    root: str
    storage_options: dict[str, str]
    server: S3Server
    proxy: HttpFaultProxy

    def tiered(self, **settings: Any) -> TieredFileSystem:
        """A fresh filesystem (RAM only, own tiers) whose origin goes through the proxy."""
        options: dict[str, Any] = {"memory_bytes": 64 << 20, **settings}
        chosen = Settings(**options)
        target = s3fs.S3FileSystem(
            **self.server.storage_options(self.proxy.url), skip_instance_cache=True
        )
        return TieredFileSystem(fs=target, settings=chosen, tiers=default_tiers(chosen))

    def direct(self, sql: str, version: int | None = None) -> list[dict[str, Any]]:
        """The same SQL over deltalake's own reader: no tiercache anywhere."""
        table = deltalake.DeltaTable(
            self.uri, storage_options=self.storage_options, version=version
        )
        ctx = datafusion.SessionContext()
        ctx.register_dataset("spans", table.to_pyarrow_dataset())
        return ctx.sql(sql).to_pylist()


@pytest.fixture
def table(s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy) -> Table:
    uri = f"s3://{s3_bucket}/spans"
    options = storage_options_for(s3_server.storage_options())
    for commit in range(COMMITS):
        deltalake.write_deltalake(
            uri, spans(commit), partition_by=["day"], mode="append", storage_options=options
        )
    return Table(uri, f"{s3_bucket}/spans", options, s3_server, fault_proxy)


def query(fs: TieredFileSystem, table: Table, sql: str, **kwargs: Any) -> list[dict[str, Any]]:
    ctx = datafusion.SessionContext()
    register_delta(
        ctx, "spans", table.uri, storage_options=table.storage_options, filesystem=fs, **kwargs
    )
    return ctx.sql(sql).to_pylist()


def origin_requests(fs: TieredFileSystem) -> int:
    requests: int = fs.stats()["origin"]["requests"]
    return requests


def test_same_rows_as_the_direct_path_and_no_origin_request_the_second_time(
    table: Table,
) -> None:
    fs = table.tiered()
    lookup = LOOKUP.format("t00000412")
    for sql in (lookup, AGGREGATE):
        expected = table.direct(sql)
        assert expected  # the query selects something
        assert query(fs, table, sql) == expected
    assert origin_requests(fs) > 0
    table.proxy.reset_counters()
    before = origin_requests(fs)
    for sql in (lookup, AGGREGATE):
        assert query(fs, table, sql) == table.direct(sql)
    assert origin_requests(fs) == before
    assert table.proxy.requests() == 0  # nothing reached the object store through the tiers


def test_opening_data_files_costs_no_head_request(table: Table) -> None:
    fs = table.tiered()
    table.proxy.reset_counters()
    query(fs, table, AGGREGATE)
    assert table.proxy.requests("HEAD") == 0
    assert fs.stats()["info"]["origin"] == 0  # sizes came from the Delta log
    assert table.proxy.requests("GET") > 0


def test_a_partition_filter_reads_only_that_partition(table: Table) -> None:
    fs = table.tiered()
    sql = "SELECT count(*) AS n FROM spans WHERE day = '2026-11-02'"
    assert query(fs, table, sql) == table.direct(sql) == [{"n": COMMITS * ROWS // 2}]
    files = list(delta_dataset(table.uri, storage_options=table.storage_options).files)
    assert len(files) == COMMITS * len(DAYS)
    for relative in files:
        before = origin_requests(fs)
        fs.read_range(f"{table.root}/{relative}", -8, None)
        fetched = origin_requests(fs) > before
        # Files of the other day were never opened: their footer is not cached.
        assert fetched == ("day=2026-11-01" in relative), relative


def test_time_travel_reads_the_older_version(table: Table) -> None:
    fs = table.tiered()
    sql = "SELECT count(*) AS n, min(span_id) AS first, max(span_id) AS last FROM spans"
    first = query(fs, table, sql, version=0)
    assert first == table.direct(sql, version=0)
    assert first[0]["n"] == ROWS
    latest = query(fs, table, sql)
    assert latest == table.direct(sql)
    assert latest[0]["n"] == COMMITS * ROWS


def test_register_delta_builds_its_filesystem_from_the_environment(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERCACHE_MEMORY_BYTES", "32MiB")
    ctx = datafusion.SessionContext()
    dataset = register_delta(ctx, "spans", table.uri, storage_options=table.storage_options)
    assert ctx.sql(AGGREGATE).to_pylist() == table.direct(AGGREGATE)
    # The dataset's filesystem is tiercache: a TieredFileSystem behind pyarrow's handler.
    handler = dataset.filesystem.base_fs.handler
    assert isinstance(handler.fs, TieredFileSystem)
    assert handler.fs.settings.memory_bytes == 32 << 20
    assert handler.fs.stats()["origin"]["requests"] > 0


def test_warm_takes_the_most_recent_commit_first(table: Table) -> None:
    fs = table.tiered()
    report = warm(table.uri, filesystem=fs, storage_options=table.storage_options, max_files=2)
    assert (report.files_found, report.files_attempted, report.files_warmed) == (6, 2, 2)
    assert report.errors == []
    assert report.stopped_by is None
    assert fs.stats()["origin"]["requests"] == 0  # warm reads are prefetch, not demand
    assert fs.stats()["prefetch"]["origin"]["requests"] >= 2
    newest = deltalake.DeltaTable(table.uri, storage_options=table.storage_options)
    actions = pa.table(newest.get_add_actions(flatten=True)).sort_by(
        [("modification_time", "descending")]
    )
    paths = actions.column("path").to_pylist()
    for rank, relative in enumerate(paths):
        before = origin_requests(fs)
        fs.read_range(f"{table.root}/{relative}", -8, None)
        assert (origin_requests(fs) == before) == (rank < 2), (rank, relative)


def test_warm_then_query_needs_only_the_data_ranges(table: Table) -> None:
    cold = table.tiered()
    query(cold, table, AGGREGATE)
    warmed = table.tiered()
    report = warm(table.uri, filesystem=warmed, storage_options=table.storage_options)
    assert report.files_warmed == COMMITS * len(DAYS)
    query(warmed, table, AGGREGATE)
    # Small files: the footer block holds the whole file, so the warmed query is all hits.
    assert origin_requests(warmed) < origin_requests(cold)


def test_warm_command_prints_its_report(table: Table, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["warm", table.uri, "--max-files", "3", "--json"]
    for name, value in table.storage_options.items():
        arguments += ["--storage-option", f"{name}={value}"]
    assert main(arguments) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files_warmed"] == 3
    assert report["files_found"] == COMMITS * len(DAYS)
    assert report["errors"] == []

    assert main(["warm", table.uri, "--max-files", "1", *arguments[5:]]) == 0
    assert capsys.readouterr().out.startswith("warmed 1 of 1 files attempted (6 found)")


def test_warm_command_on_a_missing_table_reports_and_exits_zero(
    s3_server: S3Server, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["warm", f"s3://{s3_bucket}/no-such-{uuid.uuid4().hex}"]
    for name, value in storage_options_for(s3_server.storage_options()).items():
        arguments += ["--storage-option", f"{name}={value}"]
    assert main(arguments) == 0
    assert "warmed 0 of 0 files attempted (0 found)" in capsys.readouterr().out
    assert main([*arguments, "--fail-on-error", "--max-bytes", "12XB"]) == 2
    assert "--max-bytes" in capsys.readouterr().err
