"""The triggers (tiercache.ops.advise) on handcrafted stats, and the `stats` / `advise` commands on
a stats file written by a real chain."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CountingFS, letters
from tiercache import S3FifoTier, Settings, TieredFileSystem
from tiercache.cli.main import main
from tiercache.ops import statsfile
from tiercache.ops.advise import (
    advise,
    disk_tier,
    hedged_reads,
    more_ram,
    quantile,
    ram_policy,
    readahead,
    redis_tier,
    warmup,
)
from tiercache.testing import traces
from tiercache.tiers.memory import MemoryTier

MiB = 1 << 20


def histogram(seconds: float, count: int) -> dict[str, Any]:
    return {"bounds": [1.0], "counts": [count, 0], "sum": seconds, "count": count}


def counts(**values: int) -> dict[str, Any]:
    base = {"hits": 0, "misses": 0, "errors": 0, "timeouts": 0, "rejected": 0, "corrupt": 0,
            "bytes_read": 0, "bytes_written": 0}  # fmt: skip
    return {**base, **values}


def stats(
    *,
    curve: dict[float, float],
    read_s: float = 10.0,
    origin_s: float = 5.0,
    disk: dict[str, Any] | None = None,
    redis: dict[str, Any] | None = None,
    first_minute: dict[str, Any] | None = None,
    prefetch_requests: int = 0,
) -> dict[str, Any]:
    origin = {"requests": 100, "bytes": 0, "retries": 0, "errors": 0, "changed": 0,
              "latency": histogram(origin_s, 100)}  # fmt: skip
    tiers: dict[str, Any] = {"memory": {**counts(hits=50, misses=50), "state": "closed"}}
    if disk is not None:
        tiers["disk"] = disk
    if redis is not None:
        tiers["redis"] = redis
    return {
        "tiers": tiers,
        "origin": origin,
        "reads": {"ram_hits": 50, "latency": histogram(read_s, 50)},
        "classes": {
            "demand": {
                "data": {"origin": {**origin, "latency": histogram(origin_s * 0.8, 80)}},
                "metadata": {"origin": {**origin, "requests": 20}},
            }
        },
        "prefetch": {"origin": {"requests": prefetch_requests}},
        "first_minute": first_minute,
        "shadow": {
            "tiers": {
                "memory": {
                    "capacity_bytes": 256 * MiB,
                    "curve": [
                        {"scale": k, "size_bytes": int(256 * MiB * k), "hit_ratio": v}
                        for k, v in sorted(curve.items())
                    ],
                }
            }
        },
    }


STEEP = {0.25: 0.2, 0.5: 0.3, 1.0: 0.4, 2.0: 0.55, 4.0: 0.7, 8.0: 0.75, 16.0: 0.76}
FLAT = {0.25: 0.70, 0.5: 0.71, 1.0: 0.72, 2.0: 0.73, 4.0: 0.73, 8.0: 0.73, 16.0: 0.73}


def first_minute(meta_s: float, read_s: float, requests: int, **tiers: Any) -> dict[str, Any]:
    return {
        "classes": {
            "demand": {
                "metadata": {
                    "origin": {"requests": requests, "latency": histogram(meta_s, requests)}
                }
            }
        },
        "reads": {"latency": histogram(read_s, 10)},
        "tiers": tiers,
    }


def test_more_ram_when_doubling_it_gains_and_the_origin_matters() -> None:
    verdict, suggested = more_ram(stats(curve=STEEP))
    assert verdict.verdict == "yes"
    assert "gain 15.0%" in verdict.measured
    assert suggested == 8 * 256 * MiB  # the first size within 1 point of the 16x hit ratio
    assert more_ram(stats(curve=FLAT))[0].verdict == "no"
    assert more_ram(stats(curve=STEEP, origin_s=0.5))[0].verdict == "no"  # origin 5% of reads
    unknown, none = more_ram({**stats(curve=STEEP), "shadow": {}})
    assert (unknown.verdict, none) == ("unknown", None)


def test_disk_tier_when_evicted_blocks_come_back() -> None:
    assert disk_tier(stats(curve=STEEP)).verdict == "yes"  # (0.76 - 0.4) / 0.6 = 60% re-fetches
    assert disk_tier(stats(curve=FLAT)).verdict == "no"


def test_a_configured_disk_tier_is_kept_only_if_it_pays() -> None:
    fast = {**counts(hits=40, misses=60), "state": "closed", "latency": histogram(0.001, 100)}
    assert disk_tier(stats(curve=STEEP, disk=fast)).verdict == "keep"
    slow = {**fast, "latency": histogram(4.0, 100)}  # 40 ms a read vs 50 ms from the origin
    assert disk_tier(stats(curve=STEEP, disk=slow)).verdict == "drop"
    rare = {**fast, **counts(hits=2, misses=98)}
    assert disk_tier(stats(curve=STEEP, disk=rare)).verdict == "drop"


def test_redis_and_warmup_from_the_first_minute() -> None:
    cold = stats(curve=FLAT, first_minute=first_minute(3.0, 10.0, 40))
    assert redis_tier(cold).verdict == "yes"
    assert warmup(cold).verdict == "yes"
    mild = stats(curve=FLAT, first_minute=first_minute(1.5, 10.0, 40))
    assert redis_tier(mild).verdict == "no"  # 15% of read time: below Redis's 25%
    assert warmup(mild).verdict == "yes"  # above warmup's 10%
    few = stats(curve=FLAT, first_minute=first_minute(3.0, 10.0, 5))
    assert (redis_tier(few).verdict, warmup(few).verdict) == ("no", "no")
    young = stats(curve=FLAT)
    assert (redis_tier(young).verdict, warmup(young).verdict) == ("unknown", "unknown")


def test_a_configured_redis_is_kept_when_new_pods_find_metadata() -> None:
    tier = {**counts(hits=30, misses=10), "state": "closed"}
    warm = stats(curve=FLAT, redis=tier, first_minute=first_minute(1, 10, 5, redis=tier))
    assert redis_tier(warm).verdict == "keep"
    cold_tier = {**counts(hits=1, misses=30), "state": "closed"}
    cold = stats(curve=FLAT, redis=tier, first_minute=first_minute(1, 10, 5, redis=cold_tier))
    assert redis_tier(cold).verdict == "drop"


def with_policies(running: str, fifo: float, lru: float) -> dict[str, Any]:
    result = stats(curve=STEEP)
    entry = result["shadow"]["tiers"]["memory"]
    entry["policy"] = running
    entry["curves"] = {
        name: [{**point, "hit_ratio": point["hit_ratio"] + delta} for point in entry["curve"]]
        for name, delta in (("s3fifo", fifo - 0.4), ("lru", lru - 0.4))
    }
    return result


def test_ram_policy_compares_the_curves_of_both_policies() -> None:
    assert ram_policy(with_policies("s3fifo", 0.60, 0.50)).verdict == "keep"
    assert ram_policy(with_policies("s3fifo", 0.50, 0.51)).verdict == "keep"  # within the margin
    verdict = ram_policy(with_policies("s3fifo", 0.50, 0.55))
    assert verdict.verdict == "drop"
    assert "TIERCACHE_MEMORY_POLICY=lru" in verdict.detail
    assert ram_policy(with_policies("lru", 0.60, 0.50)).verdict == "yes"
    assert ram_policy(with_policies("lru", 0.50, 0.51)).verdict == "no"
    assert ram_policy(stats(curve=STEEP)).verdict == "unknown"  # an older stats file


def test_ram_policy_on_a_real_chain_after_a_scan() -> None:
    """A hot set read through a scan: the shadow says s3fifo pays, whichever policy runs."""
    path = f"/advise/scan-{uuid.uuid4().hex}.bin"
    trace = traces.scan_trace(100, hot_share=0.3, scan_per_hot=4, passes=10)
    ids = sorted({key_id for key_id, _ in trace})
    offsets = {key_id: index * 4096 for index, key_id in enumerate(ids)}
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(path, bytes(len(ids) * 4096))
    verdicts = {}
    for tier in (MemoryTier(100 * 4096), S3FifoTier(100 * 4096)):
        fs = TieredFileSystem(
            fs=CountingFS(skip_instance_cache=True),
            settings=Settings(block_size_bytes=4096, shadow_rate=1.0),
            tiers=[tier],
        )
        for key_id, _ in trace:
            fs.read_range(path, offsets[key_id], offsets[key_id] + 10)
        verdicts[tier.policy] = ram_policy(fs.stats()).verdict
        fs.close()
    origin.rm(path)
    assert verdicts == {"lru": "yes", "s3fifo": "keep"}


def test_every_layer_has_a_verdict_and_a_failure_mode() -> None:
    verdicts, _ = advise(stats(curve=STEEP))
    assert [v.layer for v in verdicts] == [
        "more RAM",
        "RAM policy",
        "disk tier",
        "Redis tier",
        "warmup",
        "hedged reads",
        "readahead",
    ]
    assert all(v.failure_mode and v.threshold for v in verdicts)


def tailed(counts: list[int], hedges: int = 0, won: int = 0) -> dict[str, Any]:
    """Stats whose origin data requests fell into buckets of 10, 25, 50, 100, 500 ms, 1 s."""
    latency = {"bounds": [0.01, 0.025, 0.05, 0.1, 0.5, 1.0], "counts": [*counts, 0], "sum": 1.0,
               "count": sum(counts)}  # fmt: skip
    base = stats(curve=STEEP)
    base["origin"].update(hedges=hedges, hedges_won=won)
    base["classes"]["demand"]["data"]["origin"]["latency"] = latency
    return base


def test_quantile_of_a_histogram() -> None:
    latency = {"bounds": [0.01, 0.1], "counts": [90, 9, 1]}
    assert (quantile(latency, 0.5), quantile(latency, 0.99), quantile(latency, 1.0)) == (
        0.01, 0.1, 0.1,
    )  # fmt: skip
    assert quantile({"bounds": [0.01], "counts": [0, 0]}, 0.5) is None


def test_hedged_reads_pay_on_a_long_tail_and_are_kept_while_hedges_win() -> None:
    tail = [0, 60, 30, 8, 2, 0]  # p50 25 ms, p99 500 ms: 20x
    assert hedged_reads(tailed(tail)).verdict == "yes"
    assert hedged_reads(tailed([0, 60, 38, 2, 0, 0])).verdict == "no"  # p99 100 ms: 4x
    assert hedged_reads(tailed(tail, hedges=10, won=8)).verdict == "keep"
    assert hedged_reads(tailed(tail, hedges=10, won=2)).verdict == "drop"
    assert hedged_reads(tailed([0, 6, 3, 1, 0, 0])).verdict == "unknown"  # 10 requests
    verdict = hedged_reads(tailed(tail))
    assert "20.0x" in verdict.measured
    assert verdict.failure_mode


def read_ahead(blocks: int, hits: int, wasted: int, budget: int = 64 << 20) -> dict[str, Any]:
    base = stats(curve=STEEP)
    base["readahead"] = {"blocks": blocks, "hits": hits, "wasted": wasted,
                         "budget_bytes": budget}  # fmt: skip
    return base


def test_readahead_is_kept_while_the_reader_reads_what_it_fetched() -> None:
    assert readahead(read_ahead(100, 90, 10)).verdict == "keep"
    assert readahead(read_ahead(100, 20, 80)).verdict == "drop"
    assert "TIERCACHE_READAHEAD_BYTES=0" in readahead(read_ahead(100, 20, 80)).detail
    assert readahead(read_ahead(10, 10, 0)).verdict == "unknown"  # too few blocks
    assert readahead(read_ahead(0, 0, 0, budget=0)).verdict == "unknown"  # off
    assert readahead(stats(curve=STEEP)).verdict == "unknown"  # a stats file from before
    assert readahead(read_ahead(100, 90, 10)).failure_mode


@pytest.fixture
def stats_file(tmp_path: Path) -> Path:
    """A stats file written from a real chain that read a few blocks twice."""
    path = f"/advise/{uuid.uuid4().hex}.bin"
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(path, letters(400 * 4096))
    fs = TieredFileSystem(
        fs=CountingFS(skip_instance_cache=True),
        settings=Settings(block_size_bytes=4096, memory_bytes=64 * 4096),
        tiers=[MemoryTier(64 * 4096)],
    )
    for _ in range(2):
        for i in range(0, 400, 3):
            fs.read_range(path, i * 4096, i * 4096 + 10)
    target = tmp_path / "stats.json"
    document = statsfile.snapshot()
    document["chains"] = [c for c in document["chains"] if c["chain"] == fs.chain.serial]
    statsfile.write(target, document)
    fs.close()
    origin.rm(path)
    return target


def test_stats_command_prints_the_file(
    stats_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", str(stats_file)]) == 0
    out = capsys.readouterr().out
    assert "memory" in out
    assert "origin:" in out
    assert "hit%" in out
    assert main(["stats", str(stats_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == 1


def test_advise_command_evaluates_every_trigger_and_plots(
    stats_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "mrc.png"
    assert main(["advise", str(stats_file), "--json", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("]") + 1])
    layers = [v["layer"] for v in result[0]["verdicts"]]
    assert layers == [
        "more RAM", "RAM policy", "disk tier", "Redis tier", "warmup", "hedged reads", "readahead"
    ]  # fmt: skip
    assert result[0]["verdicts"][0]["verdict"] in ("yes", "no")  # the curve exists
    assert result[0]["suggested_memory_bytes"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["advise", str(stats_file)]) == 0
    text = capsys.readouterr().out
    assert "RAM the curve suggests: TIERCACHE_MEMORY_BYTES=" in text
    assert "Degrades to:" in text


def test_a_bad_stats_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "nope.json"
    bad.write_text("{}")
    assert main(["advise", str(bad)]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert main(["stats", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_plotting_without_a_curve_fails_clearly(
    stats_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(stats_file.read_text())
    stripped = copy.deepcopy(document)
    for chain in stripped["chains"]:
        chain["stats"]["shadow"] = {}
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(stripped))
    assert main(["advise", str(flat), "--plot", str(tmp_path / "x.png")]) == 1
    assert "no miss-ratio curve" in capsys.readouterr().err
