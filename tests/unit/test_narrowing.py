"""A late block fetch: the reader reads its own range; the fetch goes on behind it.

The origin is an in-memory filesystem whose block reads are held until the test releases them
(``hold_from_bytes``), while a reader's small range is answered at once: the block arrives
exactly when the test says, whatever the machine's load. With a 0.8 s deadline and nothing
observed, a fetch is late after 0.2 s (a quarter of the deadline).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import CountingFS, letters
from tiercache.chain import TierChain
from tiercache.errors import OriginError
from tiercache.origin import FsspecOrigin
from tiercache.tiers.memory import MemoryTier

BS = 4096
SIZE = 4 * BS
DATA = letters(SIZE)
TIMEOUT_S = 0.8


@pytest.fixture
def origin_fs() -> CountingFS:
    return CountingFS(skip_instance_cache=True)


@pytest.fixture
def path(origin_fs: CountingFS) -> Iterator[str]:
    p = f"/narrow/{uuid.uuid4().hex}.bin"
    origin_fs.pipe_file(p, DATA)
    yield p
    origin_fs.rm(p)


@pytest.fixture
def chain(origin_fs: CountingFS, path: str) -> Iterator[TierChain]:
    origin = FsspecOrigin(
        origin_fs, retries=0, timeout_s=TIMEOUT_S, concurrency=8, sleep=lambda _: None
    )
    chain = TierChain(origin, [MemoryTier(1 << 20)], block_size=BS, info_ttl_s=60.0)
    chain.info(path)
    yield chain
    chain.close()


def origin_stats(chain: TierChain) -> dict[str, Any]:
    stats: dict[str, Any] = chain.stats()["origin"]
    return stats


def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_late_block_is_narrowed_and_still_fills_the_cache(
    chain: TierChain, origin_fs: CountingFS, path: str
) -> None:
    origin_fs.hold_from_bytes = BS  # the block arrives only once released: late
    assert chain.read_range(path, 10, 20) == DATA[10:20]
    assert origin_stats(chain)["narrowed_requests"] == 1
    assert origin_stats(chain)["narrowed"] == 1
    # The fetch goes on behind the read and stores the block: the next read is a RAM hit.
    origin_fs.release.set()
    eventually(lambda: chain.stats()["tiers"]["memory"]["bytes_written"] >= BS)
    assert chain.read_range(path, 0, BS) == DATA[:BS]
    assert sorted(origin_fs.reads) == [(path, 0, BS), (path, 10, 20)]


@pytest.mark.parametrize(
    ("cached", "start", "end"),
    [
        (0, 5, BS + 5),  # head from the cached block, the rest narrowed
        (2, BS + 5, 2 * BS + 5),  # narrowed, then the tail from the cached block
    ],
)
def test_a_narrowed_read_is_joined_with_cached_blocks(
    chain: TierChain, origin_fs: CountingFS, path: str, *, cached: int, start: int, end: int
) -> None:
    chain.read_range(path, cached * BS, (cached + 1) * BS)
    origin_fs.reads.clear()
    origin_fs.hold_from_bytes = BS
    assert chain.read_range(path, start, end) == DATA[start:end]
    origin_fs.release.set()
    assert origin_stats(chain)["narrowed"] == 1
    narrowed = (path, max(start, BS), min(end, 2 * BS))
    assert sorted(origin_fs.reads) == sorted([(path, BS, 2 * BS), narrowed])


def test_a_follower_narrows_too(chain: TierChain, origin_fs: CountingFS, path: str) -> None:
    origin_fs.hold_from_bytes = BS
    results: dict[str, bytes] = {}

    def read(name: str, start: int, end: int) -> None:
        results[name] = chain.read_range(path, start, end)

    leader = threading.Thread(target=read, args=("leader", 10, 20))
    leader.start()
    eventually(lambda: len(origin_fs.reads) == 1)  # the leader's block fetch is in flight
    follower = threading.Thread(target=read, args=("follower", 500, 600))
    follower.start()
    leader.join()
    follower.join()
    origin_fs.release.set()
    assert results == {"leader": DATA[10:20], "follower": DATA[500:600]}
    assert chain.stats()["flight"]["block_waits"] == 1
    assert origin_stats(chain)["narrowed"] == 2
    assert sorted(origin_fs.reads) == [(path, 0, BS), (path, 10, 20), (path, 500, 600)]


def test_when_the_narrowed_read_fails_the_block_is_waited_for(
    chain: TierChain, origin_fs: CountingFS, path: str
) -> None:
    origin_fs.hold_from_bytes = BS
    origin_fs.failures = [None, ConnectionError("reset")]  # the block is fine, the narrow fails

    def release_when_narrowed(lo: int, hi: int) -> None:
        if (lo, hi) == (10, 20):  # the narrowed read: the block arrives as it fails
            origin_fs.release.set()

    origin_fs.on_read = release_when_narrowed
    assert chain.read_range(path, 10, 20) == DATA[10:20]
    stats = origin_stats(chain)
    assert (stats["narrowed_requests"], stats["narrowed"]) == (1, 0)


def test_when_both_fail_the_reader_gets_its_own_error_by_the_deadline(
    chain: TierChain, origin_fs: CountingFS, path: str
) -> None:
    origin_fs.hold_from_bytes = BS  # the block never arrives in time
    origin_fs.failures = [None, ConnectionError("reset")]
    began = time.monotonic()
    with pytest.raises(OriginError, match=r"\[10, 20\) failed: ConnectionError: reset"):
        chain.read_range(path, 10, 20)
    assert time.monotonic() - began < 10.0  # the 0.8 s deadline, not the held block (30 s)
    origin_fs.release.set()


def test_a_failed_fetch_caches_nothing(chain: TierChain, origin_fs: CountingFS, path: str) -> None:
    origin_fs.hold_from_bytes = BS
    origin_fs.failures = [ConnectionError("reset")]  # the block fetch fails once released
    assert chain.read_range(path, 10, 20) == DATA[10:20]
    origin_fs.release.set()
    eventually(lambda: origin_stats(chain)["errors"] == 1)
    origin_fs.hold_from_bytes = None
    assert chain.read_range(path, 30, 40) == DATA[30:40]  # from the origin again: not cached
    assert chain.read_range(path, 50, 60) == DATA[50:60]  # now cached
    assert sorted(origin_fs.reads) == [(path, 0, BS), (path, 0, BS), (path, 10, 20)]


class _NoPool:
    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a read that needs no narrowing used the fetch pool")

    def shutdown(self, *args: object, **kwargs: object) -> None:
        pass


def test_whole_block_reads_and_ram_hits_never_use_the_fetch_pool(
    chain: TierChain, path: str
) -> None:
    chain.fetcher._fetches = _NoPool()  # type: ignore[assignment]
    assert chain.read_range(path, 0, BS) == DATA[:BS]  # cold, the whole block: in this thread
    assert chain.read_range(path, BS, SIZE) == DATA[BS:]
    assert chain.read_range(path, 10, 20) == DATA[10:20]  # RAM hit
    assert chain.read_range(path, BS - 5, BS + 5) == DATA[BS - 5 : BS + 5]
    assert origin_stats(chain)["narrowed_requests"] == 0
