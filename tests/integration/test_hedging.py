"""Integration: hedged origin reads against a real S3 server (moto) behind an HTTP fault proxy.

The proxy delays a seeded choice of GETs (:meth:`HttpFaultProxy.delay_probability`): the seeds
are picked so that exactly the first GET of a read is delayed and its hedge is not. Outcomes are
asserted, never durations: a delayed request waits 20 s, so a read that returns at all returned
through its hedge.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import s3fs
from fsspec.asyn import sync

from tests.helpers import first_only_seed
from tiercache.context import DEMAND
from tiercache.errors import ObjectChangedError
from tiercache.hedging import BURST, MIN_SAMPLES
from tiercache.origin import FsspecOrigin
from tiercache.protocol import ObjectInfo
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

STUCK_S = 20.0
SIZE = 256 * 1024


def eventually(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def warmed(
    server: S3Server, proxy: HttpFaultProxy, path: str, **hedge: Any
) -> tuple[FsspecOrigin, ObjectInfo]:
    """An origin through the proxy that has timed enough reads to hedge."""
    fs = s3fs.S3FileSystem(**server.storage_options(proxy.url), skip_instance_cache=True)
    origin = FsspecOrigin(fs, retries=0, timeout_s=60.0, concurrency=8, **hedge)
    info = origin.info(path, ctx=DEMAND)
    for _ in range(MIN_SAMPLES + 5):
        origin.read(info, 0, 100, ctx=DEMAND)
    return origin, info


def tasks_left(origin: FsspecOrigin) -> int:
    """Tasks on the client's event loop, besides the one asking."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    fs: Any = origin.fs
    left: int = sync(fs.loop, count)
    return left


@pytest.fixture
def obj(s3_server: S3Server, s3_bucket: str) -> tuple[str, bytes]:
    data = os.urandom(SIZE)
    s3_server.put_object(s3_bucket, "hedged.bin", data)
    return f"{s3_bucket}/hedged.bin", data


def test_a_stuck_read_returns_through_its_hedge_and_the_loser_is_cancelled(
    s3_server: S3Server, fault_proxy: HttpFaultProxy, obj: tuple[str, bytes]
) -> None:
    path, data = obj
    origin, info = warmed(s3_server, fault_proxy, path, hedge_budget=0.5)
    before = origin.counters.snapshot()
    fault_proxy.delay_probability(0.5, STUCK_S, seed=first_only_seed())
    assert origin.read(info, 1000, SIZE, ctx=DEMAND) == data[1000:]
    stats = origin.counters.snapshot()
    assert (stats["hedges"], stats["hedges_won"]) == (1, 1)
    assert stats["requests"] - before["requests"] == 2  # the read and its hedge
    assert fault_proxy.injected("delay") == 1
    eventually(lambda: fault_proxy.abandoned() == 1)  # the loser's connection was closed
    assert tasks_left(origin) == 0


def test_a_412_from_the_hedge_is_object_changed(
    s3_server: S3Server, fault_proxy: HttpFaultProxy, obj: tuple[str, bytes], s3_bucket: str
) -> None:
    path, _ = obj
    origin, info = warmed(s3_server, fault_proxy, path, hedge_budget=0.5)
    s3_server.put_object(s3_bucket, "hedged.bin", os.urandom(SIZE))  # the pinned ETag is gone
    fault_proxy.delay_probability(0.5, STUCK_S, seed=first_only_seed())
    with pytest.raises(ObjectChangedError):
        origin.read(info, 0, SIZE, ctx=DEMAND)
    assert origin.counters.snapshot()["hedges"] == 1
    eventually(lambda: fault_proxy.abandoned() == 1)
    assert tasks_left(origin) == 0


def test_an_overwrite_during_a_hedged_read_never_mixes_versions(
    s3_server: S3Server, fault_proxy: HttpFaultProxy, obj: tuple[str, bytes], s3_bucket: str
) -> None:
    path, data = obj
    origin, info = warmed(s3_server, fault_proxy, path, hedge_budget=0.5)
    fault_proxy.reset_counters()
    fault_proxy.delay_probability(1.0, 1.0)  # every copy slow: the hedge is in flight too
    outcome: list[bytes | BaseException] = []

    def read() -> None:
        try:
            outcome.append(origin.read(info, 0, SIZE, ctx=DEMAND))
        except ObjectChangedError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    eventually(lambda: fault_proxy.requests("GET") >= 1)
    s3_server.put_object(s3_bucket, "hedged.bin", os.urandom(SIZE))
    reader.join(30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ObjectChangedError) or outcome[0] == data


def test_an_origin_slow_for_everyone_is_hedged_within_the_budget(
    s3_server: S3Server, fault_proxy: HttpFaultProxy, obj: tuple[str, bytes]
) -> None:
    path, data = obj
    origin, info = warmed(s3_server, fault_proxy, path)
    reads = MIN_SAMPLES + 5
    fault_proxy.delay_s = 0.12  # past the threshold learnt on the fast reads
    for _ in range(30):
        assert origin.read(info, 0, 100, ctx=DEMAND) == data[:100]
    reads += 30
    hedges = origin.counters.snapshot()["hedges"]
    assert 1 <= hedges <= 0.05 * reads + BURST


def test_hedging_off_sends_no_hedge(
    s3_server: S3Server, fault_proxy: HttpFaultProxy, obj: tuple[str, bytes]
) -> None:
    path, data = obj
    origin, info = warmed(s3_server, fault_proxy, path, hedge=False)
    fault_proxy.delay_probability(0.5, 0.5, seed=first_only_seed())
    assert origin.read(info, 0, SIZE, ctx=DEMAND) == data
    assert origin.counters.snapshot()["hedges"] == 0
    assert fault_proxy.abandoned() == 0
