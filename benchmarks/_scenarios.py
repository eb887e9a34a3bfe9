"""The scenarios of ``run.py`` that reuse the single-purpose programs: hot and cold reads, the disk
tier, Redis footers, Delta + DataFusion; and what every scenario shares (sizes, the context, the
target records).

Every scenario takes a :class:`Context` and returns a JSON-ready dict:

- ``data``: the figures (medians, spreads, raw rounds, request counts) the plots are drawn from;
- ``tables``: Markdown, the same tables the standalone program prints;
- ``targets``: :func:`target` records, one per target of the earlier issues the scenario checks;
- ``notes``: lines worth reading next to the tables (what could not be measured, and why).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import s3fs

import block_size
import delta_datafusion
import disk_tier
import hot_read
import redis_footers
from _proxy import ProxyProcess
from _timing import Sample
from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.parsing import KIB, MIB
from tiercache.testing import RedisServer, S3Server

BUCKET = "bench"
STORE = "store"
LOOPBACK = "loopback"


@dataclass(frozen=True)
class Profile:
    """How the proxy in front of the S3 server behaves."""

    name: str
    label: str
    delay_s: float
    bandwidth_bytes_per_s: float | None

    def describe(self) -> str:
        if self.delay_s == 0 and self.bandwidth_bytes_per_s is None:
            return f"{self.label}: no added latency, no bandwidth limit"
        bandwidth = (
            "unlimited"
            if self.bandwidth_bytes_per_s is None
            else f"{self.bandwidth_bytes_per_s / 1e6:g} MB/s per stream"
        )
        return f"{self.label}: {self.delay_s * 1e3:g} ms to first byte, {bandwidth}"


PROFILES = {
    STORE: Profile(STORE, "emulated object store", 0.020, 100e6),
    LOOPBACK: Profile(LOOPBACK, "loopback", 0.0, None),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does: ``full`` for the committed report, ``quick`` for a
    run of a few minutes, ``smoke`` to exercise every code path in seconds (figures meaningless)."""

    name: str
    hot_rounds: int
    hot_ops: int
    hot_object_bytes: int
    cold_rounds: int
    disk_object_bytes: int
    disk_rounds: int
    disk_ops: int
    policy_rounds: int
    eviction_requests: int
    eviction_warmup: int
    eviction_processes: int
    redis_files: int
    redis_rounds: int
    delta_shape: delta_datafusion.Shape
    delta_rounds: int
    delta_reps: int
    delta_cold_rounds: int
    delta_process_rounds: int
    degraded_rounds: int
    degraded_objects: int
    threads: tuple[int, ...]
    concurrency_rounds: int
    concurrency_blocks: int  # 1 MiB reads per cold measurement, split among the threads
    concurrency_hot_ops: int  # 64 KiB reads per thread
    count_points: tuple[int, ...]
    size_points: tuple[int, ...]
    block_points: tuple[int, ...]
    scaling_rounds: int
    sweep_rows: int
    sweep_rounds: int
    block_scattered_reads: int
    rss_read_bytes: int  # distinct data the memory scenario's 8 threads read, in all
    rss_rounds: int  # a fresh process per case and round


SIZES = {
    "full": Sizes(
        name="full",
        hot_rounds=15,
        hot_ops=2000,
        hot_object_bytes=64 * MIB,
        cold_rounds=15,
        disk_object_bytes=64 * MIB,
        disk_rounds=21,
        disk_ops=300,
        policy_rounds=3,
        eviction_requests=6000,
        eviction_warmup=1000,
        eviction_processes=4,
        redis_files=50,
        redis_rounds=5,
        delta_shape=delta_datafusion.FULL_SHAPE,
        delta_rounds=15,
        delta_reps=5,
        delta_cold_rounds=9,
        delta_process_rounds=5,
        degraded_rounds=5,
        degraded_objects=8,
        threads=(1, 2, 4, 8, 16, 32),
        concurrency_rounds=3,
        concurrency_blocks=64,
        concurrency_hot_ops=2000,
        count_points=(1, 4, 16, 64, 256),
        size_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB),
        block_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
        scaling_rounds=3,
        sweep_rows=500_000,
        sweep_rounds=3,
        block_scattered_reads=16,
        rss_read_bytes=1024 * MIB,
        rss_rounds=3,
    ),
    "quick": Sizes(
        name="quick",
        hot_rounds=3,
        hot_ops=200,
        hot_object_bytes=64 * MIB,
        cold_rounds=3,
        disk_object_bytes=16 * MIB,
        disk_rounds=3,
        disk_ops=40,
        policy_rounds=1,
        eviction_requests=1200,
        eviction_warmup=300,
        eviction_processes=4,
        redis_files=20,
        redis_rounds=2,
        delta_shape=delta_datafusion.QUICK_SHAPE,
        delta_rounds=5,
        delta_reps=3,
        delta_cold_rounds=3,
        delta_process_rounds=2,
        degraded_rounds=2,
        degraded_objects=4,
        threads=(1, 2, 8, 32),
        concurrency_rounds=1,
        concurrency_blocks=32,
        concurrency_hot_ops=300,
        count_points=(1, 4, 16, 64),
        size_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
        block_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
        scaling_rounds=1,
        sweep_rows=100_000,
        sweep_rounds=1,
        block_scattered_reads=8,
        rss_read_bytes=512 * MIB,
        rss_rounds=1,
    ),
    "smoke": Sizes(
        name="smoke",
        hot_rounds=2,
        hot_ops=20,
        hot_object_bytes=8 * MIB,
        cold_rounds=1,
        disk_object_bytes=4 * MIB,
        disk_rounds=2,
        disk_ops=10,
        policy_rounds=1,
        eviction_requests=300,
        eviction_warmup=100,
        eviction_processes=2,
        redis_files=3,
        redis_rounds=1,
        delta_shape=delta_datafusion.Shape(
            days=1, slices_per_day=2, traces_per_slice=60, row_group_rows=512
        ),
        delta_rounds=2,
        delta_reps=1,
        delta_cold_rounds=1,
        delta_process_rounds=1,
        degraded_rounds=1,
        degraded_objects=2,
        threads=(1, 4),
        concurrency_rounds=1,
        concurrency_blocks=8,
        concurrency_hot_ops=20,
        count_points=(1, 4),
        size_points=(64 * KIB, MIB),
        block_points=(256 * KIB, MIB),
        scaling_rounds=1,
        sweep_rows=20_000,
        sweep_rounds=1,
        block_scattered_reads=4,
        rss_read_bytes=64 * MIB,
        rss_rounds=1,
    ),
}


@dataclass
class Context:
    """What every scenario runs against: one S3 server, a proxy process per profile, one Redis
    (the scenarios that break Redis start their own), a work directory, the base settings."""

    sizes: Sizes
    server: S3Server
    proxies: dict[str, ProxyProcess]
    redis: RedisServer
    workdir: Path
    settings: Settings
    log: Callable[[str], None] = print
    profiles: dict[str, Profile] = field(default_factory=lambda: dict(PROFILES))

    def options(self, profile: str) -> dict[str, Any]:
        """s3fs keyword arguments reaching the S3 server through the profile's proxy."""
        return self.server.storage_options(self.proxies[profile].url)

    def client(self, profile: str) -> s3fs.S3FileSystem:
        """A new s3fs client through the profile's proxy, its botocore client built."""
        client = s3fs.S3FileSystem(**self.options(profile), skip_instance_cache=True)
        client.connect()
        return client

    def pyarrow_fs(self, profile: str) -> pafs.S3FileSystem:
        """pyarrow's own S3 filesystem (the AWS SDK) through the profile's proxy."""
        options = self.options(profile)
        return pafs.S3FileSystem(
            access_key=options["key"],
            secret_key=options["secret"],
            region=options["client_kwargs"]["region_name"],
            endpoint_override=self.proxies[profile].url,
            scheme="http",
        )

    def ram_pod(self, client: Any, **overrides: Any) -> TieredFileSystem:
        """A new pod with a RAM tier only (empty), over ``client``."""
        settings = dataclasses.replace(self.settings, **overrides)
        return TieredFileSystem(
            fs=client,
            settings=settings,
            tiers=[MemoryTier(settings.memory_bytes)],
            skip_instance_cache=True,
        )


# -- helpers -----------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    """Median, spread (half the IQR over the median) and the raw values."""
    sample = Sample("", values)
    return {"median": sample.median, "spread": sample.spread, "rounds": values}


def target(
    *,
    key: str,
    scenario: str,
    text: str,
    measured: str,
    ratio: float | None,
    met: bool,
    reference: str,
    informative: bool = False,
) -> dict[str, Any]:
    """One row of the targets table. ``informative``: reported next to a target, not one."""
    return {
        "key": key,
        "scenario": scenario,
        "target": text,
        "measured": measured,
        "ratio": ratio,
        "met": met,
        "reference": reference,
        "informative": informative,
    }


def shuffled_rounds(
    rounds: int, steps: list[tuple[str, Callable[[], None]]], seed: int = 20261124
) -> None:
    """Run every step once per round, in an order shuffled every round (seeded)."""
    order = list(steps)
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        for _, step in order:
            step()


def fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


# -- hot reads ---------------------------------------------------------------------------------


def hot(ctx: Context) -> dict[str, Any]:
    """hot_read.py's hot part: warm 64 KiB and 4 MiB reads against the floor and fsspec's caches."""
    sz = ctx.sizes
    workdir = ctx.workdir / "hot"
    workdir.mkdir(parents=True, exist_ok=True)
    hots = {}
    for size in (64 * KIB, 4 * MIB):
        ops = sz.hot_ops if size < MIB else max(20, sz.hot_ops // 10)
        hots[size] = hot_read.hot(
            ctx.server, size, sz.hot_rounds, ops, str(workdir), object_bytes=sz.hot_object_bytes
        )
    shutil.rmtree(workdir, ignore_errors=True)
    lines, _ = hot_read.report_hot(hots)
    samples = hots[64 * KIB]
    floor = samples["floor: dict slice"].median
    rr = samples["tiercache read_range"].median
    block = samples["blockcache open+seek+read"].median
    targets = [
        target(
            key="hot-floor",
            scenario="hot",
            text="hot 64 KiB `read_range` ≤ 3x the dict-slice floor",
            measured=f"{fmt_s(rr)} vs {fmt_s(floor)}",
            ratio=rr / floor,
            met=rr / floor <= 3.0,
            reference="floor: dict slice",
        ),
        target(
            key="hot-blockcache",
            scenario="hot",
            text="fsspec `blockcache` warm open+seek+read ≥ 5x slower than tiercache "
            "(64 KiB `read_range`)",
            measured=f"{fmt_s(block)} vs {fmt_s(rr)}",
            ratio=block / rr,
            met=block / rr >= 5.0,
            reference="blockcache open+seek+read",
        ),
    ]
    data = {
        str(size): {name: summary(s.rounds) for name, s in per_size.items()}
        for size, per_size in hots.items()
    }
    return {"data": data, "tables": "\n".join(lines), "targets": targets, "notes": []}


# -- cold reads --------------------------------------------------------------------------------

DIRECT = "direct s3fs cat_file"
PYARROW = "pyarrow S3FileSystem open_input_file + read_at"
CHAIN = "tiercache cold read_range"
COLD_PATHS = (DIRECT, PYARROW, CHAIN)
ALIGNED = "4 MiB, block-aligned"
INSIDE = "64 KiB inside one block"


def cold_profile(
    ctx: Context, profile: str, path: str, data: bytes, ranges: dict[str, tuple[int, int]]
) -> dict[str, dict[str, list[float]]]:
    """Every range by every path through one profile's proxy, rounds shuffled."""
    proxy = ctx.proxies[profile]
    client = ctx.client(profile)
    arrow = ctx.pyarrow_fs(profile)

    def direct(start: int, end: int) -> bytes:
        return bytes(client.cat_file(path, start=start, end=end))

    def pyarrow(start: int, end: int) -> bytes:
        f = arrow.open_input_file(path)
        try:
            return bytes(f.read_at(end - start, start))
        finally:
            f.close()

    def chain(start: int, end: int) -> bytes:
        fs = ctx.ram_pod(client)
        try:
            return fs.read_range(path, start, end)
        finally:
            fs.close()

    paths: dict[str, Callable[[int, int], bytes]] = {DIRECT: direct, PYARROW: pyarrow, CHAIN: chain}
    for fn in paths.values():  # not counted: open each client's connections
        fn(0, 1)
    results: dict[str, dict[str, list[float]]] = {}

    def step(label: str, name: str) -> Callable[[], None]:
        start, end = ranges[label]
        entry: dict[str, list[float]] = {"seconds": [], "get": [], "head": []}
        results[f"{label}: {name}"] = entry

        def run() -> None:
            proxy.reset_counters()
            t0 = time.perf_counter()
            got = paths[name](start, end)
            elapsed = time.perf_counter() - t0
            assert got == data[start:end], (profile, label, name)
            entry["seconds"].append(elapsed)
            entry["get"].append(proxy.requests("GET"))
            entry["head"].append(proxy.requests("HEAD"))

        return run

    for label in ranges:
        steps = [(name, step(label, name)) for name in COLD_PATHS]
        shuffled_rounds(ctx.sizes.cold_rounds, steps)
    return results


def cold_tables(ctx: Context, out: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    lines: list[str] = []
    for profile, results in out.items():
        lines += [
            f"#### Cold reads, {ctx.profiles[profile].describe()}",
            "",
            "| range: path | median | spread (±IQR/2) | GET | HEAD | ÷ direct s3fs |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, entry in results.items():
            label = name.split(":")[0]
            ref = statistics.median(results[f"{label}: {DIRECT}"]["seconds"])
            s = Sample(name, entry["seconds"])
            lines.append(
                f"| {name} | {fmt_s(s.median)} | {s.spread:.0%} | {max(entry['get']):g} "
                f"| {max(entry['head']):g} | {s.median / ref:.3f} |"
            )
        lines.append("")
    return lines


def cold(ctx: Context) -> dict[str, Any]:
    """Cold reads through a new chain against direct s3fs and pyarrow's S3 filesystem, per profile.

    One s3fs client and one pyarrow filesystem per profile serve every round ("cold" means a cold
    cache, not a cold client: building a botocore client costs 100+ ms and varies); each
    tiercache round builds a new RAM-only chain over that s3fs client.
    """
    payload = os.urandom(16 * MIB)
    ctx.server.put_object(BUCKET, "cold-reads.bin", payload)
    ranges = {ALIGNED: (4 * MIB, 8 * MIB), INSIDE: (5 * MIB + 12_345, 5 * MIB + 12_345 + 64 * KIB)}
    out = {
        profile: cold_profile(ctx, profile, f"{BUCKET}/cold-reads.bin", payload, ranges)
        for profile in ctx.profiles
    }

    def median(profile: str, name: str) -> float:
        return float(statistics.median(out[profile][f"{ALIGNED}: {name}"]["seconds"]))

    def requests(name: str) -> float:
        entry = out[STORE][f"{ALIGNED}: {name}"]
        return max(g + h for g, h in zip(entry["get"], entry["head"], strict=True))

    ratio = median(STORE, CHAIN) / median(STORE, DIRECT)
    more = requests(CHAIN) > requests(DIRECT)
    targets = [
        target(
            key="cold-aligned",
            scenario="cold",
            text="cold 4 MiB block-aligned read ≤ 1.05x a direct s3fs read, with no more "
            "requests (emulated store)",
            measured=f"{fmt_s(median(STORE, CHAIN))} vs {fmt_s(median(STORE, DIRECT))}; "
            f"requests {requests(CHAIN):g} vs {requests(DIRECT):g}",
            ratio=ratio,
            met=ratio <= 1.05 and not more,
            reference=DIRECT,
        )
    ]
    if LOOPBACK in out:
        lo_ratio = median(LOOPBACK, CHAIN) / median(LOOPBACK, DIRECT)
        targets.append(
            target(
                key="cold-aligned-loopback",
                scenario="cold",
                text="the same read with no added latency (loopback; not a target)",
                measured=f"{fmt_s(median(LOOPBACK, CHAIN))} vs {fmt_s(median(LOOPBACK, DIRECT))}",
                ratio=lo_ratio,
                met=lo_ratio <= 1.05,
                reference=DIRECT,
                informative=True,
            )
        )
    data = {
        profile: {name: {**summary(e["seconds"]), **e} for name, e in results.items()}
        for profile, results in out.items()
    }
    return {
        "data": data,
        "tables": "\n".join(cold_tables(ctx, out)),
        "targets": targets,
        "notes": [],
    }


# -- disk tier ---------------------------------------------------------------------------------


def disk(ctx: Context) -> dict[str, Any]:
    """disk_tier.py: warm 1 MiB reads against a local file, then the eviction policies."""
    sz = ctx.sizes
    workdir = ctx.workdir / "disk"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        warm = disk_tier.warm_read(workdir, sz.disk_object_bytes, sz.disk_rounds, sz.disk_ops)
        runs, shared = disk_tier.eviction_parts(
            workdir,
            sz.eviction_processes,
            sz.eviction_requests,
            sz.eviction_warmup,
            sz.policy_rounds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines, _ = disk_tier.report_read(warm)
    eviction_lines = disk_tier.report_eviction(runs, shared, disk_tier.BLOCK)
    ref = warm.samples[disk_tier.REFERENCE].median
    direct = warm.samples[disk_tier.DIRECT].median
    chain = warm.samples[disk_tier.CHAIN].median
    targets = [
        target(
            key="disk-get",
            scenario="disk",
            text="warm 1 MiB `DiskTier.get` ≤ 2x the fsspec local-file read",
            measured=f"{fmt_s(direct)} vs {fmt_s(ref)}",
            ratio=direct / ref,
            met=direct / ref <= disk_tier.TARGET_RATIO,
            reference=disk_tier.REFERENCE,
        ),
        target(
            key="disk-chain",
            scenario="disk",
            text="the same read through the chain, RAM tier off (the guard's thread hop; "
            "not the target)",
            measured=f"{fmt_s(chain)} vs {fmt_s(ref)}",
            ratio=chain / ref,
            met=chain / ref <= disk_tier.TARGET_RATIO,
            reference=disk_tier.REFERENCE,
            informative=True,
        ),
    ]
    data = {
        "warm": {name: summary(s.rounds) for name, s in warm.samples.items()},
        "chain_disk_hits": warm.chain_disk_hits,
        "chain_reads": warm.chain_reads,
        "chain_origin_requests": warm.chain_origin_requests,
        "eviction": [
            {
                "policy": r.policy,
                "workload": r.workload,
                "hit_ratio": statistics.median(r.hit_ratios),
                "reference": r.reference,
                "hit_get_p50": disk_tier.pct(r.hit_get, 0.5),
                "put_p50": disk_tier.pct(r.put, 0.5),
                "total_s": statistics.median(r.totals),
                "max_used": r.max_used,
                "final_used": r.final_used,
            }
            for r in runs
        ],
        "contention": [
            {
                "policy": c.policy,
                "processes": c.processes,
                "requests_per_s": c.requests / c.wall,
                "hit_ratio": c.hits / c.requests,
                "get_p50": disk_tier.pct(c.get, 0.5),
                "get_p99": disk_tier.pct(c.get, 0.99),
                "timeouts": c.get_timeouts + c.put_timeouts,
                "errors": c.errors,
            }
            for c in shared
        ],
    }
    return {
        "data": data,
        "tables": "\n".join(lines),
        "eviction_tables": "\n".join(eviction_lines),
        "targets": targets,
        "notes": [],
    }


# -- Redis footers -----------------------------------------------------------------------------


def redis(ctx: Context) -> dict[str, Any]:
    """redis_footers.py: a cold pod reading Parquet footers, with and without a warm Redis."""
    sz = ctx.sizes
    files = redis_footers.write_files(ctx.server, sz.redis_files)
    results, memory = redis_footers.run(
        ctx.server,
        ctx.proxies[STORE],
        ctx.redis,
        ctx.settings,
        files=files,
        rounds=sz.redis_rounds,
    )
    table, _, headline = redis_footers.report(results, files, memory)
    without, with_redis = headline["requests_no_redis"], headline["requests_with_redis"]
    ratio = headline["request_ratio"]
    wall_ratio = headline["wall_ratio"]
    targets = [
        target(
            key="redis-requests",
            scenario="redis",
            text=f"a cold pod with a warm Redis: ≥ 3x fewer origin requests for {len(files)} "
            "footers than without Redis (all gone: 0)",
            measured=f"{with_redis:g} vs {without:g} requests",
            ratio=None if with_redis == 0 else ratio,
            met=ratio >= 3.0,
            reference="the same pod without Redis",
        ),
        target(
            key="redis-wall",
            scenario="redis",
            text="… and less wall time",
            measured=f"{fmt_s(headline['wall_with_redis_s'])} vs "
            f"{fmt_s(headline['wall_no_redis_s'])} ({wall_ratio:.1f}x less)",
            ratio=None,
            met=headline["wall_with_redis_s"] < headline["wall_no_redis_s"],
            reference="the same pod without Redis",
        ),
    ]
    data = {
        "files": len(files),
        "headline": {k: (None if v == float("inf") else v) for k, v in headline.items()},
        "cases": {
            case: {
                **summary([r.seconds for r in rs]),
                "requests": [r.requests for r in rs],
                "redis_hits": [r.redis_hits for r in rs],
            }
            for case, rs in results.items()
        },
    }
    return {"data": data, "tables": table, "targets": targets, "notes": []}


# -- Delta + DataFusion ------------------------------------------------------------------------


def delta(ctx: Context) -> dict[str, Any]:
    """delta_datafusion.py: warm / cold / new process with a warm Redis."""
    sz = ctx.sizes
    workdir = ctx.workdir / "delta"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run = delta_datafusion.measure_all(
            ctx.server,
            ctx.proxies[STORE],
            ctx.redis,
            ctx.settings,
            sz.delta_shape,
            workdir=str(workdir),
            rounds=sz.delta_rounds,
            reps=sz.delta_reps,
            cold_rounds=sz.delta_cold_rounds,
            process_rounds=sz.delta_process_rounds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = []
    for v in run.verdicts:
        # "(a) selective, tiercache warm (RAM)" -> key "delta-a-selective"
        letter, query = v.scenario[1], v.scenario.split()[1].rstrip(",")
        process = v.scenario.startswith("(c)")
        default_listing = process and delta_datafusion.CHILD_SHARED not in v.scenario
        text = v.scenario.replace(" (RAM)", "").replace(" (query)", "")
        if v.scenario.startswith("(a)"):
            text = f"Delta {text} ≤ {delta_datafusion.WARM_TARGET}x local files"
        elif v.scenario.startswith("(b)"):
            text = f"Delta {text} query ≤ {delta_datafusion.COLD_TARGET}x direct s3fs"
        elif default_listing:
            text = (
                "the same with the default `TIERCACHE_DELTA_LOG_TTL=0`: a LIST of the log at "
                "every open, so the latest commit is always seen (the freshness price; not the "
                "target's configuration)"
            )
        else:
            text = (
                f"Delta (c) new process with a warm Redis (register + selective query) "
                f"≥ {delta_datafusion.PROCESS_TARGET:g}x faster than without "
                "(log listing shared: `TIERCACHE_DELTA_LOG_TTL=60s`)"
            )
        targets.append(
            target(
                key=f"delta-{letter}-{query}" + ("-default" if default_listing else ""),
                scenario="delta",
                text=text,
                measured=f"{delta_datafusion.fmt_ms(v.median_s)} vs "
                f"{delta_datafusion.fmt_ms(v.reference_s)}",
                ratio=v.ratio,
                met=v.met,
                reference=v.reference + (" (÷ this: speed-up)" if process else ""),
                informative=default_listing,
            )
        )
    raw = run.raw()
    data = {
        "verdicts": raw["verdicts"],
        "table": raw["table"],
        "queries": raw["queries"],
        "warm": {k: summary(s.rounds) for k, s in run.warm_result.samples.items()},
        "cold": {
            k: {**summary([r.query_s for r in rs]), "register": summary([r.register_s for r in rs])}
            for k, rs in run.cold_results.items()
        },
        "processes": {
            k: {
                **summary([r.total_s for r in rs]),
                "register": summary([r.register_s for r in rs]),
                "query": summary([r.query_s for r in rs]),
            }
            for k, rs in run.child_results.items()
        },
    }
    return {"data": data, "tables": run.report(), "targets": targets, "notes": []}


# -- block-size sweep (Parquet) -----------------------------------------------------------------


def parquet_sweep(ctx: Context) -> dict[str, Any]:
    """block_size.py's pyarrow workload at every block size of the scaling axis."""
    sz = ctx.sizes
    result = block_size.sweep(
        ctx.server,
        ctx.proxies[STORE],
        rows=sz.sweep_rows,
        rounds=sz.sweep_rounds,
        block_sizes=sz.block_points,
    )
    data = {
        "size": result.size,
        "rows": result.rows,
        "rounds": result.rounds,
        "readers": {
            name: {
                query: {
                    **summary([t for t, _ in values]),
                    "requests": [r for _, r in values],
                }
                for query, values in queries.items()
            }
            for name, queries in result.results.items()
        },
        "origin_bytes": result.origin_bytes,
        "block_sizes": list(sz.block_points),
        "labels": {str(bs): block_size.label(bs) for bs in sz.block_points},
    }
    header = (
        f"Parquet file: {result.size / MIB:.1f} MiB, {result.rows:,} rows, 8 float64 columns, "
        f"5 row groups; {result.rounds} round(s); medians."
    )
    return {
        "data": data,
        "tables": header + "\n\n" + "\n".join(block_size.table_lines(result)) + "\n",
    }
