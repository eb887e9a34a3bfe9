"""The S3-FIFO RAM tier: the paper's properties, the byte budget, invalidation, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercache import MemoryTier, S3FifoTier, Settings
from tiercache.build import default_tiers, memory_tier
from tiercache.errors import ConfigError
from tiercache.protocol import BlockKey
from tiercache.testing import traces

BLOCK = 4096


def key(index: int, path: str = "p", version: str = "v") -> BlockKey:
    return BlockKey("t", path, version, BLOCK, index)


@pytest.mark.parametrize("budget_blocks", [40, 100, 400])
def test_a_scan_of_four_budgets_keeps_the_hot_set_with_s3fifo_not_with_lru(
    budget_blocks: int,
) -> None:
    trace = traces.scan_trace(budget_blocks)  # hot set: half the budget; scan: 4x the budget
    fifo = traces.replay(S3FifoTier(budget_blocks * BLOCK), trace, counted=traces.is_hot)
    lru = traces.replay(MemoryTier(budget_blocks * BLOCK), trace, counted=traces.is_hot)
    assert traces.hit_ratio(fifo, [traces.SCAN]) >= 0.8
    assert traces.hit_ratio(fifo, [traces.AFTER]) >= 0.8
    # The same test fails for an LRU: the scan pushes every hot block out.
    assert traces.hit_ratio(lru, [traces.SCAN]) < 0.3


def test_one_hit_wonders_never_reach_the_main_queue() -> None:
    tier = S3FifoTier(20 * BLOCK)
    for i in range(200):
        tier.put(key(i), bytes(BLOCK))
    assert tier.promoted == 0
    assert not any(tier.in_main(key(i)) for i in range(200))
    assert tier.used_bytes <= 20 * BLOCK


def test_a_block_hit_in_the_small_queue_moves_to_main_when_it_leaves() -> None:
    tier = S3FifoTier(20 * BLOCK)
    tier.put(key(0), bytes(BLOCK))
    assert tier.get(key(0)) is not None
    for i in range(1, 40):
        tier.put(key(i), bytes(BLOCK))
    assert tier.in_main(key(0))
    assert tier.get(key(0)) is not None


def test_a_scan_read_ahead_stays_out_of_the_main_queue() -> None:
    """A block fetched ahead of demand and then read once is a one-hit wonder, as it is when
    the reader fetches it itself: readahead must not turn a scan into reuse."""
    budget = 40
    tier = S3FifoTier(budget * BLOCK)
    hot = [key(i, path="hot") for i in range(budget // 2)]
    for _ in range(3):
        for k in hot:
            if tier.get(k) is None:
                tier.put(k, bytes(BLOCK))
    hits = 0
    for i in range(4 * budget):  # the scan, each block read ahead then read once
        tier.put_prefetched(key(i, path="scan"), bytes(BLOCK))
        assert tier.get(key(i, path="scan")) is not None
        hits += sum(tier.get(k) is not None for k in hot[i % 4 :: 4])
    assert not any(tier.in_main(key(i, path="scan")) for i in range(4 * budget))
    assert hits >= 0.8 * 4 * budget * len(hot) / 4
    # Without the distinction (a plain put), the same reads promote the scan into M.
    plain = S3FifoTier(budget * BLOCK)
    for i in range(4 * budget):
        plain.put(key(i, path="scan"), bytes(BLOCK))
        plain.get(key(i, path="scan"))
    assert plain.promoted > 0


def test_a_block_read_ahead_and_never_read_leaves_no_ghost() -> None:
    tier = S3FifoTier(10 * BLOCK)
    for i in range(30):
        tier.put_prefetched(key(i), bytes(BLOCK))
    assert not any(tier.in_ghost(key(i)) for i in range(30))
    assert tier.used_bytes <= 10 * BLOCK


def test_a_ghost_hit_admits_to_main() -> None:
    tier = S3FifoTier(20 * BLOCK)
    for i in range(25):  # 0 to 4 leave S unread: to G
        tier.put(key(i), bytes(BLOCK))
    assert key(0) not in tier
    assert tier.in_ghost(key(0))
    tier.put(key(0), bytes(BLOCK))
    assert tier.in_main(key(0))
    assert not tier.in_ghost(key(0))
    assert tier.ghost_admitted == 1


def test_the_ghost_queue_is_bounded_by_the_blocks_main_holds() -> None:
    tier = S3FifoTier(20 * BLOCK)
    for i in range(10_000):
        tier.put(key(i), bytes(BLOCK))
    assert len(tier._ghost) <= 20


def test_a_block_larger_than_the_budget_is_not_admitted() -> None:
    tier = S3FifoTier(100)
    tier.put(key(0), bytes(60))
    tier.put(key(1), bytes(101))
    assert tier.get(key(1)) is None
    assert tier.get(key(0)) is not None


def test_a_tiny_budget_keeps_the_block_just_stored() -> None:
    """With under ten blocks of budget, S cannot hold its share: the newest block stays."""
    tier = S3FifoTier(3 * BLOCK)
    for i in range(3):
        tier.put(key(i), bytes(BLOCK))
        assert tier.get(key(i)) is not None
    for i in range(3, 50):
        tier.put(key(i), bytes(BLOCK))
        assert tier.get(key(i)) is not None
        assert tier.used_bytes <= 3 * BLOCK


def test_invalidation_frees_every_version_of_an_object() -> None:
    tier = S3FifoTier(100 * BLOCK)
    for i in range(5):
        tier.put(key(i, version="v1"), bytes(BLOCK))
        tier.put(key(i, version="v2"), bytes(BLOCK))
        tier.put(key(i, path="other"), bytes(BLOCK))
    for i in range(3):  # some of them in M
        tier.get(key(i, version="v1"))
    tier.delete_object("t", "p")
    assert all(tier.get(key(i, version=v)) is None for i in range(5) for v in ("v1", "v2"))
    assert tier.used_bytes == 5 * BLOCK == sum(tier.held().values())
    assert "'p'" not in repr(tier._by_object)


def test_deleted_entries_are_swept_from_the_queues() -> None:
    tier = S3FifoTier(1 << 30)
    for round_ in range(50):
        for i in range(100):
            tier.put(key(i, version=str(round_)), b"x")
        tier.delete_object("t", "p")
    assert len(tier._small) + len(tier._main) <= 200


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 4000),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["put", "put", "get", "get", "delete"]),
            st.integers(0, 30),
            st.integers(0, 1200),
        ),
        max_size=300,
    ),
)
def test_budget_and_answers_hold_for_any_operations(
    capacity: int, ops: list[tuple[str, int, int]]
) -> None:
    tier = S3FifoTier(capacity)
    latest: dict[BlockKey, bytes] = {}
    for step, (op, index, size) in enumerate(ops):
        k = key(index % 10, path=f"p{index // 10}")
        if op == "put":
            data = step.to_bytes(4, "big") * (size // 4 + 1)
            data = data[:size]
            tier.put(k, data)
            if size <= capacity:
                latest[k] = data
        elif op == "get":
            got = tier.get(k)
            assert got is None or got == latest.get(k)
        else:
            tier.delete_object("t", k.path)
            latest = {x: v for x, v in latest.items() if x.path != k.path}
        held = tier.held()
        assert tier.used_bytes == sum(held.values()) <= capacity
        assert tier._small_bytes + tier._main_bytes == tier.used_bytes


def test_threads_keep_the_budget_and_answers() -> None:
    tier = S3FifoTier(50_000)
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(2000):
            k = key(i % 97, path=f"p{n % 4}")
            value = bytes([n % 4, i % 97 % 256]) * 300
            tier.put(k, value)
            got = tier.get(key((i * 7) % 97, path=f"p{(n + 1) % 4}"))
            if got is not None and got[:2] != bytes([(n + 1) % 4, (i * 7) % 97 % 256]):
                errors.append("another key's bytes")
            if i % 200 == 0:
                tier.delete_object("t", f"p{n % 4}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    held = tier.held()
    assert tier.used_bytes == sum(held.values()) <= 50_000
    assert tier._small_bytes + tier._main_bytes == tier.used_bytes


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.2])
def test_zipf_miss_ratio_is_no_worse_than_lru(alpha: float) -> None:
    """At 0.25x to 4x a budget of 400 blocks (4000 keys); tolerance: 1 point."""
    trace = traces.zipf_trace(4000, 40_000, alpha, seed=7)
    for factor in (0.25, 0.5, 1.0, 2.0, 4.0):
        capacity = int(400 * factor) * BLOCK
        fifo = 1 - traces.hit_ratio(traces.replay(S3FifoTier(capacity), trace))
        lru = 1 - traces.hit_ratio(traces.replay(MemoryTier(capacity), trace))
        assert fifo <= lru + 0.01, (factor, fifo, lru)


def test_the_policy_is_a_setting() -> None:
    assert Settings().memory_policy == "s3fifo"
    assert isinstance(default_tiers(Settings(memory_bytes=1 << 20))[0], S3FifoTier)
    lru = Settings.from_env({"TIERCACHE_MEMORY_POLICY": "LRU"})
    assert isinstance(default_tiers(lru)[0], MemoryTier)
    assert isinstance(memory_tier(1 << 20, "s3fifo"), S3FifoTier)
    with pytest.raises(ConfigError, match="TIERCACHE_MEMORY_POLICY"):
        Settings.from_env({"TIERCACHE_MEMORY_POLICY": "arc"})
    assert S3FifoTier(1 << 20).stats()["policy"] == "s3fifo"
    assert MemoryTier(1 << 20).stats()["policy"] == "lru"
