"""Integration: a slow origin and a 503 storm, through an HTTP fault proxy in front of a real S3
server (moto in a subprocess).

At 40 KB/s a 1 MiB block takes 26 s, far past a 5 s deadline, while a 100-byte range takes a
few milliseconds: bare s3fs serves such a read, and so must tiercache (issue 12). With nothing
observed yet, a block fetch is late after a quarter of the deadline (1.25 s); the reader then
reads its own range. The slow transfers are cut by restarting the proxy (same port), so no test
waits for a deadline it does not need to.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import s3fs

from tiercache import MemoryTier, OriginError, Settings, TieredFileSystem
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

BLOCK = 1 << 20
SLOW_BYTES_PER_S = 40_000


def tiered(options: dict[str, Any] | s3fs.S3FileSystem, settings: Settings) -> TieredFileSystem:
    tiers = [MemoryTier(64 << 20)]
    if isinstance(options, s3fs.S3FileSystem):
        return TieredFileSystem(fs=options, settings=settings, tiers=tiers)
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True},
        settings=settings,
        skip_instance_cache=True,
        tiers=tiers,
    )


def cut_slow_responses(proxy: HttpFaultProxy) -> None:
    """Forward at full speed again, and end the responses still being paced."""
    proxy.clear_faults()
    proxy.close()
    proxy.start()


def eventually(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def origin(fs: TieredFileSystem) -> dict[str, Any]:
    stats: dict[str, Any] = fs.stats()["origin"]
    return stats


def test_a_small_cold_read_of_a_slow_object_succeeds_and_the_block_still_arrives(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(2 * BLOCK)
    s3_server.put_object(s3_bucket, "slow.bin", data)
    settings = Settings(block_size_bytes=BLOCK, origin_timeout_s=5.0)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    path = f"{s3_bucket}/slow.bin"
    fault_proxy.bandwidth_bytes_per_s = SLOW_BYTES_PER_S
    began = time.monotonic()
    assert fs.cat_file(path, start=0, end=100) == data[:100]  # cold: the info is unknown
    assert time.monotonic() - began < 4.5  # within the deadline (1.25 s expected)
    assert origin(fs)["narrowed"] >= 1
    # The block fetch goes on behind the read. Cut its slow transfer: its retry, at full
    # speed, stores the block and the info.
    cut_slow_responses(fault_proxy)
    eventually(lambda: fs.stats()["tiers"]["memory"]["bytes_written"] >= BLOCK)
    gets = fault_proxy.requests("GET")
    requests = origin(fs)["requests"]
    assert fs.cat_file(path, start=0, end=BLOCK) == data[:BLOCK]
    assert fs.cat_file(path, start=500, end=600) == data[500:600]
    assert (fault_proxy.requests("GET"), origin(fs)["requests"]) == (gets, requests)
    fs.close()


def test_a_late_block_narrows_its_leader_and_its_follower(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(2 * BLOCK)
    s3_server.put_object(s3_bucket, "slow2.bin", data)
    settings = Settings(block_size_bytes=BLOCK, origin_timeout_s=5.0, origin_retries=0)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    path = f"{s3_bucket}/slow2.bin"
    fs.info(path)  # the info is known: the read goes through the block runs
    fault_proxy.bandwidth_bytes_per_s = SLOW_BYTES_PER_S
    fault_proxy.reset_counters()
    results: dict[str, bytes] = {}

    def read(name: str, start: int, end: int) -> None:
        results[name] = fs.cat_file(path, start=start, end=end)

    leader = threading.Thread(target=read, args=("leader", BLOCK + 10, BLOCK + 110))
    leader.start()
    eventually(lambda: fault_proxy.requests("GET") == 1)  # the leader's block GET is out
    follower = threading.Thread(target=read, args=("follower", BLOCK + 5000, BLOCK + 5100))
    follower.start()
    leader.join()
    follower.join()
    assert results == {
        "leader": data[BLOCK + 10 : BLOCK + 110],
        "follower": data[BLOCK + 5000 : BLOCK + 5100],
    }
    assert fs.stats()["flight"]["block_waits"] == 1
    assert (origin(fs)["narrowed_requests"], origin(fs)["narrowed"]) == (2, 2)
    # The block fetch fails (cut, no retries): nothing is cached...
    cut_slow_responses(fault_proxy)
    eventually(lambda: origin(fs)["errors"] >= 1)
    # ...so the next read of the block fetches it, now fast, and fills the cache.
    assert fs.cat_file(path, start=BLOCK + 200, end=BLOCK + 300) == data[BLOCK + 200 : BLOCK + 300]
    gets = fault_proxy.requests("GET")
    assert fs.cat_file(path, start=BLOCK, end=2 * BLOCK) == data[BLOCK:]  # a RAM hit
    assert fault_proxy.requests("GET") == gets
    fs.close()


def test_a_storm_of_503s_names_the_status_and_the_attempts(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "storm.bin", b"x" * 1000)
    path = f"{s3_bucket}/storm.bin"
    # s3fs and botocore make one attempt each: the retries are tiercache's.
    client = s3fs.S3FileSystem(
        **s3_server.storage_options(fault_proxy.url),
        config_kwargs={"retries": {"total_max_attempts": 1}},
        skip_instance_cache=True,
    )
    # A deadline far beyond the three attempts: the block fetch is never late (a quarter of the
    # deadline on an origin with no pace yet), so the reader never sends its own narrowed read,
    # another three attempts, however slowly a loaded machine answers the 503s.
    settings = Settings(block_size_bytes=BLOCK, origin_retries=2, origin_timeout_s=60.0)
    fs = tiered(client, settings)
    fault_proxy.fail_probability(1.0, methods=("GET", "HEAD"))
    with pytest.raises(OriginError) as raised:
        fs.read_range(path, 0, 1000)
    assert "last answer 503 SlowDown" in str(raised.value)
    assert "(3 attempts)" in str(raised.value)
    stats = origin(fs)
    assert (stats["requests"], stats["retries"]) == (3, 2) == (fault_proxy.requests(), 2)
    fs.close()


def test_retries_inside_the_s3_client_are_counted_and_named(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    small = 64 * 1024
    s3_server.put_object(s3_bucket, "storm2.bin", b"x" * small)
    path = f"{s3_bucket}/storm2.bin"
    # A default s3fs client: botocore's legacy mode retries a 503 up to 4 times, with up to
    # 1, 2, 4, 8 s of backoff, inside one of tiercache's attempts.
    settings = Settings(block_size_bytes=small, origin_retries=1, origin_timeout_s=2.0)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    fault_proxy.fail_probability(1.0, methods=("GET", "HEAD"))
    with pytest.raises(OriginError) as raised:
        fs.read_range(path, 0, small)  # a whole block: one origin call, nothing to narrow
    message = str(raised.value)
    assert "last answer 503 SlowDown" in message, message
    assert re.search(r"\(\d+ attempts?; the S3 client sent \d+ requests in (it|them)\)", message)
    stats = origin(fs)
    # The first backoff is under 1 s: at least two requests within the 2 s deadline.
    assert stats["requests"] >= 2
    assert stats["retries"] == stats["requests"] - 1  # every request but the first repeats
    assert stats["narrowed_requests"] == 0
    fs.close()


def test_an_info_request_that_hangs_ends_at_the_origin_deadline(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    """A HEAD is bounded by TIERCACHE_ORIGIN_TIMEOUT like a GET: it does not wait for the
    client's own socket timeouts (botocore's: 60 s per attempt)."""
    delay_s = 10.0
    s3_server.put_object(s3_bucket, "head.bin", b"x" * 100)
    settings = Settings(block_size_bytes=BLOCK, origin_timeout_s=0.5, origin_retries=0)
    fs = tiered(s3_server.storage_options(fault_proxy.url), settings)
    fault_proxy.delay_s = delay_s
    began = time.monotonic()
    with pytest.raises(OriginError) as raised:
        fs.info(f"{s3_bucket}/head.bin")
    assert time.monotonic() - began < delay_s  # the deadline ended it, not the answer
    assert isinstance(raised.value, TimeoutError)
    cut_slow_responses(fault_proxy)
    assert fs.info(f"{s3_bucket}/head.bin")["size"] == 100
