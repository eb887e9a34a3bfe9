"""S3's listings and writes emulated on an fsspec memory filesystem (gateway.fsspec_listing,
gateway.upstream_fsspec), without a server: pages, delimiters, tokens, put-if-absent, errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tiercache.gateway.fsspec_listing import Entry, decode_token, encode_token, page
from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.upstream_fsspec import FsspecUpstream

KEYS = ["a", "b/1", "b/2", "b/3/x", "c", "d/e/f", "é", "z/"]


def _entries(keys: list[str]) -> list[Entry]:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return [Entry(k, 1, "e", when) for k in sorted(keys)]


def _walk(
    keys: list[str], *, prefix: str = "", delimiter: str = "", size: int
) -> tuple[list[str], list[str], int]:
    """All pages of a listing: its keys, its common prefixes, how many pages."""
    entries = [e for e in _entries(keys) if e.key.startswith(prefix)]
    objects: list[str] = []
    prefixes: list[str] = []
    after, pages = "", 0
    while True:
        got = page(entries, prefix=prefix, delimiter=delimiter, after=after, max_keys=size)
        pages += 1
        assert len(got.entries) + len(got.common_prefixes) <= size
        objects += [e.key for e in got.entries]
        prefixes += got.common_prefixes
        if not got.is_truncated:
            return objects, prefixes, pages
        assert got.last is not None
        after = decode_token(encode_token(got.last))


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_pages_without_a_delimiter_list_every_key_once(size: int) -> None:
    objects, prefixes, pages = _walk(KEYS, size=size)
    assert objects == sorted(KEYS)
    assert prefixes == []
    assert pages == -(-len(KEYS) // size)


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_a_delimiter_folds_keys_into_common_prefixes_once_across_pages(size: int) -> None:
    objects, prefixes, _ = _walk(KEYS, delimiter="/", size=size)
    assert objects == ["a", "c", "é"]
    assert prefixes == ["b/", "d/", "z/"]
    objects, prefixes, _ = _walk(KEYS, prefix="b/", delimiter="/", size=size)
    assert objects == ["b/1", "b/2"]
    assert prefixes == ["b/3/"]


def test_start_after_a_key_and_an_empty_page() -> None:
    got = page(_entries(KEYS), after="b/2", max_keys=1000)
    assert [e.key for e in got.entries] == ["b/3/x", "c", "d/e/f", "z/", "é"]
    assert not got.is_truncated
    assert page(_entries(KEYS), max_keys=0).entries == []


def test_a_token_not_handed_out_is_400() -> None:
    with pytest.raises(S3Error) as error:
        decode_token("%%%")
    assert error.value.status == 400


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FsspecUpstream]:
    fs = MemoryFileSystem()  # its store is every memory filesystem's: a bucket of its own
    bucket = f"/u-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    found = FsspecUpstream(fs, timeout_s=10, uploads_dir=tmp_path / "uploads")
    found.bucket = bucket.strip("/")  # type: ignore[attr-defined]
    yield found
    found.close()
    fs.rm(bucket, recursive=True)


def test_list_v2_over_memory_pages_with_tokens(upstream: Any) -> None:
    bucket = upstream.bucket
    for key in KEYS[:-1]:
        upstream.call("put_object", Bucket=bucket, Key=key, Body=key.encode())
    seen, token, pages = [], None, 0
    while True:
        extra: dict[str, str] = {"ContinuationToken": token} if token else {}
        answer = upstream.call("list_objects_v2", Bucket=bucket, Delimiter="/", MaxKeys=2, **extra)
        pages += 1
        seen += [o["Key"] for o in answer["Contents"]]
        seen += [p["Prefix"] for p in answer["CommonPrefixes"]]
        assert answer["KeyCount"] == len(answer["Contents"]) + len(answer["CommonPrefixes"])
        if not answer["IsTruncated"]:
            break
        token = answer["NextContinuationToken"]
    assert sorted(seen) == ["a", "b/", "c", "d/", "é"]
    assert pages == 3
    head = upstream.call("head_object", Bucket=bucket, Key="a")
    listed = upstream.call("list_objects_v2", Bucket=bucket, Prefix="a")["Contents"]
    assert listed[0]["ETag"] == head["ETag"].strip('"')
    assert isinstance(listed[0]["LastModified"], datetime)


def test_put_if_absent_is_atomic_among_threads(upstream: Any) -> None:
    bucket, won, lost = upstream.bucket, [], []

    def put(n: int) -> None:
        try:
            upstream.call(
                "put_object", Bucket=bucket, Key="log/0.json", Body=b"%d" % n, IfNoneMatch="*"
            )
        except S3Error as exc:
            lost.append(exc.status)
        else:
            won.append(n)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert lost == [412] * 7
    assert upstream.fs.cat_file(f"{bucket}/log/0.json") == b"%d" % won[0]


def test_errors_and_what_is_not_emulated(upstream: Any) -> None:
    bucket = upstream.bucket
    for method, params, expected in [
        ("head_object", {"Bucket": bucket, "Key": "nope"}, ("NoSuchKey", 404)),
        ("list_objects_v2", {"Bucket": "nobucket"}, ("NoSuchBucket", 404)),
        ("head_bucket", {"Bucket": "nobucket"}, ("NoSuchBucket", 404)),
        (
            "put_object",
            {"Bucket": bucket, "Key": "k", "Body": b"", "IfMatch": '"x"'},
            (
                "NotImplemented",
                501,
            ),
        ),
        ("put_bucket_policy", {"Bucket": bucket}, ("NotImplemented", 501)),
        (
            "list_parts",
            {"Bucket": bucket, "Key": "k", "UploadId": "../../etc"},
            (
                "NoSuchUpload",
                404,
            ),
        ),
    ]:
        with pytest.raises(S3Error) as error:
            upstream.call(method, **params)
        assert (error.value.code, error.value.status) == expected, method


def test_a_permission_error_is_403_and_a_timeout_503(tmp_path: Path) -> None:
    class Refusing(MemoryFileSystem):  # type: ignore[misc]
        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            raise PermissionError(path)

    class Slow(MemoryFileSystem):  # type: ignore[misc]
        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            threading.Event().wait(2)
            return {}

    for fs_class, timeout_s, expected in [(Refusing, 10.0, 403), (Slow, 0.05, 503)]:
        upstream = FsspecUpstream(fs_class(skip_instance_cache=True), timeout_s, tmp_path)
        with pytest.raises(S3Error) as error:
            upstream.call("head_object", Bucket="b", Key="k")
        assert error.value.status == expected
        upstream.close()


def test_the_memory_filesystem_is_what_fsspec_gives() -> None:
    assert isinstance(fsspec.filesystem("memory"), MemoryFileSystem)
