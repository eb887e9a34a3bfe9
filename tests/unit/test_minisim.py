"""The shadow cache's S3-FIFO curve (miniature simulations) against real S3-FIFO tiers."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import CountingFS
from tiercache import S3FifoTier, Settings, TieredFileSystem
from tiercache.minisim import interpolate
from tiercache.shadow import FACTORS, ShadowCache
from tiercache.testing import traces

BLOCK = 4096
BUDGET = 200  # blocks


def mix(key_id: int) -> int:
    """A fixed 64-bit hash of a key id (``hash()`` of a tuple is randomized per process)."""
    return (key_id * 0x9E3779B97F4A7C15 >> 7) & ((1 << 64) - 1)


TRACES = {
    "zipf": traces.zipf_trace(4000, 40_000, 1.0, seed=3),
    "scan": traces.scan_trace(BUDGET, passes=20),
}


def estimate(trace: list[tuple[int, str]], *, rate: float, max_keys: int = 8192) -> ShadowCache:
    shadow = ShadowCache(BLOCK, rate=rate, max_keys=max_keys, simulate_bytes=BUDGET * BLOCK)
    for key_id, _ in trace:
        shadow.record(mix(key_id), BLOCK)
    return shadow


def real(trace: list[tuple[int, str]], factor: float) -> float:
    return traces.hit_ratio(traces.replay(S3FifoTier(round(BUDGET * BLOCK * factor)), trace))


@pytest.mark.parametrize("name", list(TRACES))
def test_unsampled_simulation_is_the_real_tier(name: str) -> None:
    trace = TRACES[name]
    points = dict(estimate(trace, rate=1.0).s3fifo_points())
    for factor in (0.5, 1.0, 2.0):
        size = round(BUDGET * BLOCK * factor)
        assert points[size] == pytest.approx(real(trace, factor), abs=1e-9)


@pytest.mark.parametrize("name", list(TRACES))
@pytest.mark.parametrize(("rate", "max_keys"), [(0.25, 8192), (1.0, 600)])
def test_sampled_curve_is_within_5_points_of_real_tiers(
    name: str, rate: float, max_keys: int
) -> None:
    """(1.0, 600): the rate drops as keys come (fixed-size sampling): the simulations shrink."""
    trace = TRACES[name]
    shadow = estimate(trace, rate=rate, max_keys=max_keys)
    points = dict(shadow.s3fifo_points())
    for factor in (0.5, 1.0, 2.0):
        size = round(BUDGET * BLOCK * factor)
        assert abs(points[size] - real(trace, factor)) <= 0.05, (factor, shadow.rate)


def test_simulations_stay_bounded() -> None:
    shadow = estimate(traces.zipf_trace(20_000, 40_000, 0.8, seed=1), rate=1.0, max_keys=500)
    assert shadow._sims is not None
    assert len(shadow._sims) <= 2 * len(FACTORS) * 500
    assert shadow.rate < 0.1


def test_points_cover_the_factors_and_interpolate() -> None:
    shadow = estimate(TRACES["zipf"], rate=0.5)
    points = shadow.s3fifo_points()
    assert [size for size, _ in points] == [round(BUDGET * BLOCK * f) for f in FACTORS]
    ratios = [ratio for _, ratio in points]
    assert ratios == sorted(ratios)
    (lo, low), (hi, high) = points[2], points[3]
    assert low <= interpolate(points, (lo + hi) // 2) <= high
    assert ShadowCache(BLOCK).s3fifo_points() == []


def test_clear_restarts_the_simulations() -> None:
    shadow = estimate(TRACES["zipf"], rate=0.5)
    shadow.clear()
    assert shadow._sims is not None
    assert len(shadow._sims) == 0
    assert all(ratio == 0.0 for _, ratio in shadow.s3fifo_points())


def test_the_chain_reports_the_running_policys_curve_and_both() -> None:
    """Through a filesystem (keys sampled by ``hash(BlockKey)``): a scan + hot trace read by
    pods of 0.5x, 1x and 2x the budget; pod 1x's S3-FIFO curve is within 5 points of each
    (the hot set is 0.3x the budget: at 0.5x, half a budget of hot blocks read in a cycle would
    sit on the cliff where one sampled key more or less flips the ratio)."""
    block = 4096
    path = f"/minisim/scan-{uuid.uuid4().hex}.bin"
    trace = traces.scan_trace(BUDGET, hot_share=0.3, passes=10)  # no cliff at 0.5x
    ids = sorted({key_id for key_id, _ in trace})
    offsets = {key_id: index * block for index, key_id in enumerate(ids)}
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(path, bytes(len(ids) * block))
    pods = {
        factor: TieredFileSystem(
            fs=CountingFS(skip_instance_cache=True),
            settings=Settings(block_size_bytes=block, shadow_rate=0.5),
            tiers=[S3FifoTier(round(BUDGET * block * factor))],
        )
        for factor in (0.5, 1.0, 2.0)
    }
    try:
        for key_id, _ in trace:
            for fs in pods.values():
                fs.read_range(path, offsets[key_id], offsets[key_id] + 10)
        entry = pods[1.0].stats()["shadow"]["tiers"]["memory"]
        assert entry["policy"] == "s3fifo"
        assert entry["curve"] == entry["curves"]["s3fifo"]
        assert [p["scale"] for p in entry["curves"]["lru"]] == list(FACTORS)
        for factor, fs in pods.items():
            memory = fs.stats()["tiers"]["memory"]
            measured = memory["hits"] / (memory["hits"] + memory["misses"])
            estimated = next(p["hit_ratio"] for p in entry["curve"] if p["scale"] == factor)
            assert abs(estimated - measured) <= 0.05, (factor, estimated, measured)
    finally:
        for fs in pods.values():
            fs.close()
        origin.rm(path)
