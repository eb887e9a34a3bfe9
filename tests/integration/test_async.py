"""fsspec's async interface on the tiers (tiercache.asyncfs), with real async users: zarr v3's
FsspecStore and asyncio.gather of many ``_cat_ranges``, against the S3 server; a hung
redis-server (SIGSTOP) under an async read."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import zarr
from zarr.storage import FsspecStore

from tests.helpers import HMAC_KEY
from tests.redis_fixtures import redis_fresh, redis_server  # noqa: F401
from tiercache import AsyncTieredFileSystem, Settings, TieredFileSystem
from tiercache.asyncfs import async_methods
from tiercache.testing import RedisServer, S3Server

pytestmark = pytest.mark.integration
MIB = 1 << 20


def _async_fs(options: dict[str, Any], **kwargs: Any) -> AsyncTieredFileSystem:
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True},
        asynchronous=True,
        skip_instance_cache=True,
        **kwargs,
    )
    assert isinstance(fs, AsyncTieredFileSystem)
    return fs


def _origin_requests(fs: TieredFileSystem) -> int:
    fs.chain.fills.join(timeout_s=10)
    return int(fs.stats()["origin"]["requests"])


def test_asynchronous_builds_the_async_filesystem(s3_storage_options: dict[str, Any]) -> None:
    fs = _async_fs(s3_storage_options)
    assert fs.async_impl
    assert fs.asynchronous
    sync = TieredFileSystem(
        target_protocol="s3", target_options=s3_storage_options, skip_instance_cache=True
    )
    assert type(sync) is TieredFileSystem
    assert not sync.async_impl
    by_name = fsspec.filesystem(
        "tiercache", target_protocol="s3", target_options=s3_storage_options, asynchronous=True
    )
    assert isinstance(by_name, AsyncTieredFileSystem)
    for name in (
        "_cat_file", "_cat_ranges", "_info", "_exists", "_ls", "_find", "_pipe_file", "_rm",
        "_cp_file", "_copy", "_get", "_get_file", "_put", "_put_file", "_expand_path",
    ):  # fmt: skip
        assert name in async_methods(), name
    fs.close()
    sync.close()


def test_gathered_cat_ranges_go_through_the_tiers(
    s3_server: S3Server, s3_bucket: str, s3_storage_options: dict[str, Any]
) -> None:
    data = os.urandom(4 * MIB)
    s3_server.put_object(s3_bucket, "big.bin", data)
    path = f"{s3_bucket}/big.bin"
    fs = _async_fs(s3_storage_options)
    starts: list[int | None] = [(i * 37_813) % (len(data) - 65_536) for i in range(256)]
    ends: list[int | None] = [s + 65_536 for s in starts if s is not None]

    async def read_all() -> list[list[bytes | Exception]]:
        calls = [
            fs._cat_ranges([path] * 4, starts[i : i + 4], ends[i : i + 4])
            for i in range(0, len(starts), 4)
        ]
        return list(await asyncio.gather(*calls))

    for _ in range(2):
        got = [chunk for batch in asyncio.run(read_all()) for chunk in batch]
        assert got == [data[s:e] for s, e in zip(starts, ends, strict=True)]
        if _ == 0:
            cold = _origin_requests(fs)
            assert cold > 0
    assert _origin_requests(fs) == cold  # the second pass: from RAM, no request to the store

    async def errors() -> tuple[list[bytes | Exception], BaseException | None]:
        returned = await fs._cat_ranges([path, f"{s3_bucket}/missing"], [0, 0], [4, 4])
        try:
            await fs._cat_ranges([f"{s3_bucket}/missing"], [0], [4], on_error="raise")
        except FileNotFoundError as exc:
            return returned, exc
        return returned, None

    returned, raised = asyncio.run(errors())
    assert returned[0] == data[:4]
    assert isinstance(returned[1], FileNotFoundError)
    assert isinstance(raised, FileNotFoundError)
    fs.close()


def test_open_async_reads_and_writes_through(
    s3_server: S3Server, s3_bucket: str, s3_storage_options: dict[str, Any]
) -> None:
    s3_server.put_object(s3_bucket, "f.bin", b"0123456789" * 1000)
    path = f"{s3_bucket}/f.bin"
    fs = _async_fs(s3_storage_options)

    async def scenario() -> tuple[bytes, bytes, bytes, int]:
        f = await fs.open_async(path)
        first = await f.read(10)
        rest = await f.read()
        await f.close()
        w = await fs.open_async(path, "wb")
        await w.write(b"new bytes")
        await w.close()
        again = await fs._cat_file(path)  # read-your-writes: the cached bytes were dropped
        size = await fs._size(path)
        return first, rest, again, size

    first, rest, again, size = asyncio.run(scenario())
    assert first == b"0123456789"
    assert len(rest) == 9_990
    assert again == b"new bytes"
    assert size == 9

    async def bad_mode() -> None:
        await fs.open_async(path, "ab")

    with pytest.raises(ValueError, match="only 'rb' and 'wb'"):
        asyncio.run(bad_mode())
    fs.close()


def test_zarr_reads_chunks_through_the_tiers(
    s3_bucket: str, s3_storage_options: dict[str, Any]
) -> None:
    """zarr v3's FsspecStore over ``tiercache::s3://``: it gets the async filesystem, and a second
    read of the array's chunks sends no request to the store."""
    store = FsspecStore.from_url(
        f"tiercache::s3://{s3_bucket}/arr",
        storage_options={"s3": s3_storage_options, "tiercache": {"skip_instance_cache": True}},
    )
    assert isinstance(store.fs, AsyncTieredFileSystem)
    values = np.arange(10_000, dtype="f8").reshape(100, 100)
    array = zarr.create_array(store, shape=(100, 100), chunks=(10, 10), dtype="f8")
    array[:] = values
    fs = store.fs
    first = zarr.open_array(store, mode="r")
    before = _origin_requests(fs)
    np.testing.assert_array_equal(first[:], values)
    assert _origin_requests(fs) > before  # the chunks were written through, read once from S3
    second = zarr.open_array(store, mode="r")
    before = _origin_requests(fs)
    np.testing.assert_array_equal(second[:], values)
    assert _origin_requests(fs) == before
    fs.close()


def test_a_hung_redis_holds_a_worker_not_the_loop(
    s3_server: S3Server,
    s3_bucket: str,
    s3_storage_options: dict[str, Any],
    redis_fresh: RedisServer,  # noqa: F811
) -> None:
    """With Redis frozen, a read that asks it waits on a worker thread for the tier's budget;
    meanwhile the loop serves a RAM-resident read and other coroutines, and the slow read still
    returns the right bytes (from the store)."""
    s3_server.put_object(s3_bucket, "warm.bin", b"w" * 100_000)
    tail = os.urandom(300_000)
    s3_server.put_object(s3_bucket, "cold.parquet", tail)
    settings = Settings(
        redis_url=redis_fresh.url,
        redis_hmac_key=HMAC_KEY,
        redis_timeout_s=3.0,
        disk_dir=None,
    )
    fs = _async_fs(s3_storage_options, settings=settings)
    warm = f"{s3_bucket}/warm.bin"

    async def scenario() -> tuple[list[str], bytes]:
        assert await fs._cat_file(warm) == b"w" * 100_000  # now in RAM
        redis_fresh.stop()
        events: list[str] = []
        # A Parquet footer: metadata, which the Redis tier is asked for.
        slow = asyncio.ensure_future(fs._cat_file(f"{s3_bucket}/cold.parquet", -65_536, None))
        slow.add_done_callback(lambda _: events.append("slow read done"))
        await asyncio.sleep(0)
        assert await fs._cat_file(warm, 10, 20) == b"w" * 10
        events.append("resident read done")
        for _ in range(3):
            await asyncio.sleep(0)
            events.append("tick")
        return events, await slow

    try:
        events, got = asyncio.run(scenario())
    finally:
        redis_fresh.cont()
    assert got == tail[-65_536:]
    assert events[:4] == ["resident read done", "tick", "tick", "tick"], events
    redis = fs.stats()["tiers"]["redis"]
    assert redis["timeouts"] + redis["errors"] >= 1, redis  # the degradation was counted
    fs.close()


def test_transfers_and_copies_through_the_async_interface(
    s3_server: S3Server, s3_bucket: str, s3_storage_options: dict[str, Any], tmp_path: Path
) -> None:
    """The bulk operations run the sync ones on worker threads: the same results, and the copy's
    destination is read afresh (its cached bytes were dropped)."""
    s3_server.put_object(s3_bucket, "src/a.bin", b"a" * 1000)
    s3_server.put_object(s3_bucket, "dst.bin", b"old")
    fs = _async_fs(s3_storage_options)

    async def scenario() -> tuple[bytes, bytes, bytes, list[str]]:
        assert await fs._cat_file(f"{s3_bucket}/dst.bin") == b"old"  # cached
        await fs._cp_file(f"{s3_bucket}/src/a.bin", f"{s3_bucket}/dst.bin")
        copied = await fs._cat_file(f"{s3_bucket}/dst.bin")
        await fs._get_file(f"{s3_bucket}/src/a.bin", str(tmp_path / "a.bin"))
        (tmp_path / "b.bin").write_bytes(b"b" * 10)
        await fs._put_file(str(tmp_path / "b.bin"), f"{s3_bucket}/src/b.bin")
        put = await fs._cat_file(f"{s3_bucket}/src/b.bin")
        listed = await fs._expand_path(f"{s3_bucket}/src", recursive=True)
        return copied, (tmp_path / "a.bin").read_bytes(), put, sorted(listed)

    copied, got, put, listed = asyncio.run(scenario())
    assert copied == b"a" * 1000
    assert got == b"a" * 1000
    assert put == b"b" * 10
    assert listed == [f"{s3_bucket}/src", f"{s3_bucket}/src/a.bin", f"{s3_bucket}/src/b.bin"]
    fs.close()
