"""The RAM tier and the object-info table."""

from __future__ import annotations

import platform
import threading

import pytest

from tiercache.chain.info import InfoCache
from tiercache.context import DEMAND
from tiercache.protocol import BlockKey, ObjectInfo
from tiercache.tiers import _malloc
from tiercache.tiers.memory import MemoryTier


def key(index: int, path: str = "p", version: str = "v") -> BlockKey:
    return BlockKey("t", path, version, 4096, index)


def test_lru_evicts_least_recently_used_within_the_byte_budget() -> None:
    tier = MemoryTier(300)
    for i in range(3):
        tier.put(key(i), bytes(100))
    assert tier.get(key(0)) is not None  # 0 is now the most recently used
    tier.put(key(3), bytes(100))
    assert tier.get(key(1)) is None
    assert tier.get(key(0)) is not None
    assert tier.used_bytes == 300
    assert len(tier) == 3


def test_entry_larger_than_the_budget_is_not_admitted() -> None:
    tier = MemoryTier(100)
    tier.put(key(0), bytes(60))
    tier.put(key(1), bytes(101))
    assert tier.get(key(1)) is None
    assert tier.get(key(0)) is not None


def test_replacing_a_key_accounts_bytes_once() -> None:
    tier = MemoryTier(1000)
    tier.put(key(0), bytes(100))
    tier.put(key(0), bytes(200))
    assert tier.used_bytes == 200


def test_delete_object_drops_all_versions_of_one_path() -> None:
    tier = MemoryTier(10_000)
    tier.put(key(0, version="v1"), b"a")
    tier.put(key(1, version="v2"), b"b")
    tier.put(key(0, path="other"), b"c")
    tier.delete_object("t", "p")
    assert tier.get(key(0, version="v1")) is None
    assert tier.get(key(1, version="v2")) is None
    assert tier.get(key(0, path="other")) == b"c"
    assert tier.used_bytes == 1


def test_concurrent_use_keeps_the_budget() -> None:
    tier = MemoryTier(50_000)

    def work(n: int) -> None:
        for i in range(500):
            tier.put(key(i % 97, path=f"p{n}"), bytes(1000))
            tier.get(key((i * 7) % 97, path=f"p{(n + 1) % 8}"))
            if i % 50 == 0:
                tier.delete_object("t", f"p{n}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tier.used_bytes <= 50_000
    assert tier.used_bytes == sum(len(v) for v in tier._blocks.values())


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_info_ttl_applies_to_mutable_paths_only() -> None:
    clock = FakeClock()
    cache = InfoCache(60.0, clock=clock)
    mutable = ObjectInfo("b/t/_delta_log/_last_checkpoint", 10, "v")
    immutable = ObjectInfo("b/t/_delta_log/00000000000000000001.json", 10, "v")
    cache.put(mutable)
    cache.put(immutable)
    clock.now = 59.0
    assert cache.get(mutable.path, DEMAND) == mutable
    clock.now = 61.0
    assert cache.get(mutable.path, DEMAND) is None
    assert cache.get(immutable.path, DEMAND) == immutable


def test_info_ttl_zero_never_reuses_mutable_info() -> None:
    cache = InfoCache(0.0)
    cache.put(ObjectInfo("a.csv", 1, "v"))
    assert cache.get("a.csv", DEMAND) is None


def test_info_fetched_before_an_invalidation_is_not_stored_after_it() -> None:
    cache = InfoCache(60.0)
    epoch = cache.epoch
    cache.discard("a.csv")  # a writer invalidated while a reader was fetching
    cache.put(ObjectInfo("a.csv", 1, "old"), epoch)
    assert cache.get("a.csv", DEMAND) is None
    cache.put(ObjectInfo("a.csv", 1, "new"), cache.epoch)
    assert cache.get("a.csv", DEMAND) is not None


def test_info_cache_is_bounded() -> None:
    cache = InfoCache(60.0, max_entries=3)
    for i in range(5):
        cache.put(ObjectInfo(f"p{i}", 1, "v"))
    assert len(cache) == 3
    assert cache.get("p0", DEMAND) is None
    assert cache.get("p4", DEMAND) is not None


def test_freed_memory_is_handed_back_every_quarter_of_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Malloc's per-thread arenas would keep evicted blocks' memory beyond the budget."""
    calls: list[int] = []
    monkeypatch.setattr(_malloc, "release", lambda: calls.append(1))
    block = 1 << 20
    tier = MemoryTier(64 * block)  # hands back every 16 MiB evicted
    for index in range(64):
        tier.put(BlockKey("t", "p", "v", block, index), bytes(block))
    assert calls == []  # nothing evicted yet
    for index in range(64, 64 + 15):
        tier.put(BlockKey("t", "p", "v", block, index), bytes(block))
    assert calls == []  # 15 MiB evicted
    tier.put(BlockKey("t", "p", "v", block, 79), bytes(block))
    assert calls == [1]  # the 16th MiB
    for index in range(80, 80 + 32):
        tier.put(BlockKey("t", "p", "v", block, index), bytes(block))
    assert calls == [1, 1, 1]
    assert tier.used_bytes == 64 * block


def test_malloc_release_works_on_glibc() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.fail(f"this test expects glibc, found {platform.libc_ver()}: check _malloc by hand")
    assert _malloc.AVAILABLE
    _malloc.release()  # does not crash; returns free pages
