"""Readahead of sequential scans of open files (tiercache.readahead), against a counting origin."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import CountingFS, letters
from tiercache import MemoryTier, S3FifoTier, Settings, Tier, TieredFileSystem
from tiercache.readahead import Readahead

BS = 4096
BLOCKS = 64
SIZE = BLOCKS * BS - 100  # the last block is short
BUDGET = 16 * BS


def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def origin() -> Iterator[CountingFS]:
    target = CountingFS(skip_instance_cache=True)
    yield target
    target.release.set()


@pytest.fixture
def path(origin: CountingFS) -> Iterator[str]:
    name = f"/ra/{uuid.uuid4().hex}.bin"
    origin.pipe_file(name, letters(SIZE))
    yield name
    origin.rm(name)


def make_fs(origin: CountingFS, budget: int = BUDGET, concurrency: int = 8) -> TieredFileSystem:
    settings = Settings(
        block_size_bytes=BS,
        readahead_bytes=budget,
        origin_concurrency=concurrency,
        origin_hedge=False,
    )
    return TieredFileSystem(fs=origin, settings=settings, tiers=[MemoryTier(1 << 22)])


def readahead_of(fs: TieredFileSystem) -> Readahead:
    return fs.chain.readahead


def settled(fs: TieredFileSystem) -> dict[str, int]:
    """The readahead counters once nothing is in flight any more."""
    eventually(lambda: readahead_of(fs).snapshot()["in_flight_bytes"] == 0)
    counts: dict[str, int] = fs.stats()["readahead"]
    return counts


def data_reads(origin: CountingFS) -> list[tuple[int, int]]:
    with origin.lock:
        return [(lo or 0, SIZE if hi is None else min(hi, SIZE)) for _, lo, hi in origin.reads]


def test_sequential_reads_read_ahead_and_the_reader_finds_the_blocks(
    origin: CountingFS, path: str
) -> None:
    fs = make_fs(origin)
    with fs.open(path, "rb") as f:
        chunks = []
        while chunk := f.read(3 * BS):
            chunks.append(chunk)
    assert b"".join(chunks) == letters(SIZE)
    counts = settled(fs)
    assert counts["blocks"] > 0
    assert counts["hits"] > 0
    reads = data_reads(origin)
    # Every block came from the origin once: no more requests than blocks, no byte twice.
    assert len(reads) <= BLOCKS
    assert sum(hi - lo for lo, hi in reads) == SIZE
    assert max(hi for _, hi in reads) == SIZE  # nothing asked for past the end
    assert fs.stats()["prefetch"]["origin"]["requests"] > 0  # counted as prefetch, not demand
    fs.close()


def test_the_window_stays_within_the_budget(origin: CountingFS, path: str) -> None:
    fs = make_fs(origin, budget=8 * BS)
    reader_end = 0
    ahead: list[int] = []
    origin.on_read = lambda lo, hi: ahead.append(hi - reader_end)
    with fs.open(path, "rb") as f:
        for lo in range(0, SIZE, BS):
            reader_end = min(lo + BS, SIZE)
            assert f.read(BS) == letters(SIZE)[lo:reader_end]
            settled(fs)  # every fetch ahead has started and ended while the reader is here
    counts = settled(fs)
    assert counts["blocks"] > 0
    assert max(ahead) <= 8 * BS
    assert counts["budget_bytes"] == 8 * BS
    fs.close()


def test_readahead_stops_at_the_end_of_the_object(origin: CountingFS, path: str) -> None:
    fs = make_fs(origin)
    with fs.open(path, "rb") as f:
        f.seek(SIZE - 6 * BS)
        f.read(BS)
        f.read(BS)  # sequential: reads ahead to the end, no further
        counts = settled(fs)
    assert counts["blocks"] == 4  # the blocks left after the reader's, the last one short
    assert max(hi for _, hi in data_reads(origin)) == SIZE
    fs.close()


def test_random_reads_send_what_they_did_without_readahead(origin: CountingFS, path: str) -> None:
    offsets = random.Random(17).sample(range(SIZE - 2 * BS), 40)
    sent: dict[int, tuple[int, int]] = {}
    for budget in (0, BUDGET):
        fs = make_fs(origin, budget=budget)
        origin.reads.clear()
        with fs.open(path, "rb") as f:
            for offset in offsets:
                f.seek(offset)
                assert f.read(BS + 7) == letters(SIZE)[offset : offset + BS + 7]
        counts = settled(fs)
        assert counts["blocks"] == 0
        reads = data_reads(origin)
        sent[budget] = (len(reads), sum(hi - lo for lo, hi in reads))
        fs.close()
    assert sent[BUDGET] == sent[0]


def test_a_seek_elsewhere_cancels_the_fetches_not_started(origin: CountingFS, path: str) -> None:
    fs = make_fs(origin, concurrency=2)  # one readahead worker
    gate = threading.Event()

    def hold_readahead(lo: int, hi: int) -> None:
        if threading.current_thread().name.startswith("tiercache-ra"):
            gate.wait(30)

    origin.on_read = hold_readahead
    with fs.open(path, "rb") as f:
        f.read(BS)
        f.read(BS)  # sequential: 4 blocks ahead, one at a time on the single worker
        eventually(lambda: readahead_of(fs).snapshot()["blocks"] >= 2)
        f.seek(40 * BS)
        assert f.read(BS) == letters(SIZE)[40 * BS : 41 * BS]
        gate.set()
        counts = settled(fs)
    assert counts["cancelled"] > 0
    assert counts["cancelled"] + counts["wasted"] == counts["blocks"]
    assert counts["hits"] == 0
    fs.close()


def test_read_range_and_cat_file_never_read_ahead(origin: CountingFS, path: str) -> None:
    fs = make_fs(origin)
    for lo in range(0, 8 * BS, BS):
        assert fs.read_range(path, lo, lo + BS) == letters(SIZE)[lo : lo + BS]
        assert fs.cat_file(path, lo, lo + BS) == letters(SIZE)[lo : lo + BS]
    assert settled(fs)["blocks"] == 0
    fs.close()


@pytest.mark.parametrize(
    "options",
    [{"budget": 0}, {"budget": BS - 1}, {"concurrency": 1}],
    ids=["zero", "below-a-block", "one-origin-slot"],
)
def test_readahead_off(origin: CountingFS, path: str, options: dict[str, Any]) -> None:
    fs = make_fs(origin, **options)
    assert not readahead_of(fs).enabled
    with fs.open(path, "rb") as f:
        assert f.read() == letters(SIZE)
        f.seek(0)
        for _ in range(4):
            f.read(BS)
    counts = settled(fs)
    assert counts["blocks"] == 0
    assert counts["budget_bytes"] == 0
    fs.close()


def test_without_a_ram_tier_there_is_no_readahead(origin: CountingFS, path: str) -> None:
    settings = Settings(block_size_bytes=BS, readahead_bytes=BUDGET)
    fs = TieredFileSystem(fs=origin, settings=settings, tiers=[])
    assert not readahead_of(fs).enabled
    fs.close()


@pytest.mark.parametrize(
    ("tier", "budget"),
    [(MemoryTier(1 << 20), 1 << 18), (S3FifoTier(1 << 20), (1 << 20) // 20)],
    ids=["lru-a-quarter", "s3fifo-half-its-small-queue"],
)
def test_the_budget_stays_within_what_the_ram_tier_keeps(tier: Tier, budget: int) -> None:
    settings = Settings(block_size_bytes=BS, memory_bytes=1 << 20, readahead_bytes=1 << 30)
    target = CountingFS(skip_instance_cache=True)
    fs = TieredFileSystem(fs=target, settings=settings, tiers=[tier])
    assert readahead_of(fs).budget_bytes == budget
    fs.close()


def test_the_default_budget_is_64_mib() -> None:
    assert Settings().readahead_bytes == 64 << 20


def test_a_prefetching_view_never_reads_ahead(origin: CountingFS, path: str) -> None:
    fs = make_fs(origin)
    with fs.prefetching().open(path, "rb") as f:
        for _ in range(6):
            f.read(BS)
    assert settled(fs)["blocks"] == 0
    fs.close()
