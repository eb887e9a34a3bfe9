"""Integration: tiercache over gcsfs against a real GCS emulator (gcp-storage-emulator).

The emulator ignores ``generation=`` and ``ifGenerationMatch=`` on downloads and sends no
``x-goog-generation``: the pin holds here through the live-generation check after each body
(:mod:`tiercache.origin_gcs`).
"""

from __future__ import annotations

import os
from typing import Any

import fsspec
import gcsfs
import pytest

from tiercache import MemoryTier, ObjectChangedError, Settings, TieredFileSystem
from tiercache.testing import GcsServer, HttpFaultProxy

pytestmark = pytest.mark.integration

BLOCK = 1 << 20
SIZE = 3 * BLOCK
SETTINGS = Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20)


def gcs(server: GcsServer, endpoint_url: str | None = None) -> Any:
    """A gcsfs filesystem of its own (no instance or listing cache shared between tests)."""
    return gcsfs.GCSFileSystem(
        **server.storage_options(endpoint_url), skip_instance_cache=True, use_listings_cache=False
    )


def tiered(target: Any, settings: Settings = SETTINGS) -> TieredFileSystem:
    return TieredFileSystem(fs=target, settings=settings, tiers=[MemoryTier(settings.memory_bytes)])


def test_exact_bytes_through_url_chaining(
    gcs_server: GcsServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(SIZE + 321)
    gcs_server.put_object(gcs_bucket, "a/obj.bin", data)
    monkeypatch.setenv("TIERCACHE_BLOCK_SIZE", "1MiB")
    url = f"tiercache::gs://{gcs_bucket}/a/obj.bin"
    options = {"gs": {**gcs_server.storage_options(), "skip_instance_cache": True}}
    with fsspec.open(url, "rb", **options) as f:
        assert f.read() == data
        f.seek(BLOCK - 7)
        assert f.read(20) == data[BLOCK - 7 : BLOCK + 13]
    fs, path = fsspec.core.url_to_fs(url, **options)
    assert isinstance(fs, TieredFileSystem)
    for start, end in [(0, 1), (BLOCK - 1, 2 * BLOCK + 1), (-100, None), (10, 5), (None, None)]:
        assert fs.read_range(path, start, end) == data[start:end]
    assert fs.cat_file(path) == data
    assert fs.cat_ranges([path, path], [0, -5], [5, None]) == [data[:5], data[-5:]]


def test_second_read_is_served_from_the_cache(
    gcs_server: GcsServer, gcs_bucket: str, gcs_fault_proxy: HttpFaultProxy
) -> None:
    data = os.urandom(SIZE)
    gcs_server.put_object(gcs_bucket, "c.bin", data)
    fs = tiered(gcs(gcs_server, gcs_fault_proxy.url))
    path = f"{gcs_bucket}/c.bin"
    assert fs.cat_file(path) == data
    assert gcs_fault_proxy.requests("GET") >= 2  # the info and the blocks
    before = fs.stats()["origin"]["requests"]
    assert fs.cat_file(path) == data
    assert fs.read_range(path, BLOCK - 3, BLOCK + 3) == data[BLOCK - 3 : BLOCK + 3]
    with fs.open(path, "rb") as f:
        f.seek(2 * BLOCK)
        assert f.read(5) == data[2 * BLOCK : 2 * BLOCK + 5]
    assert fs.stats()["origin"]["requests"] == before
    # Not the proxy's count: gcsfs's info lists the path in parallel with the object GET, and that
    # request may reach the proxy after the info returned.
    fs.close()


def test_info_names_the_generation(gcs_server: GcsServer, gcs_bucket: str) -> None:
    gcs_server.put_object(gcs_bucket, "i.bin", b"x" * 1000)
    target = gcs(gcs_server)
    fs = tiered(target)
    path = f"{gcs_bucket}/i.bin"
    info = fs.info(path)
    assert info["size"] == 1000
    assert info["type"] == "file"
    assert info["generation"] == target.info(path)["generation"]
    fs.close()


@pytest.mark.parametrize("new_size", [SIZE, SIZE - BLOCK // 2, SIZE + 12345])
def test_overwrite_between_block_reads_never_mixes_versions(
    gcs_server: GcsServer, gcs_bucket: str, new_size: int
) -> None:
    old, new = b"A" * SIZE, b"B" * new_size
    gcs_server.put_object(gcs_bucket, "v.bin", old)
    fs = tiered(gcs(gcs_server))
    path = f"{gcs_bucket}/v.bin"
    assert fs.read_range(path, 0, 10) == b"A" * 10  # block 0 of the old generation cached
    gcs_server.put_object(gcs_bucket, "v.bin", new)  # overwritten behind the cache
    # Blocks 1 and 2 come from the origin pinned to the old generation: the pin fails, and the
    # whole read restarts on the new one. All B, never A (cached block 0) + B.
    got = fs.cat_file(path)
    assert got == new, f"{got.count(b'A')} bytes of the old version among {len(got)}"
    assert fs.stats()["origin"]["changed"] == 1
    fs.close()


def test_an_open_file_stays_on_its_generation(gcs_server: GcsServer, gcs_bucket: str) -> None:
    old, new = b"A" * SIZE, b"B" * SIZE
    gcs_server.put_object(gcs_bucket, "o.bin", old)
    fs = tiered(gcs(gcs_server))
    path = f"{gcs_bucket}/o.bin"
    assert fs.read_range(path, 0, 1) == b"A"
    with fs.open(path, "rb") as handle:
        gcs_server.put_object(gcs_bucket, "o.bin", new)
        assert handle.read(10) == b"A" * 10  # the cached block of its generation still reads
        handle.seek(2 * BLOCK)  # a block of the old generation that is gone raises
        with pytest.raises(ObjectChangedError, match="reopen"):
            handle.read(10)
    assert fs.cat_file(path) == new
    fs.close()


def test_missing_and_deleted_objects_raise_file_not_found(
    gcs_server: GcsServer, gcs_bucket: str
) -> None:
    target = gcs(gcs_server)
    fs = tiered(target)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{gcs_bucket}/nope.bin")
    path = f"{gcs_bucket}/gone.bin"
    gcs_server.put_object(gcs_bucket, "gone.bin", b"x" * SIZE)
    assert fs.read_range(path, 0, 1) == b"x"  # the info is cached
    target.rm_file(path)  # deleted behind the cache: the pinned download answers 404
    with pytest.raises(FileNotFoundError):
        fs.read_range(path, 2 * BLOCK, 2 * BLOCK + 1)
    assert fs.stats()["origin"]["retries"] == 0
    fs.close()
