"""When DataFusion reading a snapshot's Parquet files would not read the Delta table exactly
(``native_obstacle``), and how the files' URLs are made (``snapshot_files``); with stand-ins for
deltalake's table (the integration tests use real tables: tests/gateway/test_register_delta.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pytest

from tiercache.integrations.native import native_obstacle, snapshot_files, split_location


@dataclass
class Protocol:
    min_reader_version: int = 1
    reader_features: list[str] | None = None


@dataclass
class Metadata:
    configuration: dict[str, str] = field(default_factory=dict)
    partition_columns: list[str] = field(default_factory=list)


@dataclass
class FakeTable:
    protocol_: Protocol = field(default_factory=Protocol)
    metadata_: Metadata = field(default_factory=Metadata)
    actions: dict[str, list[Any]] = field(
        default_factory=lambda: {"path": ["part-0.parquet"], "size_bytes": [10]}
    )

    def protocol(self) -> Protocol:
        return self.protocol_

    def metadata(self) -> Metadata:
        return self.metadata_

    def get_add_actions(self, flatten: bool = False) -> pa.Table:
        assert flatten
        return pa.table(self.actions)


def test_a_plain_table_has_no_obstacle() -> None:
    assert native_obstacle(FakeTable()) is None
    features = Protocol(3, ["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"])
    assert native_obstacle(FakeTable(features)) is None


def test_an_unknown_reader_feature_is_an_obstacle() -> None:
    reason = native_obstacle(FakeTable(Protocol(3, ["variantType", "timestampNtz"])))
    assert reason == "reader features ['variantType']"


def test_column_mapping_in_use_is_an_obstacle_and_mode_none_is_not() -> None:
    named = Metadata({"delta.columnMapping.mode": "name"})
    reason = native_obstacle(FakeTable(Protocol(2), named))
    assert reason is not None
    assert "column mapping (name)" in reason
    off = Metadata({"delta.columnMapping.mode": "none"})
    assert native_obstacle(FakeTable(Protocol(3, ["columnMapping"]), off)) is None


def test_deletion_vectors_are_an_obstacle_only_when_a_file_has_one() -> None:
    enabled = Protocol(3, ["deletionVectors"])
    unused: dict[str, list[Any]] = {
        "path": ["a.parquet", "b.parquet"],
        "deletionVector.storageType": [None, None],
    }
    assert native_obstacle(FakeTable(enabled, actions=unused)) is None
    used: dict[str, list[Any]] = {
        "path": ["a.parquet", "b.parquet"],
        "deletionVector.storageType": [None, "u"],
    }
    assert native_obstacle(FakeTable(enabled, actions=used)) == (
        "deletion vectors in use: some rows of the files are deleted"
    )
    unknown = {"path": ["a.parquet"]}
    reason = native_obstacle(FakeTable(enabled, actions=unknown))
    assert reason is not None
    assert "do not say which are in use" in reason


def test_file_urls_decode_to_the_keys_and_carry_partition_values() -> None:
    actions: dict[str, list[Any]] = {
        # the log holds paths URL-encoded once more than the keys
        "path": ["day=a%2520b%2525/part-0.parquet", "s3://bkt/elsewhere/part-1.parquet"],
        "partition.day": ["a b%", None],
    }
    files = snapshot_files(FakeTable(actions=actions), "bkt", "tables/t")
    assert [unquote(url) for url, _ in files] == [
        "s3://bkt/tables/t/day=a%20b%25/part-0.parquet",
        "s3://bkt/elsewhere/part-1.parquet",
    ]
    assert [values for _, values in files] == [{"day": "a b%"}, {"day": None}]


def test_a_file_in_another_bucket_is_refused() -> None:
    actions = {"path": ["s3://other/t/part-0.parquet"]}
    with pytest.raises(ValueError, match="outside the table's bucket: s3://other/t/part-0"):
        snapshot_files(FakeTable(actions=actions), "bkt", "t")


def test_split_location() -> None:
    assert split_location("s3://bkt/a/b/") == ("bkt", "a/b")
    assert split_location("s3a://bkt") == ("bkt", "")
