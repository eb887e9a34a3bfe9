"""The chain: lookup order, runs, single-flight, promotion, guards, fills, versions."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import CountingFS, DictTier, letters
from tiercache.chain import TierChain
from tiercache.documents import listing_key
from tiercache.errors import ObjectChangedError, OriginError
from tiercache.origin import FsspecOrigin
from tiercache.protocol import BlockKey, BlockKind, Tier
from tiercache.tiers.memory import MemoryTier

BS = 4096


@pytest.fixture
def origin_fs() -> CountingFS:
    return CountingFS(skip_instance_cache=True)


def make_chain(fs: CountingFS, tiers: list[Tier], **kwargs: object) -> TierChain:
    origin = FsspecOrigin(fs, retries=2, timeout_s=5.0, concurrency=8, sleep=lambda _: None)
    return TierChain(origin, tiers, block_size=BS, info_ttl_s=60.0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def path(origin_fs: CountingFS) -> Iterator[str]:
    p = f"/chain/{uuid.uuid4().hex}.bin"
    origin_fs.pipe_file(p, letters(10 * BS + 123))
    yield p
    origin_fs.rm(p)


def test_missing_blocks_are_fetched_in_contiguous_runs(origin_fs: CountingFS, path: str) -> None:
    chain = make_chain(origin_fs, [MemoryTier(1 << 20)])
    data = letters(10 * BS + 123)
    assert chain.read_range(path, 2 * BS + 5, 3 * BS) == data[2 * BS + 5 : 3 * BS]
    assert chain.read_range(path, 6 * BS, 7 * BS + 1) == data[6 * BS : 7 * BS + 1]
    origin_fs.reads.clear()
    # Blocks 2, 6 and 7 are cached: blocks 0-1, 3-5 and 8-10 are three runs, three requests.
    assert chain.read_range(path, 0, None) == data
    assert sorted(origin_fs.reads) == sorted(
        [(path, 0, 2 * BS), (path, 3 * BS, 6 * BS), (path, 8 * BS, len(data))]
    )
    origin_fs.reads.clear()
    assert chain.read_range(path, 0, None) == data
    assert origin_fs.reads == []
    chain.close()


def test_32_threads_reading_one_cold_block_cause_one_origin_request(
    origin_fs: CountingFS, path: str
) -> None:
    # No tier at all: single-flight alone must hold. The block read is held until all 31
    # followers wait on it (with no tier to keep the block, a thread arriving after it was
    # handed out would fetch again: on a loaded machine a sleep did not hold them all). A
    # 60 s deadline puts the late point (15 s) far away: nobody narrows.
    origin = FsspecOrigin(origin_fs, retries=2, timeout_s=60.0, concurrency=8)
    chain = TierChain(origin, [], block_size=BS, info_ttl_s=60.0)
    chain.info(path)
    origin_fs.hold_from_bytes = BS
    results: list[bytes] = []
    lock = threading.Lock()

    def read() -> None:
        got = chain.read_range(path, BS + 10, BS + 20)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=read) for _ in range(32)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while chain.stats()["flight"]["block_waits"] < 31:
        assert time.monotonic() < deadline, chain.stats()["flight"]
        time.sleep(0.01)
    origin_fs.release.set()
    for t in threads:
        t.join()
    assert results == [letters(10 * BS + 123)[BS + 10 : BS + 20]] * 32
    assert origin_fs.reads == [(path, BS, 2 * BS)]
    chain.close()


def test_a_failed_leader_fails_its_waiters_and_nothing_is_cached(
    origin_fs: CountingFS, path: str
) -> None:
    memory = MemoryTier(1 << 20)
    chain = make_chain(origin_fs, [memory])
    chain.info(path)
    origin_fs.failures = [FileNotFoundError("vanished")]
    with pytest.raises(FileNotFoundError):
        chain.read_range(path, 0, 10)
    assert len(memory) == 0
    assert len(chain.fetcher.blocks) == 0
    assert chain.read_range(path, 0, 10) == letters(10)
    chain.close()


def test_lower_tier_hits_are_promoted_to_memory(origin_fs: CountingFS, path: str) -> None:
    memory, lower = MemoryTier(1 << 20), DictTier()
    chain = make_chain(origin_fs, [memory, lower])
    data = letters(10 * BS + 123)
    chain.read_range(path, 0, BS)
    chain.fills.join()
    assert len(lower.data) == 1  # filled behind the read
    memory.clear()
    origin_fs.reads.clear()
    assert chain.read_range(path, 0, BS) == data[:BS]
    assert origin_fs.reads == []
    assert len(memory) == 1
    stats = chain.stats()["tiers"]
    assert stats["slow"]["hits"] == 1
    assert stats["memory"]["hits"] == 0
    assert stats["slow"]["bytes_written"] == BS
    chain.close()


def test_lower_tier_filled_only_with_the_classes_it_accepts(
    origin_fs: CountingFS, path: str
) -> None:
    meta = DictTier("meta", kinds=("metadata",))
    chain = make_chain(origin_fs, [meta])
    big = f"/chain/{uuid.uuid4().hex}.parquet"
    origin_fs.pipe_file(big, letters(400 * 1024))  # above the small-object threshold
    chain.read_range(big, 0, None)
    chain.fills.join()
    tail_start = 400 * 1024 - 64 * 1024
    assert {k.block_index for k in meta.data} == set(range(tail_start // BS, 100))
    chain.close()


def test_a_failing_tier_is_a_miss_and_its_breaker_opens(origin_fs: CountingFS, path: str) -> None:
    lower = DictTier()
    lower.fail = True
    chain = make_chain(origin_fs, [lower], breaker_failures=2)
    chain.fills.close()  # no background fills: only lookups charge the breaker here
    data = letters(10 * BS + 123)
    for i in range(4):
        assert chain.read_range(path, i * BS, (i + 1) * BS) == data[i * BS : (i + 1) * BS]
    tier = chain.stats()["tiers"]["slow"]
    assert tier["state"] == "open"
    # Lookups and background fills both charge the breaker; once open, calls are rejected.
    assert tier["errors"] == 2
    assert tier["rejected"] >= 2
    chain.close()


def test_a_hung_tier_costs_its_time_budget_then_nothing(origin_fs: CountingFS, path: str) -> None:
    lower = DictTier()
    lower.hang.clear()
    chain = make_chain(origin_fs, [lower], breaker_failures=1, default_timeout_s=0.05)
    data = letters(10 * BS + 123)
    assert chain.read_range(path, 0, 10) == data[:10]
    assert chain.read_range(path, BS, BS + 10) == data[BS : BS + 10]
    tier = chain.stats()["tiers"]["slow"]
    assert tier["timeouts"] == 1
    assert tier["state"] == "open"
    lower.hang.set()
    chain.close()


def test_a_full_fill_queue_drops_and_counts(origin_fs: CountingFS, path: str) -> None:
    lower = DictTier()
    lower.hang_put.clear()  # fills stall: the queue fills up
    chain = make_chain(origin_fs, [lower], fill_queue_size=1, default_timeout_s=5.0)
    chain.read_range(path, 0, None)
    fills = chain.stats()["fills"]
    # 11 blocks; at most 2 workers stuck on a put and 1 job waiting: the rest are dropped.
    assert fills["dropped"] >= 8
    assert fills["queued"] + fills["dropped"] == 11
    lower.hang_put.set()
    chain.close()


def test_fills_hold_at_most_their_byte_budget(origin_fs: CountingFS, path: str) -> None:
    lower = DictTier()
    lower.hang_put.clear()  # the two workers stall on the first two blocks' puts
    chain = make_chain(origin_fs, [lower], fill_queue_bytes=2 * BS, default_timeout_s=5.0)
    t0 = time.perf_counter()
    assert chain.read_range(path, 0, None) == letters(10 * BS + 123)
    assert time.perf_counter() - t0 < 2.0  # the read never waited for a fill
    fills = chain.stats()["fills"]
    # 11 blocks (10 of BS, one of 123 bytes): two fit the budget, the rest are dropped.
    assert (fills["queued"], fills["dropped"]) == (2, 9)
    assert fills["dropped_bytes"] == 8 * BS + 123
    assert chain.fills.pending_bytes == 2 * BS
    lower.hang_put.set()
    assert chain.fills.join(5)
    assert chain.fills.pending_bytes == 0
    assert len(lower.data) == 2
    chain.close()


def test_shared_documents_are_charged_their_length(origin_fs: CountingFS) -> None:
    shared = SharedInfo()
    chain = make_chain(origin_fs, [MemoryTier(1 << 20), shared], fill_queue_bytes=10)
    chain.share_listing("b/t/_delta_log", [{"name": "b/t/_delta_log/0.json", "size": 3}])
    fills = chain.stats()["fills"]
    assert fills["dropped"] == 1  # the document is longer than 10 bytes
    assert fills["dropped_bytes"] > 10
    assert not shared.documents
    chain.close()


def test_a_byte_budget_below_a_block_is_warned_about(
    origin_fs: CountingFS, caplog: pytest.LogCaptureFixture
) -> None:
    make_chain(origin_fs, [MemoryTier(1 << 20)], fill_queue_bytes=BS - 1).close()
    assert "smaller than a block" not in caplog.text  # no slower tier: nothing to fill
    make_chain(origin_fs, [DictTier()], fill_queue_bytes=0).close()  # 0: fills are off
    assert "smaller than a block" not in caplog.text
    make_chain(origin_fs, [DictTier()], fill_queue_bytes=BS - 1).close()
    assert "smaller than a block" in caplog.text


def test_an_object_changed_mid_read_restarts_on_the_new_version(
    origin_fs: CountingFS, path: str
) -> None:
    chain = make_chain(origin_fs, [MemoryTier(1 << 20)])
    calls = {"n": 0}
    real_read = chain.origin.read

    def read_once_changed(info, start, end, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            origin_fs.pipe_file(path, b"new" * 5000)
            raise ObjectChangedError("changed")
        return real_read(info, start, end, **kwargs)

    chain.origin.read = read_once_changed  # type: ignore[method-assign]
    assert chain.read_range(path, 0, 9) == b"newnewnew"
    chain.close()


def test_invalidation_failure_makes_the_tier_untrusted_for_the_path(
    origin_fs: CountingFS, path: str
) -> None:
    lower = DictTier()
    chain = make_chain(origin_fs, [lower], breaker_failures=100)
    chain.read_range(path, 0, 10)
    chain.fills.join()
    lower.fail = True
    chain.invalidate(path)
    lower.fail = False
    assert path in chain.slots[0].untrusted
    before = chain.stats()["tiers"]["slow"]["hits"]
    chain.read_range(path, 0, 10)
    assert chain.stats()["tiers"]["slow"]["hits"] == before  # not asked
    chain.invalidate(path)
    assert path not in chain.slots[0].untrusted
    chain.close()


def test_origin_failure_surfaces_as_a_typed_error(origin_fs: CountingFS, path: str) -> None:
    chain = make_chain(origin_fs, [MemoryTier(1 << 20)])
    chain.info(path)
    origin_fs.failures = [ConnectionError("down")] * 10
    with pytest.raises(OriginError):
        chain.read_range(path, 0, 10)
    chain.close()


def test_tier_names_must_be_unique(origin_fs: CountingFS) -> None:
    with pytest.raises(ValueError, match="unique"):
        make_chain(origin_fs, [DictTier("x"), DictTier("x")])


def test_a_hung_tier_costs_one_budget_per_read_not_one_per_block(
    origin_fs: CountingFS, path: str
) -> None:
    lower = DictTier()
    chain = make_chain(origin_fs, [lower], breaker_failures=100, default_timeout_s=0.05)
    chain.info(path)
    lower.hang.clear()
    data = letters(10 * BS + 123)
    assert chain.read_range(path, 0, 8 * BS) == data[: 8 * BS]  # 8 blocks, one timeout
    assert chain.stats()["tiers"]["slow"]["timeouts"] == 1
    assert chain.read_range(path, 8 * BS, None) == data[8 * BS :]  # the next read: one more
    assert chain.stats()["tiers"]["slow"]["timeouts"] == 2
    lower.hang.set()
    chain.close()


def test_tiers_are_asked_in_the_order_given(origin_fs: CountingFS, path: str) -> None:
    first, memory = DictTier("first"), MemoryTier(1 << 20)
    chain = make_chain(origin_fs, [first, memory])
    chain.read_range(path, 0, 10)
    chain.fills.join()
    assert len(first.data) == 1
    assert len(memory) == 1  # an in-process tier after a guarded one is filled too
    chain.info_table.clear()
    chain.read_range(path, 0, 10)
    stats = chain.stats()["tiers"]
    assert stats["first"]["hits"] == 1  # asked first, it answered
    assert stats["memory"]["hits"] == 0
    chain.close()


def test_prefetch_is_counted_apart_from_demand(origin_fs: CountingFS, path: str) -> None:
    slow = DictTier()
    chain = make_chain(origin_fs, [MemoryTier(1 << 20), slow])
    data = letters(10 * BS + 123)
    # Two runs of missing blocks: the second is fetched on the run pool, the fills on the
    # fill workers; all of it is prefetch.
    chain.prefetch(path, 0, BS)
    chain.prefetch(path, 3 * BS, 5 * BS)
    assert chain.prefetch(path, 0, 6 * BS) == data[: 6 * BS]  # blocks 0, 3, 4 held; 1-2, 5 not
    chain.fills.join()
    stats = chain.stats()
    assert stats["origin"]["requests"] == 0
    assert stats["tiers"]["memory"]["hits"] == stats["tiers"]["memory"]["misses"] == 0
    assert stats["tiers"]["slow"]["bytes_written"] == 0
    assert stats["info"] == {
        "hits": 0,
        "misses": 0,
        "shared_hits": 0,
        "origin": 0,
        "listings_reused": 0,
    }
    prefetch = stats["prefetch"]
    assert prefetch["origin"]["requests"] == 1 + 1 + 1 + 2  # info, a read, a read, two runs
    assert prefetch["tiers"]["memory"]["hits"] == 3
    assert prefetch["tiers"]["slow"]["bytes_written"] == 6 * BS
    assert prefetch["info"]["misses"] == 1
    # A demand read of what was prefetched: a demand hit, and prefetch figures do not move.
    assert chain.read_range(path, BS, 2 * BS) == data[BS : 2 * BS]
    stats = chain.stats()
    assert stats["tiers"]["memory"]["hits"] == 1
    assert stats["prefetch"]["tiers"]["memory"]["hits"] == 3
    chain.close()


def test_seeded_info_saves_the_info_request(origin_fs: CountingFS, path: str) -> None:
    from tiercache.protocol import ObjectInfo

    chain = make_chain(origin_fs, [MemoryTier(1 << 20)])
    size = 10 * BS + 123
    chain.seed_info(ObjectInfo(path=path, size=size, version="seeded", raw={"size": size}))
    assert chain.read_range(path, 0, 10) == letters(10)
    assert origin_fs.info_calls == 0
    # Info the cache already holds wins over a later seed.
    chain.seed_info(ObjectInfo(path=path, size=5, version="other"))
    assert chain.info(path).version == "seeded"
    chain.close()


class SharedInfo:
    """A tier that keeps nothing but shared documents (object info, listings), in a dict."""

    name = "shared"

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}

    def accepts(self, kind: BlockKind, /) -> bool:
        return False

    def get(self, key: BlockKey, /) -> bytes | None:
        return None

    def put(self, key: BlockKey, data: bytes, /) -> None:
        pass

    def delete_object(self, target: str, path: str, /) -> None:
        self.documents.pop(path, None)

    def get_info(self, target: str, path: str, /) -> bytes | None:
        return self.documents.get(path)

    def put_info(self, target: str, path: str, document: bytes, /) -> None:
        self.documents[path] = document

    def close(self) -> None:
        pass


def test_listings_are_reused_within_their_age_only(origin_fs: CountingFS) -> None:
    shared = SharedInfo()
    entries = [{"name": "b/t/_delta_log/0.json", "size": 3, "LastModified": dt.datetime.now()}]
    writer = make_chain(origin_fs, [MemoryTier(1 << 20), shared])
    assert writer.cached_listing("b/t/_delta_log", 60.0) is None
    writer.share_listing("b/t/_delta_log", entries)
    writer.fills.join()
    assert writer.cached_listing("b/t/_delta_log", 60.0) == entries  # kept in process
    assert writer.cached_listing("b/t/_delta_log", 0.0) is None  # 0: never reused

    reader = make_chain(origin_fs, [MemoryTier(1 << 20), shared])  # another process
    found = reader.cached_listing("b/t/_delta_log", 60.0)
    assert found is not None
    assert found[0]["size"] == 3
    assert found[0]["LastModified"] == str(entries[0]["LastModified"])  # JSON keeps a string
    time.sleep(0.05)
    assert make_chain(origin_fs, [shared]).cached_listing("b/t/_delta_log", 0.01) is None
    assert reader.stats()["info"]["listings_reused"] == 1

    # A document that is not a listing is a corrupt entry of that tier, not a listing.
    shared.documents[listing_key("b/t/_delta_log")] = b"{not json"
    third = make_chain(origin_fs, [shared])
    assert third.cached_listing("b/t/_delta_log", 60.0) is None
    assert third.stats()["tiers"]["shared"]["corrupt"] == 1
    for chain in (writer, reader, third):
        chain.close()


def test_a_range_across_one_block_boundary_is_served_and_counted_as_two_ram_hits(
    origin_fs: CountingFS, path: str
) -> None:
    """The two-block hot path (chain/resident.py): the right bytes, two RAM hits and no request when
    both blocks are in RAM; when either is not, the general path fetches that block only and
    counts one hit and one miss (the hot path's lookup is not counted twice)."""
    data = letters(10 * BS + 123)
    chain = make_chain(origin_fs, [MemoryTier(1 << 20)])
    for lo, hi in ((0, 4), (5, 6), (9, 10)):  # blocks 0-3, 5 and 9 in RAM; 4, 6-8 not
        chain.read_range(path, lo * BS, hi * BS)
    origin_fs.reads.clear()

    def read(start: int, end: int) -> tuple[int, int]:
        before = chain.stats()["tiers"]["memory"]
        assert (start // BS) + 1 == (end - 1) // BS  # two blocks
        assert chain.read_range(path, start, end) == data[start:end]
        after = chain.stats()["tiers"]["memory"]
        return after["hits"] - before["hits"], after["misses"] - before["misses"]

    for start in (BS - 1, 3 * BS - 700, 2 * BS - 5):
        assert read(start, start + 1000) == (2, 0)
    assert origin_fs.reads == []
    # The second block missing (3 | 4, 5 | 6), then the first (8 | 9): that block is fetched.
    for start, fetched in ((4 * BS - 10, 4), (6 * BS - 10, 6), (9 * BS - 10, 8)):
        assert read(start, start + 20) == (1, 1)
        assert origin_fs.reads == [(path, fetched * BS, (fetched + 1) * BS)]
        origin_fs.reads.clear()
    assert read(4 * BS - 10, 4 * BS + 10) == (2, 0)  # now both in RAM
    chain.close()
