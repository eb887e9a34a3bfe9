"""Property: at rate 1 the shadow cache is an exact LRU; sampled, it stays within its bounds."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercache.shadow import MASK, ShadowCache

pytestmark = pytest.mark.property

UNIT = 512


def lru_hits(stream: list[tuple[int, int]], capacity_bytes: int) -> int:
    """Hits of a byte-bounded LRU (MemoryTier's rule: evict while over budget)."""
    cache: OrderedDict[int, int] = OrderedDict()
    used = hits = 0
    for key, size in stream:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
            continue
        if size > capacity_bytes:
            continue
        cache[key] = size
        used += size
        while used > capacity_bytes:
            used -= cache.popitem(last=False)[1]
    return hits


keys = st.integers(0, 150).map(lambda n: n * 0x9E3779B97F4A7C15 + 7)


@settings(max_examples=150, deadline=None)
@given(
    stream=st.lists(keys, min_size=1, max_size=1000),
    capacity_blocks=st.integers(1, 160),
)
def test_rate_one_matches_lru_exactly(stream: list[int], capacity_blocks: int) -> None:
    shadow = ShadowCache(UNIT, max_keys=151)
    for h in stream:
        shadow.record(h)
    estimated = shadow.hit_ratio(capacity_blocks * UNIT) * len(stream)
    assert estimated == pytest.approx(lru_hits([(h, UNIT) for h in stream], capacity_blocks * UNIT))


@settings(max_examples=100, deadline=None)
@given(
    stream=st.lists(st.tuples(keys, st.sampled_from([UNIT, UNIT // 4, UNIT // 2])), max_size=300),
    capacity_blocks=st.integers(1, 40),
)
def test_rate_one_with_byte_sizes_multiples(
    stream: list[tuple[int, int]], capacity_blocks: int
) -> None:
    """Sizes that divide the unit: the distance rounds up to whole units, so the estimate
    never exceeds the byte-exact LRU's hits and equals it when every block is a full unit."""
    sizes = dict(stream)  # one size per key, as for a versioned block
    stream = [(h, sizes[h]) for h, _ in stream]
    shadow = ShadowCache(UNIT, max_keys=151)
    for h, size in stream:
        shadow.record(h, size)
    exact = lru_hits(stream, capacity_blocks * UNIT)
    estimated = shadow.hit_ratio(capacity_blocks * UNIT) * len(stream)
    assert estimated <= exact + 1e-6
    if all(size == UNIT for _, size in stream):
        assert estimated == pytest.approx(exact)


@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(st.integers(0, 2**64 - 1), max_size=2000),
    max_keys=st.integers(1, 50),
    sizes=st.lists(st.integers(1, 10**9), min_size=1, max_size=5),
)
def test_sampled_state_stays_bounded(stream: list[int], max_keys: int, sizes: list[int]) -> None:
    shadow = ShadowCache(UNIT, max_keys=max_keys)
    for n, h in enumerate(stream):
        shadow.record(h % 97 if n % 3 else h)  # some reuse, many distinct keys
    assert len(shadow) <= max_keys
    assert all((h & MASK) < shadow.threshold for h in shadow._slot_of)
    assert len(shadow._slot_key) == 2 * max_keys + 2
    ratios = [ratio for _, ratio in shadow.curve(sorted(sizes))]
    assert all(0.0 <= r <= 1.0 for r in ratios)
    assert ratios == sorted(ratios)
