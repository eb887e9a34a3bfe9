"""The origin: retries, no retry on permanent errors, short reads, the deadline, identity."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import CountingFS, letters
from tiercache.context import DEMAND
from tiercache.errors import OriginError, OriginTimeoutError, ShortReadError
from tiercache.origin import FsspecOrigin
from tiercache.origin_info import info_from_raw, target_identity


def make(retries: int = 3, timeout_s: float = 5.0) -> tuple[FsspecOrigin, CountingFS, str]:
    fs = CountingFS(skip_instance_cache=True)
    path = f"/origin/{uuid.uuid4().hex}"
    fs.pipe_file(path, letters(10_000))
    sleeps: list[float] = []
    origin = FsspecOrigin(
        fs, retries=retries, timeout_s=timeout_s, concurrency=4, sleep=sleeps.append
    )
    return origin, fs, path


def test_transient_errors_are_retried() -> None:
    origin, fs, path = make()
    fs.failures = [ConnectionError("reset"), OSError(16, "SlowDown")]
    info = origin.info(path, ctx=DEMAND)
    assert origin.read(info, 100, 200, ctx=DEMAND) == letters(10_000)[100:200]
    stats = origin.counters.snapshot()
    assert stats["retries"] == 2
    assert stats["errors"] == 2
    assert stats["requests"] == 4  # info + 3 attempts


def test_retries_run_out_into_a_typed_error() -> None:
    origin, fs, path = make(retries=2)
    info = origin.info(path, ctx=DEMAND)
    fs.failures = [ConnectionError("reset")] * 3
    with pytest.raises(OriginError, match=r"read of .* failed: ConnectionError") as exc:
        origin.read(info, 0, 10, ctx=DEMAND)
    assert isinstance(exc.value, OSError)
    assert len(fs.reads) == 3


@pytest.mark.parametrize("error", [FileNotFoundError("gone"), PermissionError("denied")])
def test_not_found_and_permission_errors_are_not_retried(error: OSError) -> None:
    origin, fs, path = make()
    info = origin.info(path, ctx=DEMAND)
    fs.failures = [error]
    with pytest.raises(type(error)):
        origin.read(info, 0, 10, ctx=DEMAND)
    assert len(fs.reads) == 1
    assert origin.counters.snapshot()["retries"] == 0


def test_a_short_answer_is_retried_and_never_returned() -> None:
    origin, fs, path = make()
    info = origin.info(path, ctx=DEMAND)
    fs.short_by = 1
    assert origin.read(info, 0, 100, ctx=DEMAND) == letters(10_000)[:100]
    assert origin.counters.snapshot()["retries"] == 1
    for _ in range(4):
        fs.short_by = 1  # short every time: an error, not short bytes
        origin2, fs2, path2 = make(retries=0)
        fs2.short_by = 1
        with pytest.raises(ShortReadError, match=r"returned 99 bytes, expected 100"):
            origin2.read(origin2.info(path2, ctx=DEMAND), 0, 100, ctx=DEMAND)


def test_missing_object_raises_file_not_found() -> None:
    origin, _, _ = make()
    with pytest.raises(FileNotFoundError):
        origin.info("/origin/does-not-exist", ctx=DEMAND)
    counts = origin.counters.snapshot()
    assert (counts["not_found"], counts["errors"]) == (1, 0)  # an answer, not an error


def test_deadline_stops_retrying() -> None:
    fs = CountingFS(skip_instance_cache=True)
    path = f"/origin/{uuid.uuid4().hex}"
    fs.pipe_file(path, b"x" * 100)
    origin = FsspecOrigin(fs, retries=100, timeout_s=0.3, concurrency=1)
    info = origin.info(path, ctx=DEMAND)
    fs.failures = [ConnectionError("reset")] * 1000
    with pytest.raises(OriginError):
        origin.read(info, 0, 10, ctx=DEMAND)
    assert len(fs.reads) < 100


def test_target_identity_never_contains_credentials() -> None:
    a = target_identity("s3", {"key": "AKIA", "secret": "hunter2", "endpoint_url": "http://a"})
    b = target_identity("s3", {"key": "OTHER", "secret": "x", "endpoint_url": "http://a"})
    c = target_identity("s3", {"client_kwargs": {"endpoint_url": "http://b"}})
    assert a == b
    assert a != c
    assert "hunter2" not in a
    assert target_identity("s3", {}) != target_identity("gcs", {})


def test_versions_prefer_generation_then_etag_then_size_and_mtime() -> None:
    assert info_from_raw("p", {"size": 1, "ETag": '"abc"'}).version == 'ETag="abc"'
    assert info_from_raw("p", {"size": 1, "ETag": '"abc"'}).etag == '"abc"'
    assert info_from_raw("p", {"size": 1, "generation": 7}).version == "generation=7"
    # gcsfs: the etag changes with metadata too, the generation only with the bytes.
    gcs = info_from_raw("p", {"size": 1, "etag": "CAE=", "generation": "17", "metageneration": "2"})
    assert (gcs.version, gcs.etag) == ("generation=17", "CAE=")
    assert info_from_raw("p", {"size": 5, "mtime": 12.5}).version == "5:12.5"


def test_an_origin_deadline_is_a_timeout_error() -> None:
    """``except TimeoutError`` catches an origin that keeps timing out: OriginTimeoutError."""
    origin, fs, path = make(retries=1)
    info = origin.info(path, ctx=DEMAND)
    fs.failures = [TimeoutError("socket timed out")] * 2
    with pytest.raises(TimeoutError) as caught:
        origin.read(info, 0, 100, ctx=DEMAND)
    assert isinstance(caught.value, OriginTimeoutError)
    assert isinstance(caught.value, OriginError)  # and still an OSError for fsspec callers
    assert "2 attempts" in str(caught.value)
    assert origin.counters.snapshot()["retries"] == 1
    fs.failures = [ConnectionError("reset")] * 2  # any other failure is not a timeout
    with pytest.raises(OriginError) as other:
        origin.read(info, 0, 100, ctx=DEMAND)
    assert not isinstance(other.value, TimeoutError)
