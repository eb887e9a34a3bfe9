"""Integration: tiercache in front of Azure Blob Storage (adlfs) against a real Azurite server.

Reads are pinned with ``If-Match`` on the blob's ETag (``tiercache.origin_azure``); Azurite
honours it on ranged downloads (412 ``ConditionNotMet`` once the blob was overwritten), which is
what the overwrite tests rest on.
"""

from __future__ import annotations

import os
from typing import Any

import adlfs
import fsspec
import pytest

from tests.azure_fixtures import proxy_endpoint
from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.testing import AzuriteServer, HttpFaultProxy

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024
MIB = 1 << 20
SETTINGS = Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20)


def azure_fs(server: AzuriteServer, endpoint_url: str | None = None) -> adlfs.AzureBlobFileSystem:
    """adlfs on the server (through ``endpoint_url`` when given), no instance shared."""
    return adlfs.AzureBlobFileSystem(
        **server.storage_options(endpoint_url), skip_instance_cache=True
    )


def tiered(target: Any, settings: Settings = SETTINGS) -> TieredFileSystem:
    return TieredFileSystem(fs=target, settings=settings, tiers=[MemoryTier(settings.memory_bytes)])


def test_exact_bytes_ranges_and_info(azurite_server: AzuriteServer, azure_container: str) -> None:
    data = os.urandom(5 * BLOCK + 321)
    azurite_server.put_object(azure_container, "a/obj.bin", data)
    fs = tiered(azure_fs(azurite_server))
    path = f"{azure_container}/a/obj.bin"
    assert fs.cat_file(path) == data
    for start, end in [(0, 1), (BLOCK - 1, 3 * BLOCK + 1), (-100, None), (10, 5), (None, None)]:
        assert fs.read_range(path, start, end) == data[start:end]
    assert fs.cat_ranges([path, path], [0, -5], [5, None]) == [data[:5], data[-5:]]
    with fs.open(path, "rb") as f:
        f.seek(BLOCK - 7)
        assert f.read(20) == data[BLOCK - 7 : BLOCK + 13]
    info = fs.info(path)
    assert info["size"] == len(data)
    assert info["type"] == "file"
    etag = info["etag"]
    assert etag.startswith('"0x')  # adlfs's form: quoted
    assert etag.endswith('"')
    object_info = fs.chain.info(path)
    assert object_info.version == f"etag={etag}"
    assert object_info.etag == etag
    assert fs.stats()["origin"]["errors"] == 0
    fs.close()


def test_url_chaining(
    azurite_server: AzuriteServer, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * BLOCK + 5)
    azurite_server.put_object(azure_container, "u.bin", data)
    monkeypatch.setenv("TIERCACHE_BLOCK_SIZE", "64KiB")
    url = f"tiercache::abfs://{azure_container}/u.bin"
    options = {"abfs": {**azurite_server.storage_options(), "skip_instance_cache": True}}
    with fsspec.open(url, "rb", **options) as f:
        assert f.read() == data
    fs, path = fsspec.core.url_to_fs(url, **options)
    assert isinstance(fs, TieredFileSystem)
    assert fs.read_range(path, -10, None) == data[-10:]


def test_second_read_comes_from_the_cache(
    azurite_server: AzuriteServer, azure_container: str, azure_fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(4 * BLOCK)
    azurite_server.put_object(azure_container, "c.bin", data)
    fs = tiered(azure_fs(azurite_server, proxy_endpoint(azure_fault_proxy)))
    path = f"{azure_container}/c.bin"
    azure_fault_proxy.reset_counters()
    assert fs.cat_file(path) == data
    # One HEAD (the blob's properties: size and ETag), then one GET for the four blocks.
    assert (azure_fault_proxy.requests("HEAD"), azure_fault_proxy.requests("GET")) == (1, 1)
    origin_requests = fs.stats()["origin"]["requests"]
    azure_fault_proxy.reset_counters()
    assert fs.cat_file(path) == data
    assert fs.read_range(path, BLOCK + 3, 2 * BLOCK) == data[BLOCK + 3 : 2 * BLOCK]
    assert azure_fault_proxy.requests() == 0
    assert fs.stats()["origin"]["requests"] == origin_requests
    fs.close()


def test_a_long_read_is_one_request(
    azurite_server: AzuriteServer, azure_container: str, azure_fault_proxy: HttpFaultProxy
) -> None:
    # The SDK splits a download longer than max_single_get_size into chunk requests; tiercache
    # raises the limit for its own reads, on a copy: the user's client keeps its settings.
    data = os.urandom(16 * BLOCK)
    azurite_server.put_object(azure_container, "long.bin", data)
    target = azure_fs(azurite_server, proxy_endpoint(azure_fault_proxy))
    config = target.service_client._config
    config.max_single_get_size = config.max_chunk_get_size = BLOCK
    fs = tiered(target)
    path = f"{azure_container}/long.bin"
    azure_fault_proxy.reset_counters()
    assert fs.read_range(path, 0, len(data)) == data
    assert azure_fault_proxy.requests("GET") == 1
    assert target.service_client._config.max_single_get_size == BLOCK
    fs.close()


def test_missing_blob_is_not_found(azurite_server: AzuriteServer, azure_container: str) -> None:
    fs = tiered(azure_fs(azurite_server))
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{azure_container}/nope.bin")
    origin = fs.stats()["origin"]
    assert origin["not_found"] >= 1
    assert origin["errors"] == 0
    fs.close()


@pytest.mark.parametrize("new_size", [3 * MIB, 3 * MIB + 12345, 2 * MIB + 1], ids=str)
def test_overwrite_mid_read_yields_only_the_new_bytes(
    azurite_server: AzuriteServer, azure_container: str, new_size: int
) -> None:
    """Block 0 of the old version is cached; the blob is overwritten behind the cache; a whole
    read must be all new bytes, never old block 0 followed by new blocks."""
    old, new = os.urandom(3 * MIB), os.urandom(new_size)
    azurite_server.put_object(azure_container, "v.bin", old)
    fs = tiered(azure_fs(azurite_server), Settings(block_size_bytes=MIB, memory_bytes=64 << 20))
    path = f"{azure_container}/v.bin"
    assert fs.read_range(path, 0, 10) == old[:10]  # the info and block 0 of the old version
    azurite_server.put_object(azure_container, "v.bin", new)
    got = fs.cat_file(path)
    assert got[:MIB] != old[:MIB], "block 0 of the old version mixed into the new bytes"
    assert len(got) == len(new)
    assert got == new
    assert fs.stats()["origin"]["changed"] == 1
    assert fs.cat_file(path) == new  # the new version is what is cached now
    assert fs.stats()["origin"]["changed"] == 1
    fs.close()
