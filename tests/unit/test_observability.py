"""Counters per purpose and block class, histograms, single-flight waits, breaker transitions,
the first-minute snapshot, the Prometheus collector and the stats file, and what starts them
(``tiercache.observe()``, never building a filesystem)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import tiercache
from tests.helpers import CountingFS, letters
from tiercache import ConfigError, Settings, TieredFileSystem, build
from tiercache.blocks import FOOTER_TAIL_BYTES
from tiercache.cli.main import main
from tiercache.context import DEMAND
from tiercache.guard import CircuitBreaker
from tiercache.ops import metrics, observe, statsfile
from tiercache.testing import free_port
from tiercache.tiers.memory import MemoryTier

BS = 64 * 1024
SIZE = 1024 * 1024 + 123  # not small: head blocks are data, the tail blocks metadata


@pytest.fixture
def path() -> Iterator[str]:
    p = f"/obs/{uuid.uuid4().hex}.parquet"
    fs = CountingFS(skip_instance_cache=True)
    fs.pipe_file(p, letters(SIZE))
    yield p
    fs.rm(p)


def make_fs(**settings: Any) -> TieredFileSystem:
    options: dict[str, Any] = {"block_size_bytes": BS, **settings}
    return TieredFileSystem(
        fs=CountingFS(skip_instance_cache=True),
        settings=Settings(**options),
        tiers=[MemoryTier(64 << 20)],
    )


def test_counters_split_by_block_class(path: str) -> None:
    fs = make_fs()
    data = letters(SIZE)
    assert fs.read_range(path, -FOOTER_TAIL_BYTES, None) == data[-FOOTER_TAIL_BYTES:]
    assert fs.read_range(path, 0, 100) == data[:100]
    for _ in range(3):  # hot path hits: tail (metadata) and head (data)
        fs.read_range(path, SIZE - 10, SIZE)
        fs.read_range(path, 10, 20)
    stats = fs.stats()
    meta = stats["classes"]["demand"]["metadata"]
    dat = stats["classes"]["demand"]["data"]
    # The footer tail spans two blocks (the last is 123 bytes), fetched in one run.
    assert meta["origin"]["requests"] == 2  # info + the tail run
    assert dat["origin"]["requests"] == 1
    assert meta["tiers"]["memory"]["misses"] == 2
    assert dat["tiers"]["memory"]["misses"] == 1
    assert meta["tiers"]["memory"]["hits"] == 3
    assert dat["tiers"]["memory"]["hits"] == 3
    memory = stats["tiers"]["memory"]
    assert memory["hits"] == 6
    assert memory["misses"] == 3
    assert stats["reads"]["ram_hits"] == 6
    assert stats["reads"]["latency"]["count"] == 2  # the two reads that left the hot path
    assert stats["origin"]["latency"]["count"] == stats["origin"]["requests"] == 3
    assert stats["classes"]["prefetch"]["data"]["origin"]["requests"] == 0


def test_a_multi_block_hot_hit_is_split_by_class(path: str) -> None:
    fs = make_fs()
    fs.read_range(path, 0, SIZE)  # everything in RAM
    before = fs.stats()["classes"]["demand"]
    fs.read_range(path, SIZE - FOOTER_TAIL_BYTES - 2 * BS, SIZE)  # data blocks and the tail
    after = fs.stats()["classes"]["demand"]
    gained = {
        kind: after[kind]["tiers"]["memory"]["hits"] - before[kind]["tiers"]["memory"]["hits"]
        for kind in ("metadata", "data")
    }
    assert gained == {"data": 2, "metadata": 2}


def test_readers_of_one_missing_block_wait_on_one_fetch(path: str) -> None:
    fs = make_fs()
    fs.info(path)
    target = fs.target
    assert isinstance(target, CountingFS)
    target.hold_from_bytes = 11  # the block read waits until every follower waits on it

    def read() -> None:
        fs.read_range(path, 0, 10)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while fs.stats()["flight"]["block_waits"] < 3:
        assert time.monotonic() < deadline, fs.stats()["flight"]
        time.sleep(0.01)
    target.release.set()
    for t in threads:
        t.join()
    assert len(target.reads) == 1
    assert fs.stats()["flight"]["block_waits"] == 3


def test_breaker_transitions_are_counted() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 1.0, clock=lambda: now[0])
    breaker.record_failure()
    breaker.record_failure()  # closed -> open
    now[0] = 2.0
    assert breaker.allow()  # open -> half_open
    breaker.record_failure()  # half_open -> open
    now[0] = 4.0
    assert breaker.allow()
    breaker.record_success()  # half_open -> closed
    assert breaker.transitions() == {
        "closed->open": 1,
        "open->half_open": 2,
        "half_open->open": 1,
        "half_open->closed": 1,
    }


def test_the_first_minute_is_frozen_when_it_ends(path: str) -> None:
    fs = make_fs()
    fs.chain._first_window_s = 0.2  # a short window for the test
    fs.read_range(path, 0, 10)
    assert fs.stats()["first_minute"] is None
    time.sleep(0.25)
    fs.read_range(path, -10, None)  # leaves the hot path after the window: freezes first
    frozen = fs.stats()["first_minute"]
    assert frozen is not None
    assert frozen["window_s"] == 0.2
    assert frozen["origin"]["requests"] == 2  # info and block 0, not the later tail read
    assert fs.stats()["origin"]["requests"] == 3
    fs.read_range(path, BS * 5, BS * 5 + 1)
    assert fs.stats()["first_minute"] == frozen


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    assert matches, (name, labels)
    return sum(matches)


def test_collector_exports_what_stats_reports(path: str) -> None:
    fs = make_fs()
    fs.read_range(path, -FOOTER_TAIL_BYTES, None)
    fs.read_range(path, 0, 10)
    fs.read_range(path, 0, 10)
    registry = CollectorRegistry()
    metrics.register(registry)
    samples = _samples(generate_latest(registry).decode())
    chain = str(fs.chain.serial)
    stats = fs.stats()
    assert (
        _value(samples, "tiercache_tier_hits_total", chain=chain, tier="memory", purpose="demand")
        == stats["tiers"]["memory"]["hits"]
    )
    assert (
        _value(samples, "tiercache_origin_requests_total", chain=chain, **{"class": "metadata"})
        == stats["classes"]["demand"]["metadata"]["origin"]["requests"]
    )
    assert _value(samples, "tiercache_origin_latency_seconds_count", chain=chain) == 3
    assert _value(samples, "tiercache_tier_state", chain=chain, state="closed") == 1
    assert _value(samples, "tiercache_ram_hit_reads_total", chain=chain) == 1


def test_dropped_fill_bytes_are_a_family_of_their_own(path: str) -> None:
    fs = make_fs()
    fs.chain.fills.counters.add("dropped", ctx=DEMAND)
    fs.chain.fills.counters.add("dropped_bytes", 4096, ctx=DEMAND)
    registry = CollectorRegistry()
    metrics.register(registry)
    samples = _samples(generate_latest(registry).decode())
    chain = str(fs.chain.serial)
    assert _value(samples, "tiercache_fills_total", chain=chain, outcome="dropped") == 1
    assert _value(samples, "tiercache_fills_dropped_bytes_total", chain=chain) == 4096
    outcomes = {
        dict(labels).get("outcome")
        for name, labels in samples
        if name == "tiercache_fills_total" and dict(labels).get("chain") == chain
    }
    assert outcomes == {"queued", "dropped", "done", "failed"}  # bytes are not an outcome


def test_metrics_endpoint_is_scraped_over_http(path: str) -> None:
    fs = make_fs()
    fs.read_range(path, 0, 10)
    port = metrics.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        samples = _samples(text)
        chain = str(fs.chain.serial)
        assert _value(samples, "tiercache_origin_requests_total", chain=chain) == 2
        assert _value(samples, "tiercache_tier_misses_total", chain=chain, tier="memory") == 1
    finally:
        metrics.stop_serving()


@pytest.fixture
def unobserved(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process where ``tiercache.observe()`` has not run and the warning was not logged yet
    (other tests run the CLI, which observes); whatever the test starts is stopped after."""
    monkeypatch.setattr(build._observation, "observed", False)
    monkeypatch.setattr(build._observation, "warned", False)
    yield
    observe.stop()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tiercache.build" and r.levelno == logging.WARNING
    ]


def test_building_a_filesystem_starts_no_server_and_no_thread(
    path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, unobserved: None
) -> None:
    """Construction starts nothing, with settings asking for an endpoint and a stats file; it
    logs one WARNING per process saying what to call. The first read may start the chain's own
    threads (its run and fetch pools, ``tiercache-run-*`` / ``tiercache-fetch-*``, and the fill
    workers, ``tiercache-fill-*``, lazily): still no server and no stats-file writer."""
    port = free_port()
    target = tmp_path / "stats.json"
    settings = Settings(
        block_size_bytes=BS, metrics_port=port, stats_file=str(target), stats_interval_s=0.1
    )
    before = set(threading.enumerate())
    with caplog.at_level(logging.WARNING, logger="tiercache.build"):
        shared = TieredFileSystem(fs=CountingFS(skip_instance_cache=True), settings=settings)
        own = TieredFileSystem(
            fs=CountingFS(skip_instance_cache=True), settings=settings, tiers=[MemoryTier(1 << 20)]
        )
    assert set(threading.enumerate()) - before == set()
    assert _refused(port)
    assert _warnings(caplog) == [
        f"TIERCACHE_METRICS_PORT={port} and TIERCACHE_STATS_FILE={target} are set, but building "
        "a filesystem no longer starts the metrics endpoint or the stats file: call "
        "tiercache.observe() once at startup (docs/operations.md)"
    ]
    shared.read_range(path, 0, 10)
    own.read_range(path, 0, 10)
    time.sleep(0.3)  # three stats-file periods
    assert _refused(port)
    assert not target.exists()
    started = {t.name for t in set(threading.enumerate()) - before}
    assert not [name for name in started if not name.startswith("tiercache-")], started
    assert "tiercache-stats-file" not in started
    own.close()


def test_observe_serves_metrics_and_writes_the_stats_file(
    path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, unobserved: None
) -> None:
    port = free_port()
    target = tmp_path / "run" / "stats.json"
    settings = Settings(
        block_size_bytes=BS, metrics_port=port, stats_file=str(target), stats_interval_s=0.1
    )
    tiercache.observe(settings)
    tiercache.observe(settings)  # once per process: the second call starts nothing
    with caplog.at_level(logging.WARNING, logger="tiercache.build"):
        fs = TieredFileSystem(
            fs=CountingFS(skip_instance_cache=True), settings=settings, tiers=[MemoryTier(1 << 20)]
        )
    assert _warnings(caplog) == []  # observed: nothing to warn about
    fs.read_range(path, 0, 10)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        samples = _samples(answer.read().decode())
    assert _value(samples, "tiercache_origin_requests_total", chain=str(fs.chain.serial)) == 2
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    mine = [c for c in statsfile.read(target)["chains"] if c["chain"] == fs.chain.serial]
    assert len(mine) == 1
    observe.stop()
    assert _refused(port)
    fs.close()


def test_observe_without_prometheus_client_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, unobserved: None
) -> None:
    def missing(port: int) -> int:
        raise ImportError("No module named 'prometheus_client'")

    monkeypatch.setattr(metrics, "serve", missing)
    with pytest.raises(ConfigError, match=r"TIERCACHE_METRICS_PORT=9464 .*tiercache\[metrics\]"):
        observe.start(Settings(metrics_port=9464))


def test_observe_logs_a_port_taken_and_reads_go_on(
    path: str, caplog: pytest.LogCaptureFixture, unobserved: None
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fs = make_fs(metrics_port=port)
        with caplog.at_level(logging.ERROR, logger="tiercache.ops.observe"):
            observe.start(fs.settings)
        assert f"cannot serve metrics on port {port}" in caplog.text
        assert fs.read_range(path, 0, 10) == letters(SIZE)[:10]


def test_entry_points_building_from_the_environment_observe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unobserved: None,
) -> None:
    """``warm`` without a filesystem and ``tiercache read`` build theirs from the environment,
    and start what it asks for (here the stats file, written at the latest by ``stop``) before
    building it: no warning."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.bin").write_bytes(b"0123456789")

    def warm() -> bool:
        return bool(tiercache.warm(str(data)).errors)

    def read() -> bool:
        return bool(main(["read", f"tiercache::file://{data}/x.bin"]))

    for number, run in enumerate((warm, read)):
        target = tmp_path / f"stats-{number}.json"
        monkeypatch.setenv("TIERCACHE_STATS_FILE", str(target))
        with caplog.at_level(logging.WARNING, logger="tiercache.build"):
            assert not run()  # no errors; exit status 0
        assert _warnings(caplog) == []
        assert "tiercache-stats-file" in {t.name for t in threading.enumerate()}
        observe.stop()
        assert statsfile.read(target)["chains"]


def test_stats_file_is_written_periodically_and_on_stop(
    path: str, tmp_path: Path, unobserved: None
) -> None:
    target = tmp_path / "run" / "stats.json"
    fs = make_fs(
        stats_file=str(target),
        stats_interval_s=0.1,
        redis_url="redis://user:hunter2@127.0.0.1:1/0",
        redis_hmac_key="k" * 20,
    )
    observe.start(fs.settings)
    try:
        fs.read_range(path, 0, 10)
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert target.exists()
    finally:
        statsfile.stop()
    document = statsfile.read(target)
    mine = [c for c in document["chains"] if c["chain"] == fs.chain.serial]
    assert len(mine) == 1
    assert mine[0]["stats"]["origin"]["requests"] == 2
    assert mine[0]["settings"]["TIERCACHE_BLOCK_SIZE"] == BS
    text = target.read_text()
    assert "hunter2" not in text
    assert "k" * 20 not in text
    assert [p.name for p in target.parent.iterdir()] == ["stats.json"]  # no temporary left


def test_a_bad_stats_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        statsfile.read(bad)
    bad.write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="not a tiercache stats file"):
        statsfile.read(bad)


def test_the_shadow_curve_through_the_chain_matches_the_ram_tier_at_three_sizes() -> None:
    """On a Zipf workload read through the chain, the shadow cache's estimates at 0.25x, 1x and
    4x the RAM tier are within 5 points of the hit ratios RAM tiers of those sizes really had
    (the same reads through three filesystems). The rate is set (0.5): Python's hashes differ
    per process, and at the automatic rate only ~16 sampled keys fall within 0.25x the RAM tier,
    which is estimated within ~5 points, not always within it (docs/shadow-cache.md)."""
    import bisect
    import random

    block = 4096
    blocks = 20_000
    p = f"/obs/zipf-{uuid.uuid4().hex}.bin"
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(p, bytes(blocks * block))
    capacity = 600 * block
    scales = (0.25, 1.0, 4.0)
    pods = {}
    for scale in scales:
        size = int(capacity * scale)
        pods[scale] = TieredFileSystem(
            fs=CountingFS(skip_instance_cache=True),
            settings=Settings(block_size_bytes=block, memory_bytes=capacity, shadow_rate=0.5),
            tiers=[MemoryTier(size)],
        )
    try:
        shadow = pods[1.0].chain.shadow
        assert shadow is not None
        assert shadow.rate == 0.5  # sampling is really on
        cdf = []
        total = 0.0
        for k in range(blocks):
            total += 1 / (k + 1) ** 0.9
            cdf.append(total)
        rng = random.Random(7)
        order = list(range(blocks))
        rng.shuffle(order)  # popular blocks spread over the object
        for _ in range(60_000):
            index = order[bisect.bisect_left(cdf, rng.random() * total)]
            offset = index * block
            for fs in pods.values():
                fs.read_range(p, offset, offset + 100)
        curve = pods[1.0].stats()["shadow"]["tiers"]["memory"]["curve"]
        assert [point["scale"] for point in curve] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
        for scale, fs in pods.items():
            memory = fs.stats()["tiers"]["memory"]
            measured = memory["hits"] / (memory["hits"] + memory["misses"])
            estimated = next(pt["hit_ratio"] for pt in curve if pt["scale"] == scale)
            assert abs(estimated - measured) <= 0.05, (scale, estimated, measured, shadow.rate)
    finally:
        for fs in pods.values():
            fs.close()
        origin.rm(p)
