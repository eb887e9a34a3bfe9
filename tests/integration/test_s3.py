"""Integration: tiercache::s3:// against a real S3 server (moto in a subprocess)."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import fsspec
import pytest
import s3fs

from tiercache import ObjectChangedError, Settings, TieredFileSystem
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024
SETTINGS = Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20)


def no_retry_client(server: S3Server, endpoint_url: str) -> s3fs.S3FileSystem:
    """s3fs/botocore with their own retries off, so that tiercache's retries are what is tested.

    botocore's ``max_attempts`` counts retries; ``total_max_attempts`` counts requests. s3fs's
    own retry loop is a class attribute, set on the instance.
    """
    client = s3fs.S3FileSystem(
        **server.storage_options(endpoint_url),
        config_kwargs={"retries": {"total_max_attempts": 1}},
        skip_instance_cache=True,
    )
    client.retries = 1
    return client


def tiered(
    options: dict[str, Any] | s3fs.S3FileSystem, settings: Settings = SETTINGS
) -> TieredFileSystem:
    tiers = None if settings.memory_bytes == 0 else _memory(settings)
    if isinstance(options, s3fs.S3FileSystem):
        return TieredFileSystem(fs=options, settings=settings, tiers=tiers)
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True, "use_listings_cache": False},
        settings=settings,
        skip_instance_cache=True,
        tiers=tiers,
    )


def _memory(settings: Settings) -> list[Any]:
    from tiercache import MemoryTier

    return [MemoryTier(settings.memory_bytes)]


def test_exact_bytes_through_url_chaining(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(5 * BLOCK + 321)
    s3_server.put_object(s3_bucket, "a/obj.bin", data)
    monkeypatch.setenv("TIERCACHE_BLOCK_SIZE", "64KiB")
    url = f"tiercache::s3://{s3_bucket}/a/obj.bin"
    options = {"s3": {**s3_server.storage_options(), "skip_instance_cache": True}}
    with fsspec.open(url, "rb", **options) as f:
        assert f.read() == data
        f.seek(BLOCK - 7)
        assert f.read(20) == data[BLOCK - 7 : BLOCK + 13]
    fs, path = fsspec.core.url_to_fs(url, **options)
    assert isinstance(fs, TieredFileSystem)
    for start, end in [(0, 1), (BLOCK - 1, 3 * BLOCK + 1), (-100, None), (10, 5), (None, None)]:
        assert fs.read_range(path, start, end) == data[start:end]
    assert fs.cat_ranges([path, path], [0, -5], [5, None]) == [data[:5], data[-5:]]


def test_cold_read_costs_one_request_and_info_is_cached(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(3 * BLOCK)
    s3_server.put_object(s3_bucket, "obj.bin", data)
    fs = tiered(s3_server.storage_options(fault_proxy.url))
    path = f"{s3_bucket}/obj.bin"
    fault_proxy.reset_counters()
    assert fs.read_range(path, 10, 20) == data[10:20]
    # The size and ETag come from the ranged GET itself: no HEAD before the first read.
    assert (fault_proxy.requests("HEAD"), fault_proxy.requests("GET")) == (0, 1)
    with fs.open(path, "rb") as f:
        assert f.read(5) == data[:5]
    with fs.open(path, "rb") as f:  # second open: info from the cache
        f.seek(2 * BLOCK)
        assert f.read(5) == data[2 * BLOCK : 2 * BLOCK + 5]
    assert fs.info(path)["size"] == len(data)
    assert fault_proxy.requests("HEAD") == 0
    assert fault_proxy.requests("GET") == 2  # block 0 (first read) and block 2
    fs.close()


def test_info_from_head_is_cached_across_opens(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "i.bin", b"x" * 1000)
    fs = tiered(s3_server.storage_options(fault_proxy.url))
    path = f"{s3_bucket}/i.bin"
    fault_proxy.reset_counters()
    for _ in range(3):
        with fs.open(path, "rb") as f:
            assert f.read() == b"x" * 1000
    assert fault_proxy.requests("HEAD") == 1
    assert fault_proxy.requests("GET") == 1
    fs.close()


def test_overwrite_between_block_reads_never_mixes_versions(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    old, new = b"A" * (4 * BLOCK), b"B" * (4 * BLOCK)
    s3_server.put_object(s3_bucket, "v.bin", old)
    fs = tiered(s3_server.storage_options(fault_proxy.url))
    path = f"{s3_bucket}/v.bin"
    assert fs.read_range(path, 0, 1) == b"A"  # block 0 of the old version cached
    assert fs.read_range(path, 2 * BLOCK, 2 * BLOCK + 1) == b"A"  # block 2 too
    with fs.open(path, "rb") as handle:
        s3_server.put_object(s3_bucket, "v.bin", new)  # overwritten behind the cache
        # Block 1 must come from the origin, pinned to the old ETag: 412, then the whole read
        # restarts on the new version. The answer is all B, never A+B.
        assert fs.read_range(path, 0, 3 * BLOCK) == new[: 3 * BLOCK]
        # An open file is pinned to the version it opened: the cached block still reads...
        assert handle.read(10) == b"A" * 10
        # ...and a block of the old version that is gone raises instead of mixing.
        handle.seek(3 * BLOCK)
        with pytest.raises(ObjectChangedError, match="reopen"):
            handle.read(10)
    fs.close()


def test_concurrent_overwrites_yield_one_version_per_read(
    s3_server: S3Server, s3_bucket: str
) -> None:
    versions = [bytes([65 + i]) * (6 * BLOCK) for i in range(3)]
    s3_server.put_object(s3_bucket, "c.bin", versions[0])
    # No RAM tier: every read goes to the origin, block by block, while a writer flips versions.
    fs = tiered(s3_server.storage_options(), Settings(block_size_bytes=BLOCK, memory_bytes=0))
    path = f"{s3_bucket}/c.bin"
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            s3_server.put_object(s3_bucket, "c.bin", versions[i % 3])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(30):
            try:
                got = fs.read_range(path, 0, None)
            except ObjectChangedError:
                continue  # changed three times during one read: an error, never mixed bytes
            assert got in versions
    finally:
        stop.set()
        thread.join()
    fs.close()


def test_missing_key_raises_file_not_found(s3_server: S3Server, s3_bucket: str) -> None:
    fs = tiered(s3_server.storage_options())
    with pytest.raises(FileNotFoundError):
        fs.read_range(f"{s3_bucket}/nope.bin", 0, 10)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{s3_bucket}/nope.bin")
    with pytest.raises(FileNotFoundError):
        fs.open(f"{s3_bucket}/nope.bin", "rb")
    assert fs.stats()["origin"]["retries"] == 0
    fs.close()


def test_a_burst_of_503s_is_absorbed_by_retries(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(2 * BLOCK)
    s3_server.put_object(s3_bucket, "r.bin", data)
    fs = tiered(no_retry_client(s3_server, fault_proxy.url))
    path = f"{s3_bucket}/r.bin"
    fault_proxy.fail_next(3, status=503, methods=("GET", "HEAD"))
    assert fs.read_range(path, 100, BLOCK + 100) == data[100 : BLOCK + 100]
    stats = fs.stats()["origin"]
    assert fault_proxy.injected() == 3
    assert stats["retries"] == 3
    assert stats["errors"] == 3
    fs.close()


def test_a_truncated_body_is_retried_never_returned_short(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(2 * BLOCK)
    s3_server.put_object(s3_bucket, "t.bin", data)
    fs = tiered(no_retry_client(s3_server, fault_proxy.url))
    path = f"{s3_bucket}/t.bin"
    fs.info(path)
    fault_proxy.truncate_next(1, keep_bytes=1000)
    assert fs.read_range(path, 0, 2 * BLOCK) == data
    assert fs.stats()["origin"]["retries"] >= 1
    fs.close()


def test_a_persistent_outage_raises_a_typed_error_within_the_deadline(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    from tiercache import OriginError

    s3_server.put_object(s3_bucket, "o.bin", b"x" * 100)
    settings = Settings(block_size_bytes=BLOCK, origin_retries=2, origin_timeout_s=5.0)
    fs = tiered(no_retry_client(s3_server, fault_proxy.url), settings)
    fault_proxy.fail_next(100, status=503, methods=("GET", "HEAD"))
    with pytest.raises(OriginError):
        fs.read_range(f"{s3_bucket}/o.bin", 0, 10)
    assert fs.stats()["origin"]["requests"] == 3  # 1 + 2 retries
    # Nothing was cached: the next read after the outage goes to the origin and succeeds.
    fault_proxy.fail_next(0)
    assert fs.read_range(f"{s3_bucket}/o.bin", 0, 10) == b"x" * 10
    fs.close()


def test_writes_through_s3_invalidate(s3_server: S3Server, s3_bucket: str) -> None:
    fs = tiered(s3_server.storage_options())
    path = f"{s3_bucket}/w/{uuid.uuid4().hex}.bin"
    fs.pipe_file(path, b"one")
    assert fs.cat_file(path) == b"one"
    fs.pipe_file(path, b"two!")
    assert fs.cat_file(path) == b"two!"
    with fs.open(path, "wb") as f:
        f.write(b"three")
    assert fs.cat_file(path) == b"three"
    assert fs.ls(f"{s3_bucket}/w", detail=False) == [path]
    fs.rm(path)
    assert not fs.exists(path)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(path)
    fs.close()


def test_a_stale_listing_in_s3fs_does_not_wedge_a_changed_object(
    s3_server: S3Server, s3_bucket: str
) -> None:
    # s3fs answers info() from its listing cache; after an overwrite that cache holds the old
    # ETag. The 412 must drop it, or every retry would pin the old version again.
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(), "skip_instance_cache": True},
        settings=SETTINGS,
        tiers=_memory(SETTINGS),
    )
    old, new = b"A" * (3 * BLOCK), b"B" * (3 * BLOCK)
    s3_server.put_object(s3_bucket, "l/x.bin", old)
    assert fs.ls(f"{s3_bucket}/l", detail=False) == [f"{s3_bucket}/l/x.bin"]  # fills the listing
    path = f"{s3_bucket}/l/x.bin"
    assert fs.info(path)["ETag"]  # from the listing
    assert fs.read_range(path, 0, 1) == b"A"
    s3_server.put_object(s3_bucket, "l/x.bin", new)
    # A negative offset needs the size first, so the retry after the 412 asks info() again.
    assert fs.read_range(path, -5, None) == b"BBBBB"
    fs.close()
