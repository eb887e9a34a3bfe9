"""Seed documents (``POST /-/seed``): what is taken, what is skipped, what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.seeds import parse_seeds, seed_document

DATA = "bkt/t/part-00000-1816a928-3b17-4815-a520-83a0b1fb0a61-c000.snappy.parquet"


def test_a_document_round_trips_and_mutable_paths_are_skipped() -> None:
    body = seed_document(
        [
            (DATA, 1234, "delta:1700000000000:1234", 1_700_000_000.0),
            ("bkt/t/_delta_log/00000000000000000003.json", 10, "delta:1:10", 1.5),
            ("bkt/t/_delta_log/_last_checkpoint", 10, "delta:1:10", 1.5),  # mutable
            ("bkt/plain.csv", 5, "v", 0),  # mutable: no UUID
        ]
    )
    infos, skipped = parse_seeds(body)
    assert skipped == 2
    assert [(i.path, i.size, i.version) for i in infos] == [
        (DATA, 1234, "delta:1700000000000:1234"),
        ("bkt/t/_delta_log/00000000000000000003.json", 10, "delta:1:10"),
    ]
    assert infos[0].etag is None
    assert infos[0].raw["LastModified"].timestamp() == 1_700_000_000.0


def _entry(**changes: Any) -> bytes:
    entry = {"path": DATA, "size": 1, "version": "delta:1:1", "mtime": 1.0, **changes}
    return json.dumps({"objects": [entry]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not a seed document"),
        (b'{"things": []}', "not a seed document"),
        (b'{"objects": {}}', "must be a list"),
        (b'{"objects": [3]}', "not an object"),
        (_entry(path="no-key"), "bucket/key"),
        (_entry(path="bkt/a/../b.parquet"), "bucket/key"),
        (_entry(path=7), "bucket/key"),
        (_entry(size=-1), "size must be an integer"),
        (_entry(size=True), "size must be an integer"),
        (_entry(size="12"), "size must be an integer"),
        (_entry(version=""), "version must be a string"),
        (_entry(version="v" * 300), "version must be a string"),
        (_entry(mtime="yesterday"), "mtime must be a number"),
        (_entry(mtime=1e300), "out of range"),
    ],
)
def test_malformed_seeds_are_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(S3Error, match=message) as raised:
        parse_seeds(body)
    assert raised.value.status == 400
    assert raised.value.code == "MalformedSeed"
