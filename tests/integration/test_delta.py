"""Delta tables through the tiers, against the S3 server: DataFusion via register_delta, the
direct path for comparison, partitions, time travel, warmup, and the ``warm`` command."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import datafusion
import deltalake
import pyarrow as pa
import pytest
import s3fs
from deltalake.exceptions import DeltaError

from tests.helpers import HMAC_KEY, storage_option_args
from tiercache import ConfigError, Settings, TieredFileSystem, warm
from tiercache.build import default_tiers
from tiercache.cli.main import main
from tiercache.gateway.shared import shared
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import delta_dataset, open_table, storage_options_for
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
    """``sql`` over the table registered on the dataset route (data files read by ``fs``, in
    this process); the native route is tested in tests/gateway/test_register_delta.py."""
    ctx = datafusion.SessionContext()
    kwargs.setdefault("route", "dataset")
    register_delta(
        ctx, "spans", table.uri, storage_options=table.storage_options, filesystem=fs, **kwargs
    )
    return ctx.sql(sql).to_pylist()


def added(table: deltalake.DeltaTable) -> list[tuple[str, int]]:
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    return sorted(zip(paths, actions.column("size_bytes").to_pylist(), strict=True))


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
    # Each registration lists _delta_log once (the latest version comes from the store) and
    # asks for _delta_log/_last_checkpoint (never served stale; here missing); no log file,
    # footer or data range is read again.
    assert table.proxy.requests() == 4
    assert table.proxy.requests("GET") == 4


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
    options = table.storage_options
    registered = register_delta(ctx, "spans", table.uri, storage_options=options, route="dataset")
    assert registered.route == "dataset"
    assert ctx.sql(AGGREGATE).to_pylist() == table.direct(AGGREGATE)
    # The dataset's filesystem is tiercache: a TieredFileSystem behind pyarrow's handler.
    handler = registered.dataset.filesystem.base_fs.handler
    assert isinstance(handler.fs, TieredFileSystem)
    assert handler.fs.settings.memory_bytes == 32 << 20
    assert handler.fs.stats()["origin"]["requests"] > 0

    # The default route: DataFusion's reader through the gateway, over the same settings.
    registered = register_delta(ctx, "spans", table.uri, storage_options=options)
    assert registered.route == "native"
    assert registered.reason is None
    assert len(registered.files) == COMMITS * len(DAYS)
    assert ctx.sql(AGGREGATE).to_pylist() == table.direct(AGGREGATE)


def test_warm_takes_the_most_recent_commit_first(table: Table) -> None:
    fs = table.tiered()
    report = warm(
        table.uri,
        filesystem=fs,
        storage_options=table.storage_options,
        max_files=2,
        gateway=False,
    )
    assert not report.through_gateway
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
    options = table.storage_options
    report = warm(table.uri, filesystem=warmed, storage_options=options, gateway=False)
    assert report.files_warmed == COMMITS * len(DAYS)
    query(warmed, table, AGGREGATE)
    # Small files: the footer block holds the whole file, so the warmed query is all hits.
    assert origin_requests(warmed) < origin_requests(cold)


def test_warm_fills_the_gateway_the_native_route_reads_through(table: Table) -> None:
    fs = table.tiered(memory_bytes=40 << 20)  # a gateway of its own
    report = warm(table.uri, filesystem=fs, storage_options=table.storage_options)
    assert report.through_gateway
    assert report.errors == []
    assert report.files_warmed == COMMITS * len(DAYS)
    chain = shared(fs).stats()["chain"]
    assert chain["prefetch"]["origin"]["requests"] >= report.files_warmed  # counted apart
    assert fs.stats()["prefetch"]["origin"]["requests"] == 0  # the filesystem was not warmed
    table.proxy.reset_counters()
    ctx = datafusion.SessionContext()
    assert register_delta(ctx, "spans", table.uri, filesystem=fs).route == "native"
    assert ctx.sql(AGGREGATE).to_pylist() == table.direct(AGGREGATE)
    # Small files: the footer block holds the whole file; only the log's listing and
    # _last_checkpoint reached the store.
    assert table.proxy.requests() == 2
    with pytest.raises(ConfigError, match="no gateway reaches"):  # not a Delta table
        warm(f"{table.uri}/day={DAYS[0]}", filesystem=fs, gateway=True)


def test_warm_command_prints_its_report(table: Table, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["warm", table.uri, "--max-files", "3", "--json"]
    arguments += storage_option_args(table.server.storage_options())  # s3fs keys, one convention
    assert main(arguments) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["files_warmed"] == 3
    assert report["files_found"] == COMMITS * len(DAYS)
    assert report["errors"] == []
    assert report["listing_error"] is None
    assert captured.err == ""

    assert main(["warm", table.uri, "--max-files", "1", *arguments[5:]]) == 0
    assert capsys.readouterr().out.startswith("warmed 1 of 1 files attempted (6 found)")


def test_warm_command_still_takes_deltalake_keys_with_a_warning(
    table: Table, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["warm", table.uri, "--max-files", "1"]
    for name, value in table.storage_options.items():  # AWS_ENDPOINT_URL=..., AWS_ALLOW_HTTP=...
        arguments += ["--storage-option", f"{name}={value}"]
    assert main(arguments) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("warmed 1 of 1 files attempted (6 found)")
    assert "--storage-option AWS_ENDPOINT_URL=... is deprecated" in captured.err
    assert "use endpoint_url=" in captured.err
    assert "Traceback" not in captured.err


def test_warm_command_on_a_missing_table_says_so_and_exits_1(
    s3_server: S3Server, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"s3://{s3_bucket}/no-such-{uuid.uuid4().hex}"
    arguments = ["warm", target, *storage_option_args(s3_server.storage_options())]
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert "warmed 0 of 0 files attempted (0 found)" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith(f"tiercache warm: error: could not list {target}, nothing warmed: ")
    assert "FileNotFoundError" in line
    assert main([*arguments, "--fail-on-error", "--max-bytes", "12XB"]) == 2
    assert "--max-bytes" in capsys.readouterr().err


def test_the_log_is_read_through_the_tiers(table: Table) -> None:
    fs = table.tiered()
    opener = open_table(table.uri, filesystem=fs, storage_options=table.storage_options)
    with opener as opened:
        assert opener.through_tiers
        assert opener.gateway is not None
        native = deltalake.DeltaTable(table.uri, storage_options=table.storage_options)
        assert opened.version() == native.version() == COMMITS - 1
        assert added(opened) == added(native)
    table.proxy.reset_counters()
    with open_table(table.uri, filesystem=fs, version=1) as opened:
        assert opened.version() == 1
    # Commits 0 and 1 came from the gateway's tiers (immutable); only the listing and
    # _last_checkpoint (never served stale) reached the store.
    assert table.proxy.requests() == 2
    assert table.proxy.requests("GET") == 2


def test_a_log_that_cannot_come_through_the_tiers_is_read_by_deltalake(
    table: Table, caplog: pytest.LogCaptureFixture
) -> None:
    fs = table.tiered()
    opener = open_table(table.uri, filesystem=fs, storage_options=table.storage_options, version=99)
    with pytest.raises(DeltaError), opener:  # deltalake's own answer, through the gateway
        pass
    assert opener.gateway is None
    plain = s3fs.S3FileSystem(**table.server.storage_options(), skip_instance_cache=True)
    opener = open_table(table.uri, filesystem=plain, storage_options=table.storage_options)
    with opener as opened:
        assert not opener.through_tiers
        assert opened.version() == COMMITS - 1


def test_a_gateway_that_exited_is_started_again(table: Table) -> None:
    fs = table.tiered()
    with open_table(table.uri, filesystem=fs) as opened:
        assert opened.version() == COMMITS - 1
    gateway = shared(fs)
    gateway.close()
    opener = open_table(table.uri, filesystem=fs)
    with opener as opened:
        assert opened.version() == COMMITS - 1
    assert opener.gateway is not None
    assert opener.gateway is not gateway
    assert opener.gateway.alive


def test_a_new_pod_with_a_warm_redis_reads_no_log_file(table: Table, redis_server: Any) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    first = table.tiered(redis_url=redis_server.url, redis_prefix=prefix, redis_hmac_key=HMAC_KEY)
    assert query(first, table, AGGREGATE) == table.direct(AGGREGATE)
    first.chain.fills.join()
    table.proxy.reset_counters()
    second = table.tiered(
        redis_url=redis_server.url,
        redis_prefix=prefix,
        redis_hmac_key=HMAC_KEY,
        memory_bytes=1 << 20,
    )
    assert query(second, table, AGGREGATE) == table.direct(AGGREGATE)
    redis = second.stats()["tiers"]["redis"]
    assert redis["hits"] > 0
    # Log files and footers came from Redis; only data blocks (not shared) and the listing
    # reached the store.
    meta = second.stats()["classes"]["demand"]["metadata"]["origin"]["requests"]
    assert meta == 0
    first.close()
    second.close()


def test_listings_seed_object_info(table: Table) -> None:
    fs = table.tiered()
    found = fs.glob(f"{table.root}/day=*/*.parquet")
    assert len(found) == COMMITS * len(DAYS)
    table.proxy.reset_counters()
    for path in found:
        assert fs.info(path)["size"] > 0
        assert fs.read_range(path, -4, None) == b"PAR1"
    assert table.proxy.requests("HEAD") == 0
    assert table.proxy.requests("GET") == len(found)  # one ranged GET each, pinned to the ETag


COUNT = "SELECT count(*) AS n FROM spans"


def test_a_delta_log_listing_is_reused_only_within_its_ttl(table: Table, redis_server: Any) -> None:
    """``TIERCACHE_DELTA_LOG_TTL``: a new pod's gateway reuses the listing another pod's shared
    through Redis (no LIST, and _last_checkpoint's answer kept as long: the snapshot is at most
    that old), a listing past its TTL is not reused, and the default lists on every open."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    shared_tiers = {
        "redis_url": redis_server.url,
        "redis_prefix": prefix,
        "redis_hmac_key": HMAC_KEY,
    }
    first = table.tiered(delta_log_ttl_s=60.0, **shared_tiers)
    assert query(first, table, COUNT) == table.direct(COUNT)
    deltalake.write_deltalake(
        table.uri, spans(COMMITS), partition_by=["day"], mode="append",
        storage_options=table.storage_options,
    )  # fmt: skip
    old = table.direct(COUNT, version=COMMITS - 1)
    new = table.direct(COUNT)
    assert old != new

    # Within the TTL, a second pod (another gateway): the listing from Redis; the older version.
    second = table.tiered(delta_log_ttl_s=60.0, memory_bytes=48 << 20, **shared_tiers)
    with open_table(table.uri, filesystem=second) as opened:
        assert opened.version() == COMMITS - 1
    assert reused(second) == 2  # the listing, and _last_checkpoint answered from it
    table.proxy.reset_counters()
    with open_table(table.uri, filesystem=second) as opened:  # again: no request for the log
        assert opened.version() == COMMITS - 1
    assert table.proxy.requests() == 0
    assert query(second, table, COUNT) == old

    # A version the kept listing does not have: the store is asked (time travel never misses).
    with open_table(table.uri, filesystem=second, version=COMMITS) as opened:
        assert opened.version() == COMMITS

    # The default (0): a fresh listing on every open, so the new commit is seen at once.
    third = table.tiered(**shared_tiers)
    assert query(third, table, COUNT) == new
    assert reused(third) == 0

    # Past its TTL, a shared listing is not reused either.
    time.sleep(0.3)
    fourth = table.tiered(delta_log_ttl_s=0.2, **shared_tiers)
    assert query(fourth, table, COUNT) == new
    assert reused(fourth) == 0
    for fs in (first, second, third, fourth):
        fs.close()


def reused(fs: TieredFileSystem) -> int:
    """Listings the gateway serving ``fs``'s tables reused."""
    count: int = shared(fs).stats()["chain"]["info"]["listings_reused"]
    return count


def test_a_commit_written_through_the_gateway_drops_its_kept_listing(table: Table) -> None:
    fs = table.tiered(delta_log_ttl_s=60.0)
    opener = open_table(table.uri, filesystem=fs)
    with opener as opened:
        assert opened.version() == COMMITS - 1
    assert opener.gateway is not None
    options = opener.gateway.storage_options()
    deltalake.write_deltalake(table.uri, spans(COMMITS), mode="append", storage_options=options)
    with open_table(table.uri, filesystem=fs) as opened:  # the kept listing is not used
        assert opened.version() == COMMITS


def test_a_warmup_in_another_process_is_found_by_the_native_route(
    table: Table, tmp_path: Any
) -> None:
    """An init container's warmup (its gateway gone with it) leaves the disk tier filled, keyed
    as the application's gateway keys the blocks (the Delta log's versions): its query finds
    them there."""
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    init = table.tiered(disk_dir=str(disk), memory_bytes=20 << 20)
    report = warm(table.uri, filesystem=init, storage_options=table.storage_options)
    assert report.through_gateway
    assert report.errors == []
    assert report.files_warmed == COMMITS * len(DAYS)
    shared(init).close()  # the init container ends
    app = table.tiered(disk_dir=str(disk), memory_bytes=28 << 20)
    ctx = datafusion.SessionContext()
    assert register_delta(ctx, "spans", table.uri, filesystem=app).route == "native"
    table.proxy.reset_counters()
    assert ctx.sql(AGGREGATE).to_pylist() == table.direct(AGGREGATE)
    assert table.proxy.requests() == 0  # every footer and (small) data file from the disk
    disk_tier = shared(app).stats()["chain"]["tiers"]["disk"]
    assert disk_tier["hits"] > 0
