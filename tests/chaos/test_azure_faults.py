"""Chaos: origin faults between tiercache and Azure Blob Storage (Azurite behind a fault proxy).

The Azure SDK's own retry policy is switched off (``retry_total=0``), as botocore's is in the S3
rows of ``test_matrix.py``, so that tiercache's retries under its deadline are what is tested.
Whatever the fault, a read returns exactly the blob's bytes or raises a typed error; never short
or mixed bytes, never a hang.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import adlfs
import pytest
from azure.storage.blob.aio import BlobServiceClient

from tests.azure_fixtures import proxy_endpoint
from tests.helpers import first_only_seed
from tiercache import OriginError, OriginTimeoutError, Settings, TieredFileSystem
from tiercache.hedging import MIN_SAMPLES
from tiercache.testing import AzuriteServer, HttpFaultProxy

pytestmark = pytest.mark.chaos

BLOCK = 256 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Blobs:
    """Three blobs on Azurite and an adlfs filesystem reaching them through the proxy."""

    proxy: HttpFaultProxy
    target: adlfs.AzureBlobFileSystem
    objects: dict[str, bytes]

    def pod(self, **overrides: float) -> TieredFileSystem:
        options: dict[str, Any] = {
            "block_size_bytes": BLOCK,
            "memory_bytes": 0,  # every read reaches the origin
            "origin_retries": 4,
            **overrides,
        }
        settings = Settings(**options)
        return TieredFileSystem(fs=self.target, settings=settings, tiers=[])

    def read_all(self, fs: TieredFileSystem) -> None:
        """Footers and data ranges of every blob: exactly the blob's bytes."""
        for path, data in self.objects.items():
            for start, end in ((-65536, None), (BLOCK // 3, 2 * BLOCK + 5), (None, None)):
                assert sha(fs.read_range(path, start, end)) == sha(data[start:end]), path


@pytest.fixture
def blobs(
    azurite_server: AzuriteServer, azure_container: str, azure_fault_proxy: HttpFaultProxy
) -> Iterator[Blobs]:
    objects = {}
    for i in range(3):
        data = os.urandom(3 * BLOCK + 1000 * (i + 1))
        azurite_server.put_object(azure_container, f"t/part-{i}.bin", data)
        objects[f"{azure_container}/t/part-{i}.bin"] = data
    target = adlfs.AzureBlobFileSystem(
        **azurite_server.storage_options(proxy_endpoint(azure_fault_proxy)),
        skip_instance_cache=True,
    )
    # The SDK's retries off (its default backs off 15 s on a 503): the client is replaced
    # before it has sent anything, so nothing of the first one is left open.
    connection_string = azurite_server.connection_string(proxy_endpoint(azure_fault_proxy))
    target.service_client = BlobServiceClient.from_connection_string(
        connection_string, retry_total=0
    )
    azure_fault_proxy.reset_counters()
    yield Blobs(azure_fault_proxy, target, objects)
    azure_fault_proxy.clear_faults()


def test_503s_are_retried_to_exact_bytes(blobs: Blobs) -> None:
    fs = blobs.pod()
    blobs.proxy.fail_next(3, status=503, methods=("GET", "HEAD"))
    blobs.read_all(fs)
    assert blobs.proxy.injected() == 3
    origin = fs.stats()["origin"]
    assert origin["retries"] >= 3
    assert origin["errors"] >= 3
    fs.close()


def test_503s_beyond_the_retries_are_a_typed_error(blobs: Blobs) -> None:
    fs = blobs.pod(origin_retries=1)
    path = next(iter(blobs.objects))
    blobs.proxy.fail_next(10, status=503, methods=("GET", "HEAD"))
    with pytest.raises(OriginError):
        fs.read_range(path, 0, 10)
    blobs.proxy.clear_faults()
    assert fs.read_range(path, 0, 10) == blobs.objects[path][:10]
    fs.close()


def test_truncated_bodies_give_exact_bytes_or_a_typed_error(blobs: Blobs) -> None:
    fs = blobs.pod()
    path, data = next(iter(blobs.objects.items()))
    assert fs.info(path)["size"] == len(data)  # the info first: every truncation hits a GET
    # The SDK downloads again on a cut body, three times at most, 1 s apart (its downloader's
    # own loop, whatever its retry policy); the fourth cut is tiercache's to retry.
    blobs.proxy.truncate_next(4, keep_bytes=1000)
    try:
        got = fs.read_range(path, 0, len(data))
    except OriginError:
        pass  # a typed error is an acceptable answer; short bytes are not
    else:
        assert sha(got) == sha(data)
    assert blobs.proxy.injected("truncate") == 4
    assert fs.stats()["origin"]["retries"] >= 1
    blobs.read_all(fs)  # nothing partial was kept: every read is exact
    fs.close()


def test_first_byte_later_than_the_origin_timeout_is_a_timeout(blobs: Blobs) -> None:
    delay_s = 10.0
    fs = blobs.pod(origin_timeout_s=0.5)
    path = next(iter(blobs.objects))
    blobs.proxy.delay_s = delay_s
    began = time.monotonic()
    with pytest.raises(OriginTimeoutError):
        fs.info(path)  # the HEAD ends at the deadline too, not at the SDK's socket timeouts
    assert time.monotonic() - began < delay_s
    blobs.proxy.delay_s = 0
    assert fs.info(path)["size"] == len(blobs.objects[path])
    blobs.proxy.delay_s = delay_s
    began = time.monotonic()
    with pytest.raises(OriginTimeoutError) as raised:
        fs.read_range(path, 0, 10)
    # The deadline ended the read, not the delayed answer (a loose bound: 20x the timeout).
    assert time.monotonic() - began < delay_s
    assert isinstance(raised.value, TimeoutError)
    assert fs.stats()["origin"]["errors"] >= 1
    fs.close()


def test_a_slow_first_byte_within_the_timeout_gives_exact_bytes(blobs: Blobs) -> None:
    fs = blobs.pod(origin_timeout_s=10.0)
    blobs.proxy.delay_s = 0.05
    path, data = next(iter(blobs.objects.items()))
    assert fs.read_range(path, BLOCK // 3, 2 * BLOCK + 5) == data[BLOCK // 3 : 2 * BLOCK + 5]
    assert fs.stats()["origin"]["errors"] == 0
    fs.close()


def test_a_stuck_read_returns_through_its_hedge(blobs: Blobs) -> None:
    proxy, target, objects = blobs.proxy, blobs.target, blobs.objects
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
