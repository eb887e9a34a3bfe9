"""Integration: readahead of open files (tiercache.readahead) against a real S3 server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tiercache import MemoryTier, ObjectChangedError, Settings, TieredFileSystem
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration


def tiered(options: dict[str, Any], settings: Settings) -> TieredFileSystem:
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True},
        settings=settings,
        skip_instance_cache=True,
        tiers=[MemoryTier(settings.memory_bytes)],
    )


def eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_sequential_read_of_32_mib_sends_at_most_one_get_per_block(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    block = 1 << 20
    data = os.urandom(32 * block)
    s3_server.put_object(s3_bucket, "scan.bin", data)
    settings = Settings(block_size_bytes=block, memory_bytes=128 << 20, origin_hedge=False)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    fault_proxy.reset_counters()
    chunks = []
    with fs.open(f"{s3_bucket}/scan.bin", "rb") as f:
        while chunk := f.read(4 * block):
            chunks.append(chunk)
    assert b"".join(chunks) == data
    readahead = fs.chain.readahead
    eventually(lambda: readahead.snapshot()["in_flight_bytes"] == 0)
    stats = fs.stats()
    assert stats["readahead"]["blocks"] > 0
    assert stats["readahead"]["hits"] > 0
    assert fault_proxy.requests("GET") <= 32
    assert stats["origin"]["bytes"] + stats["prefetch"]["origin"]["bytes"] == len(data)
    fs.close()


def test_an_overwrite_during_a_scan_never_mixes_versions(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    block = 64 * 1024
    old, new = b"A" * (16 * block), b"B" * (16 * block)
    s3_server.put_object(s3_bucket, "v.bin", old)
    settings = Settings(block_size_bytes=block, memory_bytes=16 << 20, origin_hedge=False)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    path = f"{s3_bucket}/v.bin"
    read = b""
    error = ""
    with fs.open(path, "rb") as handle:
        read += handle.read(block)
        read += handle.read(block)  # sequential: blocks ahead are fetched, pinned to the ETag
        s3_server.put_object(s3_bucket, "v.bin", new)  # overwritten behind the cache
        try:
            while chunk := handle.read(block):
                read += chunk
        except ObjectChangedError as exc:
            error = str(exc)
    # Whatever was read ahead before or after the overwrite, the file read one version only.
    assert read == old[: len(read)]
    assert len(read) >= 2 * block
    assert len(read) == len(old) or "reopen" in error
    eventually(lambda: fs.chain.readahead.snapshot()["in_flight_bytes"] == 0)
    fs.invalidate_cache(path)
    with fs.open(path, "rb") as handle:
        assert handle.read() == new
    fs.close()
