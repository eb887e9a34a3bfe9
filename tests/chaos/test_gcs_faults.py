"""Chaos: origin faults between tiercache and GCS (the emulator behind an HTTP fault proxy).

The GCS counterparts of the origin rows of test_matrix.py: a burst of 503s is absorbed by
tiercache's retries (exact bytes); a truncated body is retried or raised as a typed error, never
returned short; a first byte later than the origin budget is a typed timeout, one within it is
exact bytes. Each test seeds the object's info (its generation), so the faults hit the pinned
block reads: gcsfs's own ``info`` has its own retry loop (1 to 32 s apart), and it lists the
path in parallel with the object GET, a request that can reach the proxy after the info returned
and take a fault meant for a read.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import gcsfs
import pytest

from tests.helpers import first_only_seed
from tiercache import MemoryTier, OriginError, OriginTimeoutError, Settings, TieredFileSystem
from tiercache.hedging import MIN_SAMPLES
from tiercache.testing import GcsServer, HttpFaultProxy

pytestmark = pytest.mark.chaos

BLOCK = 256 * 1024
SIZE = 3 * BLOCK


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def world(
    server: GcsServer, bucket: str, proxy: HttpFaultProxy, **settings: Any
) -> tuple[TieredFileSystem, str, bytes]:
    """A tiered filesystem reading ``bucket/f.bin`` (3 blocks) through ``proxy``, info seeded."""
    data = os.urandom(SIZE)
    generation = server.put_object(bucket, "f.bin", data)
    target = gcsfs.GCSFileSystem(
        **server.storage_options(proxy.url), skip_instance_cache=True, use_listings_cache=False
    )
    config = Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20, **settings)
    fs = TieredFileSystem(fs=target, settings=config, tiers=[MemoryTier(config.memory_bytes)])
    path = f"{bucket}/f.bin"
    fs.seed_info(path, SIZE, f"generation={generation}", {"generation": generation})
    return fs, path, data


def test_a_burst_of_503s_is_absorbed_by_retries(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy, origin_retries=5)
    gcs_fault_proxy.fail_next(3, status=503)
    assert sha(fs.cat_file(path)) == sha(data)
    stats = fs.stats()["origin"]
    assert gcs_fault_proxy.injected() == 3
    assert stats["retries"] == 3
    assert stats["errors"] == 3
    # The blocks are cached: the next read costs the origin nothing.
    gcs_fault_proxy.reset_counters()
    assert fs.read_range(path, 100, BLOCK + 100) == data[100 : BLOCK + 100]
    assert gcs_fault_proxy.requests() == 0
    fs.close()


def test_a_persistent_outage_raises_a_typed_error(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy, origin_retries=2)
    gcs_fault_proxy.fail_next(100, status=503)
    with pytest.raises(OriginError):
        fs.read_range(path, 0, 10)
    assert fs.stats()["origin"]["requests"] == 3  # 1 + 2 retries
    assert gcs_fault_proxy.injected() == 3
    gcs_fault_proxy.fail_next(0)  # nothing was cached: the next read succeeds
    assert fs.read_range(path, 0, 10) == data[:10]
    fs.close()


def test_a_truncated_body_is_retried_never_returned_short(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy)
    gcs_fault_proxy.truncate_next(1, keep_bytes=1000)
    assert sha(fs.cat_file(path)) == sha(data)
    assert gcs_fault_proxy.injected() == 1
    assert fs.stats()["origin"]["retries"] >= 1
    fs.close()


def test_a_truncated_body_without_retries_is_a_typed_error(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy, origin_retries=0)
    gcs_fault_proxy.truncate_next(1, keep_bytes=1000)
    with pytest.raises(OriginError):
        fs.read_range(path, 0, BLOCK)
    assert fs.read_range(path, 0, BLOCK) == data[:BLOCK]  # nothing short was cached
    fs.close()


def test_a_first_byte_beyond_the_budget_is_a_typed_timeout(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(
        gcs_server, gcs_bucket, gcs_fault_proxy, origin_timeout_s=0.5, origin_retries=1
    )
    gcs_fault_proxy.delay_s = 3.0
    with pytest.raises(OriginTimeoutError) as raised:
        fs.read_range(path, 0, 10)
    assert isinstance(raised.value, TimeoutError)
    gcs_fault_proxy.delay_s = 0
    # Another block: one of block 0's fetches may still be ending with its timeout, and a read
    # that joins it gets that error (the chain shares one fetch between readers).
    assert fs.read_range(path, 2 * BLOCK, 2 * BLOCK + 10) == data[2 * BLOCK : 2 * BLOCK + 10]
    fs.close()


def test_a_first_byte_within_the_budget_is_exact_bytes(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy, origin_timeout_s=10.0)
    gcs_fault_proxy.delay_s = 0.2
    assert sha(fs.cat_file(path)) == sha(data)
    assert fs.stats()["origin"]["retries"] == 0
    fs.close()


def test_a_failed_generation_precondition_restarts_the_read(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    # What GCS answers when the object is no longer the pinned generation (the emulator never
    # does): the read forgets the info, counts the change and reads the live generation.
    fs, path, data = world(gcs_server, gcs_bucket, gcs_fault_proxy)
    gcs_fault_proxy.fail_next(1, status=412)
    assert sha(fs.cat_file(path)) == sha(data)
    stats = fs.stats()["origin"]
    assert (stats["changed"], stats["retries"]) == (1, 0)
    fs.close()


def test_a_stuck_read_returns_through_its_hedge(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    proxy = gcs_fault_proxy
    data = os.urandom(SIZE)
    gcs_server.put_object(gcs_bucket, "f.bin", data)
    target = gcsfs.GCSFileSystem(
        **gcs_server.storage_options(proxy.url), skip_instance_cache=True, use_listings_cache=False
    )
    objects = {f"{gcs_bucket}/f.bin": data}
    path, data = next(iter(objects.items()))
    fs = TieredFileSystem(
        fs=target,
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=0, origin_hedge_budget=0.5),
        tiers=[],
    )
    for i in range(MIN_SAMPLES + 5):  # timed reads: enough samples to hedge
        assert fs.read_range(path, i, i + 10) == data[i : i + 10]
    # The read's GET is delayed far past any deadline the test waits for; the hedge and
    # what follows it are not.
    proxy.delay_probability(0.5, 30.0, seed=first_only_seed(spared=4))
    assert sha(fs.read_range(path, 100, 2 * BLOCK)) == sha(data[100 : 2 * BLOCK])
    origin = fs.stats()["origin"]
    # The stuck GET was hedged and its hedge answered. On a loaded machine another request of
    # the read (not delayed) can also cross the threshold (50 ms at least) and be hedged as
    # well: that is hedging working, so more than one hedge is not a failure.
    assert origin["hedges"] >= 1
    assert origin["hedges_won"] >= 1
    assert proxy.injected("delay") == 1
    deadline = time.monotonic() + 15
    while proxy.abandoned() < 1:  # the loser's connection is closed, not left to its 30 s
        assert time.monotonic() < deadline, "the losing request was not cancelled"
        time.sleep(0.02)
    fs.close()
