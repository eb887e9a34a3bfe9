"""TieredFileSystem over memory:// and file://: fsspec integration, pass-through, invalidation."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import pkgutil
import uuid
from collections.abc import Iterator

import fsspec
import pytest

import tiercache
from tests.helpers import CountingFS, letters
from tiercache import ConfigError, MemoryTier, Settings, TieredFile, TieredFileSystem
from tiercache.errors import ObjectChangedError

SMALL = Settings(block_size_bytes=4096, memory_bytes=1 << 20)


@pytest.fixture
def mem_path() -> Iterator[str]:
    path = f"/fs/{uuid.uuid4().hex}.bin"
    fsspec.filesystem("memory").pipe_file(path, letters(20_000))
    yield path
    mem = fsspec.filesystem("memory")
    if mem.exists(path):
        mem.rm(path)


def test_public_names_are_exactly_the_exports() -> None:
    exported = {name for name in dir(tiercache) if not name.startswith("_")}
    modules = {module.name for module in pkgutil.iter_modules(tiercache.__path__)}
    assert sorted(tiercache.__all__) == tiercache.__all__
    assert exported - modules == set(tiercache.__all__) - {"__version__"}


def test_registered_through_the_fsspec_entry_point() -> None:
    points = importlib.metadata.entry_points(group="fsspec.specs")
    assert any(p.name == "tiercache" and p.value == "tiercache.fs:TieredFileSystem" for p in points)
    assert fsspec.get_filesystem_class("tiercache") is TieredFileSystem


def test_url_chaining_with_memory_and_file(mem_path: str, tmp_path: pathlib.Path) -> None:
    with fsspec.open(f"tiercache::memory://{mem_path}", "rb") as f:
        assert isinstance(f, TieredFile)
        assert f.read() == letters(20_000)
    local = tmp_path / "x.bin"
    local.write_bytes(b"local bytes")
    with fsspec.open(f"tiercache::file://{local}", "rb") as f:
        assert f.read() == b"local bytes"
    fs, path = fsspec.core.url_to_fs(f"tiercache::file://{local}")
    assert isinstance(fs, TieredFileSystem)
    assert fs.read_range(path, 6, None) == b"bytes"


def test_open_reads_go_through_the_chain_with_no_second_cache(mem_path: str) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    with fs.open(mem_path, "rb", cache_type="readahead", block_size=1 << 20) as f:
        assert f.cache.name == "none"
        f.seek(4090)
        assert f.read(10) == letters(20_000)[4090:4100]
    assert fs.stats()["origin"]["requests"] == 2  # info + blocks 0 and 1 in one run


def test_info_is_cached(mem_path: str) -> None:
    target = CountingFS(skip_instance_cache=True)
    fs = TieredFileSystem(fs=target, settings=SMALL, tiers=[])
    first = fs.info(mem_path)
    assert first["size"] == 20_000
    assert fs.info(mem_path) == first
    assert fs.size(mem_path) == 20_000
    assert target.info_calls == 1
    fs.close()


def test_stats_have_the_documented_shape(mem_path: str) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    fs.cat_file(mem_path, 0, 10)
    stats = fs.stats()
    assert set(stats["tiers"]) == {"memory"}
    assert {"hits", "misses", "errors", "timeouts", "rejected", "bytes_read", "bytes_written",
            "state"} <= set(stats["tiers"]["memory"])  # fmt: skip
    assert stats["tiers"]["memory"]["state"] == "closed"
    assert {"requests", "bytes", "retries", "errors"} <= set(stats["origin"])
    no_memory = TieredFileSystem(
        target_protocol="memory", settings=Settings(memory_bytes=0), skip_instance_cache=True
    )
    assert no_memory.stats()["tiers"] == {}  # a tier that is not configured is absent


def test_writes_pass_through_and_invalidate(mem_path: str, tmp_path: pathlib.Path) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    assert fs.cat_file(mem_path) == letters(20_000)
    fs.pipe_file(mem_path, b"version two")
    assert fs.cat_file(mem_path) == b"version two"
    with fs.open(mem_path, "wb") as f:
        f.write(b"version three")
    assert fs.cat_file(mem_path) == b"version three"
    local = tmp_path / "up.bin"
    local.write_bytes(b"version four")
    fs.put_file(str(local), mem_path)
    assert fs.cat_file(mem_path) == b"version four"
    moved = mem_path + ".moved"
    fs.mv(mem_path, moved)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(mem_path)
    assert fs.cat_file(moved) == b"version four"
    fs.rm(moved)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(moved)
    with fs.open(moved, "w") as text:  # text mode wraps the write-through file
        text.write("text five")
    assert fs.cat_file(moved) == b"text five"
    fs.rm(moved)


def test_listing_passes_through(tmp_path: pathlib.Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a.parquet", "b.parquet", "c.json"):
        (tmp_path / "d" / name).write_bytes(b"x")
    fs = TieredFileSystem(target_protocol="file", settings=SMALL)
    root = str(tmp_path / "d")
    assert sorted(os.path.basename(p) for p in fs.ls(root, detail=False)) == [
        "a.parquet", "b.parquet", "c.json"
    ]  # fmt: skip
    assert len(fs.glob(root + "/*.parquet")) == 2
    assert len(fs.find(root)) == 3
    assert fs.exists(root + "/c.json")
    assert not fs.exists(root + "/nope")
    assert fs.isdir(root)
    assert fs.isfile(root + "/c.json")


def test_directory_read_raises_what_the_target_raises(tmp_path: pathlib.Path) -> None:
    fs = TieredFileSystem(target_protocol="file", settings=SMALL)
    with pytest.raises(IsADirectoryError):
        fs.cat_file(str(tmp_path))
    with pytest.raises(IsADirectoryError):
        fsspec.filesystem("file").cat_file(str(tmp_path))


def test_missing_file_raises_file_not_found() -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    with pytest.raises(FileNotFoundError):
        fs.cat_file("/fs/does-not-exist")
    with pytest.raises(FileNotFoundError):
        fs.open("/fs/does-not-exist", "rb")
    assert fs.stats()["tiers"]["memory"]["bytes_written"] == 0


def test_unknown_target_protocol_names_itself() -> None:
    with pytest.raises(ConfigError, match="'nosuchproto'"):
        TieredFileSystem(target_protocol="nosuchproto")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_BLOCK_SIZE", "64KiB")
    fs = TieredFileSystem(target_protocol="memory", skip_instance_cache=True)
    assert fs.settings.block_size_bytes == 65536
    assert fs.stats()["block_size"] == 65536
    monkeypatch.setenv("TIERCACHE_BLOK_SIZE", "1")
    with pytest.raises(ConfigError, match="TIERCACHE_BLOCK_SIZE"):
        TieredFileSystem(target_protocol="memory", skip_instance_cache=True)


def test_instances_in_other_threads_share_one_chain(mem_path: str) -> None:
    import threading

    chains = []

    def build() -> None:
        chains.append(fsspec.filesystem("tiercache", target_protocol="memory").chain)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in chains}) == 1


def test_settings_that_differ_only_in_a_secret_never_share_a_chain() -> None:
    # A closed loopback port: the Redis tiers start disabled, which is all this needs.
    url = "redis://127.0.0.1:9/0"
    first = Settings(redis_url=url, redis_hmac_key="a" * 32, redis_timeout_s=0.05)
    second = Settings(redis_url=url, redis_hmac_key="b" * 32, redis_timeout_s=0.05)
    assert repr(first) == repr(second)  # the secret is hidden from repr...
    chains = {
        id(TieredFileSystem(target_protocol="memory", settings=s, skip_instance_cache=True).chain)
        for s in (first, second, first)
    }
    assert len(chains) == 2  # ...but not from the chain's key


def test_a_prefetching_view_counts_every_read_as_prefetch(mem_path: str) -> None:
    fs = TieredFileSystem(
        target_protocol="memory",
        settings=SMALL,
        tiers=[MemoryTier(SMALL.memory_bytes)],  # the filesystem owns its chain
        skip_instance_cache=True,
    )
    view = fs.prefetching()
    assert view.chain is fs.chain
    assert view.cat_file(mem_path, 0, 100) == letters(100)
    with view.open(mem_path, "rb") as f:  # an open file keeps the view's purpose
        f.seek(8192)
        assert f.read(10) == letters(8202)[8192:]
    stats = fs.stats()
    assert stats["origin"]["requests"] == 0
    assert stats["tiers"]["memory"]["lookups"] == 0
    assert stats["prefetch"]["origin"]["requests"] >= 2
    assert stats["prefetch"]["tiers"]["memory"]["misses"] >= 1
    view.close()  # closes nothing of the filesystem's
    assert fs.cat_file(mem_path, 0, 100) == letters(100)  # now demand, and a RAM hit
    assert fs.stats()["tiers"]["memory"]["hits"] == 1
    fs.close()


def test_open_file_is_pinned_to_the_version_it_opened(mem_path: str) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    with fs.open(mem_path, "rb") as f:
        assert f.read(10) == letters(10)  # block 0 cached
        fs.target.pipe_file(mem_path, b"z" * 20_000)  # overwritten behind the cache's back
        f.seek(0)
        assert f.read(10) == letters(10)  # still the version it opened: from the cache
    # A fresh read after the info expires or is invalidated sees the new version.
    fs.invalidate_cache(mem_path)
    assert fs.cat_file(mem_path, 0, 3) == b"zzz"


def test_bad_ranges_follow_slice_semantics_and_change_nothing(mem_path: str) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    data = letters(20_000)
    assert fs.cat_file(mem_path, 500, 100) == b""
    assert fs.cat_file(mem_path, -10, None) == data[-10:]
    assert fs.cat_file(mem_path, 25_000, 30_000) == b""
    assert fs.cat_file(mem_path, -50_000, 5) == data[:5]
    # info + the last block + block 0: nothing for the empty ranges
    assert fs.stats()["origin"]["requests"] == 3


def test_cat_ranges_returns_or_raises_errors(mem_path: str) -> None:
    fs = TieredFileSystem(target_protocol="memory", settings=SMALL)
    out = fs.cat_ranges([mem_path, "/fs/missing"], [0, 0], [5, 5])
    assert out[0] == letters(5)
    assert isinstance(out[1], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges([mem_path, "/fs/missing"], [0, 0], [5, 5], on_error="raise")
    with pytest.raises(ValueError, match="2 paths, 1 starts"):
        fs.cat_ranges([mem_path, mem_path], [0], [5, 5])


def test_object_changed_error_is_an_oserror() -> None:
    assert issubclass(ObjectChangedError, OSError)


def test_instances_built_from_objects_are_never_reused() -> None:
    settings = Settings(memory_bytes=0)
    first = TieredFileSystem(target_protocol="memory", settings=settings, tiers=[])
    second = TieredFileSystem(target_protocol="memory", settings=settings, tiers=[])
    assert first is not second
    target = fsspec.filesystem("memory")
    assert TieredFileSystem(fs=target, settings=settings) is not TieredFileSystem(
        fs=target, settings=settings
    )
    # Built from arguments alone, fsspec's instance cache still applies.
    assert TieredFileSystem(target_protocol="memory") is TieredFileSystem(target_protocol="memory")
