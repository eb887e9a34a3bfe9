"""The shadow cache (fixed-size SHARDS): exact at rate 1, bounded, accurate on Zipf sampled."""

from __future__ import annotations

import bisect
import itertools
import json
import random
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

from tiercache.ops.plots import plot_curves
from tiercache.protocol import BlockKey
from tiercache.shadow import (
    MASK,
    MODULUS,
    MissRatioCurve,
    ShadowCache,
    curve_from_snapshot,
    sizes_around,
)
from tiercache.tiers.memory import MemoryTier

UNIT = 4096


def lru_hits(stream: list[int], capacity: int) -> int:
    """Hits of an LRU cache of ``capacity`` entries over ``stream`` (the reference model)."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for key in stream:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def zipf_ranks(n_keys: int, n_refs: int, alpha: float, rng: random.Random) -> list[int]:
    """``n_refs`` ranks in ``[0, n_keys)`` drawn from a Zipf(alpha) law (CDF and bisect)."""
    cdf = list(itertools.accumulate(1.0 / (rank + 1) ** alpha for rank in range(n_keys)))
    total = cdf[-1]
    return [bisect.bisect_left(cdf, rng.random() * total) for _ in range(n_refs)]


def random_streams() -> list[list[int]]:
    rng = random.Random(7)
    uniform = [rng.randrange(300) for _ in range(6000)]
    skewed = zipf_ranks(500, 8000, 1.0, rng)
    # Phases: a scan, a loop, then random re-reads of the first keys.
    phases = [*range(400), *(list(range(120)) * 5), *(rng.randrange(150) for _ in range(2000))]
    # Raw ints as hashes: small ints hash to themselves; spread them over the hash space.
    return [
        [key * 0x9E3779B97F4A7C15 + 12345 for key in stream] for stream in (uniform, skewed, phases)
    ]


@pytest.mark.parametrize("stream", random_streams(), ids=["uniform", "zipf", "phases"])
def test_rate_one_is_exact_lru(stream: list[int]) -> None:
    distinct = len(set(stream))
    # max_keys = distinct keys: the rate stays 1 and the timestamp tree is renumbered many times.
    shadow = ShadowCache(UNIT, max_keys=distinct)
    for h in stream:
        shadow.record(h)
    assert shadow.rate == 1.0
    assert len(shadow) == distinct
    assert shadow.references == len(stream)
    for blocks in [1, 2, 3, 5, 10, 17, 50, 64, 99, 100, 119, 120, 121, 150, 200, 255]:
        estimated = shadow.hit_ratio(blocks * UNIT) * len(stream)
        assert round(estimated) == lru_hits(stream, blocks), blocks
        assert abs(estimated - round(estimated)) < 1e-6
    # Sizes between whole blocks round down, as a byte-bounded LRU does.
    assert shadow.hit_ratio(10 * UNIT + UNIT // 2) == shadow.hit_ratio(10 * UNIT)
    assert shadow.hit_ratio(0) == 0.0
    assert shadow.hit_ratio(10**15) == pytest.approx(1 - distinct / len(stream))


def test_large_distances_are_close_to_exact() -> None:
    """Beyond 255 blocks the histogram is log-binned (64 bins per octave): nearly exact."""
    rng = random.Random(3)
    stream = [rng.randrange(3000) * 0x9E3779B97F4A7C15 for _ in range(30000)]
    shadow = ShadowCache(UNIT, max_keys=3000)
    for h in stream:
        shadow.record(h)
    assert shadow.rate == 1.0
    for blocks in [300, 700, 1000, 1500, 2500]:
        exact = lru_hits(stream, blocks) / len(stream)
        assert shadow.hit_ratio(blocks * UNIT) == pytest.approx(exact, abs=0.005)


def test_byte_sizes_match_the_memory_tier() -> None:
    """Blocks of different sizes: distances are in bytes, as MemoryTier's budget is."""
    rng = random.Random(11)
    sizes = {n: rng.choice([UNIT, UNIT, UNIT, 100, 1000, 3000]) for n in range(400)}
    stream = zipf_ranks(400, 20000, 0.7, rng)
    shadow = ShadowCache(UNIT, max_keys=400)
    for n in stream:
        shadow.record(hash(("k", n)), sizes[n])
    for capacity in [20 * UNIT, 80 * UNIT, 200 * UNIT]:
        tier = MemoryTier(capacity)
        hits = 0
        for n in stream:
            key = BlockKey("t", f"p{n}", "v", UNIT, 0)
            if tier.get(key) is not None:
                hits += 1
            else:
                tier.put(key, bytes(sizes[n]))
        assert shadow.hit_ratio(capacity) == pytest.approx(hits / len(stream), abs=0.02)


def test_memory_stays_bounded_on_unique_keys() -> None:
    shadow = ShadowCache(UNIT, max_keys=256)
    rng = random.Random(5)
    n = 100_000
    for i in range(n):
        shadow.record(rng.getrandbits(64))
        if i % 5000 == 0:
            assert len(shadow) <= 256
            assert len(shadow._heap) == len(shadow)
    assert len(shadow) <= 256
    assert len(shadow._slot_key) == len(shadow._slot_size) == 2 * 256 + 2
    assert len(shadow._tree) == 2 * 256 + 3
    assert len(shadow._hist) == 0  # no key came back
    # Every tracked key lies under the threshold, and the rate matches the keys kept.
    assert all((h & MASK) < shadow.threshold for h in shadow._slot_of)
    assert shadow.rate == pytest.approx(256 / n, rel=0.25)
    # Cold misses rescaled to the final rate: about references * rate of them.
    assert shadow.mrc().cold == pytest.approx(n * shadow.rate, rel=0.25)
    assert shadow.hit_ratio(10**12) < 0.05


def test_histogram_is_bounded_with_reuse() -> None:
    shadow = ShadowCache(UNIT, max_keys=512)
    rng = random.Random(9)
    for h in zipf_ranks(50_000, 100_000, 0.6, rng):
        shadow.record(h * 0x9E3779B97F4A7C15 + 1)
    assert len(shadow) <= 512
    # 256 exact bins, then 64 per octave: distances up to 2**32 units need < 1900 bins.
    assert len(shadow._hist) < 1900
    assert shadow.rate < 0.1


def test_stale_threshold_is_ignored() -> None:
    """A caller that read the threshold before it dropped may call access() for an unsampled key."""
    shadow = ShadowCache(UNIT, max_keys=4, rate=0.5)
    shadow.access(MODULUS - 1)  # above the threshold: not sampled
    assert len(shadow) == 0
    assert shadow.snapshot()["sampled"] == 0


def test_inline_check_with_a_reference_counter() -> None:
    """The hot-path contract: check inline, count elsewhere, pass ``references``."""
    rng = random.Random(13)
    stream = [h * 0x9E3779B97F4A7C15 for h in zipf_ranks(5000, 30000, 0.9, rng)]
    seen = 0
    inline = ShadowCache(UNIT, max_keys=300, references=lambda: seen)
    recorded = ShadowCache(UNIT, max_keys=300)
    for h in stream:
        seen += 1
        if (h & MASK) < inline.threshold:
            inline.access(h)
        recorded.record(h)
    sizes = sizes_around(500 * UNIT)
    assert inline.rate < 0.2
    assert inline.curve(sizes) == recorded.curve(sizes)


def test_clear_starts_over() -> None:
    shadow = ShadowCache(UNIT, max_keys=10, rate=0.5)
    for h in range(0, 5000 * 0x9E3779B97F4A7C15, 0x9E3779B97F4A7C15):
        shadow.record(h)
        shadow.record(h)
    assert shadow.rate < 0.5
    assert shadow.hit_ratio(UNIT) > 0
    shadow.clear()
    assert (shadow.rate, len(shadow), shadow.references) == (0.5, 0, None)
    assert shadow.hit_ratio(UNIT) == 0.0
    assert shadow.snapshot()["sampled"] == 0


def test_validation() -> None:
    with pytest.raises(ValueError, match="unit_bytes"):
        ShadowCache(0)
    with pytest.raises(ValueError, match="max_keys"):
        ShadowCache(UNIT, max_keys=0)
    with pytest.raises(ValueError, match="rate"):
        ShadowCache(UNIT, rate=1.5)
    assert ShadowCache(UNIT).hit_ratio(UNIT) == 0.0  # nothing seen yet
    assert sizes_around(1000) == [250, 500, 1000, 2000, 4000, 8000, 16000]


def test_zipf_estimate_matches_the_memory_tier() -> None:
    """Acceptance: the sampled curve is within 5 points of a real MemoryTier at three sizes.

    40,000 distinct blocks (800 files x 50 blocks), 300,000 Zipf(0.9) references, 4,096 keys
    tracked (the rate ends near 0.12). The shadow sees ``hash((file, block))``: CPython's tuple
    hash, as in production, but of ints, so the sample (and the test) is the same in every run.
    """
    rng = random.Random(2024)
    n_keys, per_file = 40_000, 50
    keys = [
        BlockKey("t", f"bucket/table/part-{n // per_file:05d}.parquet", "v1", UNIT, n % per_file)
        for n in range(n_keys)
    ]
    rng.shuffle(keys)  # popularity is unrelated to the position in a file
    stream = [keys[rank] for rank in zipf_ranks(n_keys, 300_000, 0.9, rng)]

    shadow = ShadowCache(UNIT, max_keys=4096)
    record = shadow.record
    for key in stream:
        record(hash((int(key.path[-13:-8]), key.block_index)))
    assert shadow.rate < 0.2
    assert len(shadow) <= 4096

    data = bytes(UNIT)
    for fraction in (0.02, 0.10, 0.30):
        capacity = int(fraction * n_keys) * UNIT
        tier = MemoryTier(capacity)
        get, put = tier.get, tier.put
        hits = 0
        for key in stream:
            if get(key) is not None:
                hits += 1
            else:
                put(key, data)
        measured = hits / len(stream)
        estimated = shadow.hit_ratio(capacity)
        assert abs(estimated - measured) <= 0.05, (fraction, estimated, measured)


def test_snapshot_round_trip() -> None:
    rng = random.Random(17)
    shadow = ShadowCache(UNIT, max_keys=200)
    for h in zipf_ranks(3000, 20000, 0.8, rng):
        shadow.record(h * 0x9E3779B97F4A7C15)
    sizes = sizes_around(300 * UNIT)
    snapshot = shadow.snapshot(sizes)
    assert snapshot["keys"] == len(shadow) <= 200
    assert snapshot["references"] == 20000
    assert 0 < snapshot["rate"] < 1
    assert snapshot["sampled"] < 20000
    assert snapshot["curve"] == [[size, ratio] for size, ratio in shadow.curve(sizes)]
    loaded = json.loads(json.dumps(snapshot))
    assert curve_from_snapshot(loaded, sizes) == shadow.curve(sizes)
    other = [1, UNIT, 12345 * UNIT, 10**12]
    assert MissRatioCurve.from_snapshot(loaded).curve(other) == shadow.curve(other)
    # The curve never rises with size.
    ratios = [ratio for _, ratio in shadow.curve([n * UNIT for n in range(1, 4000, 37)])]
    assert ratios == sorted(ratios)


def test_snapshot_errors() -> None:
    with pytest.raises(ValueError, match="not a shadow-cache snapshot"):
        MissRatioCurve.from_snapshot({"rate": 1})
    with pytest.raises(ValueError, match="version"):
        MissRatioCurve.from_snapshot({"version": 99, "histogram": {}})


def test_plot_writes_a_png(tmp_path: Path) -> None:
    shadow = ShadowCache(UNIT, max_keys=100)
    rng = random.Random(1)
    for h in zipf_ranks(1000, 5000, 0.9, rng):
        shadow.record(h * 0x9E3779B97F4A7C15)
    memory, disk = 64 * UNIT, 512 * UNIT
    path = tmp_path / "mrc.png"
    plot_curves(
        {"memory": shadow.curve(sizes_around(memory)), "disk": shadow.curve(sizes_around(disk))},
        path,
        marks={"memory": memory, "disk": disk},
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'tiercache\[plot\]'"):
        plot_curves({}, tmp_path / "x.png")
