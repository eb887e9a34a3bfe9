"""deltalake (delta-rs, Rust ``object_store``) through the gateway with ``storage_options()``:
writes, reads, time travel, history, QueryBuilder, checkpoints, and racing commits.

``history()`` and ``QueryBuilder`` hold the GIL while they wait for HTTP: they return only
because the gateway answers from its own process. Every wait is bounded (engines.delta_options).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError

from tests.gateway.engines import delta_options, new_bucket
from tiercache.gateway import Gateway
from tiercache.testing import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _rows(ids: range) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.int64()), "name": pa.array([f"n{i}" for i in ids], pa.string())}
    )


def _ids(table: DeltaTable) -> list[int]:
    return sorted(table.to_pyarrow_table()["id"].to_pylist())


def test_gateway_options_commit_with_put_if_absent(gateway: Gateway) -> None:
    options = gateway.storage_options()
    assert options["AWS_CONDITIONAL_PUT"] == "etag"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options


def test_create_append_read_time_travel(s3_server: S3Server, gateway: Gateway) -> None:
    uri = f"s3://{new_bucket(s3_server)}/events"
    options = delta_options(gateway)
    write_deltalake(uri, _rows(range(100)), storage_options=options)
    write_deltalake(uri, _rows(range(100, 150)), storage_options=options, mode="append")
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert table.to_pyarrow_table().sort_by("id").equals(_rows(range(150)))
    uris = table.file_uris()
    assert len(uris) == 2
    assert all(u.startswith(f"{uri}/part-") for u in uris)
    first = DeltaTable(uri, storage_options=options, version=0)
    assert first.version() == 0
    assert first.to_pyarrow_table().sort_by("id").equals(_rows(range(100)))
    table.load_as_version(0)
    assert _ids(table) == list(range(100))


def test_history_and_query_builder_return(s3_server: S3Server, gateway: Gateway) -> None:
    uri = f"s3://{new_bucket(s3_server)}/events"
    options = delta_options(gateway)
    write_deltalake(uri, _rows(range(10)), storage_options=options)
    write_deltalake(uri, _rows(range(10, 30)), storage_options=options, mode="append")
    table = DeltaTable(uri, storage_options=options)
    history = table.history()
    assert [(h["version"], h["operation"]) for h in history] == [(1, "WRITE"), (0, "WRITE")]
    answer = (
        QueryBuilder()
        .register("events", table)
        .execute("SELECT count(*) AS n, sum(id) AS total FROM events WHERE id >= 5")
        .read_all()
    )
    assert pa.table(answer).to_pylist() == [{"n": 25, "total": sum(range(5, 30))}]


def test_checkpoints_and_last_checkpoint_never_stale(
    s3_server: S3Server, gateway: Gateway, client: Any
) -> None:
    """``_delta_log/_last_checkpoint`` is overwritten in place: the gateway must serve the new
    one (it asks the origin about mutable paths on every request)."""
    bucket = new_bucket(s3_server)
    uri = f"s3://{bucket}/events"
    options = delta_options(gateway)
    for start in range(0, 30, 10):
        write_deltalake(
            uri, _rows(range(start, start + 10)), storage_options=options, mode="append"
        )
    DeltaTable(uri, storage_options=options).create_checkpoint()
    pointer = client.get_object(Bucket=bucket, Key="events/_delta_log/_last_checkpoint")
    assert json.loads(pointer["Body"].read())["version"] == 2
    for start in range(30, 50, 10):
        write_deltalake(
            uri, _rows(range(start, start + 10)), storage_options=options, mode="append"
        )
    DeltaTable(uri, storage_options=options).create_checkpoint()
    pointer = client.get_object(Bucket=bucket, Key="events/_delta_log/_last_checkpoint")
    assert json.loads(pointer["Body"].read())["version"] == 4
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 4
    assert _ids(table) == list(range(50))
    table.optimize.compact()
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    compacted = DeltaTable(uri, storage_options=options)
    assert len(compacted.file_uris()) == 1
    assert _ids(compacted) == list(range(50))


def _race(tables: list[DeltaTable], act: Any) -> tuple[list[Any], list[BaseException]]:
    """Run ``act(i, table)`` for every table at once (a barrier lines the threads up)."""
    barrier = threading.Barrier(len(tables))
    lock = threading.Lock()
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            result = act(i, tables[i])
        except Exception as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tables))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


def test_racing_appends_at_one_version_lose_nothing(s3_server: S3Server, gateway: Gateway) -> None:
    """Four writers that all read version 0 append at once: each commit is a put-if-absent of
    ``_delta_log/00..01.json`` through the gateway; the losers see 412, retry at the next
    version, and every row lands in its own version (an unconditional put would have dropped
    the commits it overwrote)."""
    uri = f"s3://{new_bucket(s3_server)}/events"
    options = delta_options(gateway)
    write_deltalake(uri, _rows(range(1)), storage_options=options)
    writers = [DeltaTable(uri, storage_options=options) for _ in range(4)]
    assert {w.version() for w in writers} == {0}

    def append(i: int, table: DeltaTable) -> None:
        write_deltalake(table, _rows(range(100 * (i + 1), 100 * (i + 1) + 5)), mode="append")

    _, errors = _race(writers, append)
    assert errors == []
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 4
    assert _ids(table) == [0] + [100 * w + k for w in range(1, 5) for k in range(5)]
    assert sorted(h["version"] for h in table.history()) == [0, 1, 2, 3, 4]


def test_racing_deletes_of_one_row_one_wins_the_rest_conflict(
    s3_server: S3Server, gateway: Gateway
) -> None:
    """Four writers delete the same row from the same version: exactly one commits, the others
    fail with a commit conflict, and the log holds exactly one delete."""
    uri = f"s3://{new_bucket(s3_server)}/events"
    options = delta_options(gateway)
    write_deltalake(uri, _rows(range(20)), storage_options=options)
    writers = [DeltaTable(uri, storage_options=options) for _ in range(4)]
    results, errors = _race(writers, lambda i, table: table.delete("id = 7"))
    assert [r["num_deleted_rows"] for r in results] == [1]
    assert len(errors) == 3
    assert all(isinstance(e, CommitFailedError) for e in errors), errors
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert _ids(table) == [i for i in range(20) if i != 7]
    assert [h["operation"] for h in table.history()] == ["DELETE", "WRITE"]
