"""Redis tier benchmark: a cold pod reading 50 Parquet footers, with and without a warm Redis.

What a query planner does on a pod that just started: open each Parquet file of a table and read
its footer (``pyarrow.parquet.ParquetFile(path, filesystem=fs).metadata``), which costs pyarrow an
``isfile``/``info`` of the object and a read of its last 64 KiB. Every case reads the same 50
files (real Parquet files written by pyarrow, 1.3-1.7 MiB each, 4 row groups, Spark-style names
with a UUID) on one S3 server (moto in a subprocess) behind a latency proxy (default 20 ms to
first byte, 100 MB/s per stream, like a real object store), and checks that the footer it got is
exactly the one written (``FileMetaData.equals``). Cases, every round:

- **direct s3fs**: pyarrow with the s3fs filesystem, no tiercache (context);
- **no Redis**: a cold pod, RAM tier only (``redis_url=None``);
- **warm-up**: a first pod with Redis reads the footers, then waits for its background fills, so
  that Redis holds the object info and the footer blocks;
- **with Redis**: a *new* cold pod (empty RAM, no disk, same Redis and prefix) reads them, then
  reads them again (the "same pod again" row: RAM hits, the floor of pyarrow's own work).

Every round uses a fresh Redis key prefix, so the warm-up starts from an empty Redis, and fresh
pods: each pod is a ``TieredFileSystem`` with its own chain (``default_tiers(settings)``). All
pods share one s3fs client, whose listing cache is cleared before every case: building a botocore
client costs 100+ ms and varies wildly, and "cold" here means a cold *cache*, not a cold client.
The order of the direct and no-Redis cases and the Redis pair is shuffled every round (seeded).

Measured for each case: wall time of the 50 footer reads (pod construction excluded), the
requests the proxy saw (GET and HEAD), ``stats()["origin"]["requests"]``, Redis hits and
``info.shared_hits``. Targets (issue "Redis tier"): the no-Redis pod sends at least 3x as many
origin requests as the pod with a warm Redis, and takes more wall time.

Settings come from ``TIERCACHE_*`` variables (the Redis URL and prefix, and the disk directory,
are set by the program). Run: ``python benchmarks/redis_footers.py`` (``--quick`` for a smoke
run, ``--json FILE`` to keep the raw figures, ``--check`` to exit non-zero when a target is
missed). The Markdown it prints is what ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import redis
import s3fs

import tiercache
from harness.context import BUCKET
from harness.fmt import fmt_count
from harness.proxy import CountingProxy
from harness.timing import spread
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.parsing import KIB, MIB
from tiercache.testing import HttpFaultProxy, RedisServer, S3Server

#: The HMAC key the benchmark pods share (a Redis tier needs one; any 16+ characters).
HMAC_KEY = "tiercache-benchmark-hmac-key-0123"

TABLE = f"{BUCKET}/events"
ROW_GROUPS = 4
SEED = 20261124

DIRECT = "direct s3fs (no tiercache)"
NO_REDIS = "tiercache, no Redis"
WARM_UP = "tiercache warm-up pod (Redis empty)"
WITH_REDIS = "tiercache, warm Redis"
HOT = "· same pod again (RAM hits)"
CASES = (DIRECT, NO_REDIS, WARM_UP, WITH_REDIS, HOT)


@dataclass
class Written:
    """One Parquet file on the S3 server and the footer written into it."""

    path: str
    size: int
    metadata: Any  # pyarrow.parquet.FileMetaData


@dataclass
class Round:
    """What one case did in one round."""

    seconds: float
    get: int
    head: int
    other: int
    origin_requests: int | None = None  # fs.stats()["origin"]["requests"] (tiercache pods)
    origin_bytes: int | None = None
    redis_hits: int | None = None
    redis_misses: int | None = None
    redis_bytes_read: int | None = None
    redis_bytes_written: int | None = None
    redis_errors: int | None = None  # errors + timeouts + rejected
    shared_info_hits: int | None = None
    info_origin: int | None = None
    fills: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return self.get + self.head + self.other


def make_table(rows: int, rng: random.Random) -> pa.Table:
    """A table of incompressible columns (random int64 and float64) and a dictionary column."""

    def random_column(kind: pa.DataType) -> pa.Array:
        return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(rng.randbytes(8 * rows))])

    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "ts": random_column(pa.int64()),
            "price": random_column(pa.float64()),
            "qty": random_column(pa.int64()),
            "region": pa.array([f"region-{i % 7}" for i in range(rows)]).dictionary_encode(),
        }
    )


def write_files(server: S3Server, count: int) -> list[Written]:
    """Write ``count`` Parquet files of 40,000 + 200·i rows (4 row groups) to the S3 server."""
    rng = random.Random(SEED)
    written: list[Written] = []
    for i in range(count):
        rows = 40_000 + 200 * i
        buffer = io.BytesIO()
        pq.write_table(make_table(rows, rng), buffer, row_group_size=rows // ROW_GROUPS)
        data = buffer.getvalue()
        name = f"part-{i:05d}-{uuid.UUID(int=rng.getrandbits(128), version=4)}-c000.snappy.parquet"
        server.put_object(BUCKET, f"events/{name}", data)
        metadata = pq.read_metadata(io.BytesIO(data))
        assert metadata.num_rows == rows
        assert metadata.num_row_groups == ROW_GROUPS
        written.append(Written(f"{TABLE}/{name}", len(data), metadata))
    return written


def read_footers(fs: Any, files: list[Written]) -> tuple[float, list[Any]]:
    """Read every file's footer as a planner does; return the wall time and the footers."""
    footers = []
    start = time.perf_counter()
    for f in files:
        with pq.ParquetFile(f.path, filesystem=fs) as parquet:
            footers.append(parquet.metadata)
    return time.perf_counter() - start, footers


def check_footers(case: str, files: list[Written], footers: list[Any]) -> None:
    """Every case must have read exactly the footer that was written (rows, schema, stats...)."""
    for f, got in zip(files, footers, strict=True):
        assert got.num_rows == f.metadata.num_rows, (case, f.path)
        assert got.schema.equals(f.metadata.schema), (case, f.path)
        assert got.equals(f.metadata), (case, f.path)


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The counters of a stats snapshot minus those of an earlier one (nested dicts)."""
    out: dict[str, Any] = {}
    for name, value in after.items():
        if isinstance(value, dict):
            out[name] = _delta(value, before.get(name, {}))
        elif isinstance(value, int) and not isinstance(value, bool):
            out[name] = value - before.get(name, 0)
    return out


def _measure(
    fs: TieredFileSystem,
    proxy: CountingProxy,
    files: list[Written],
    case: str,
    *,
    wait_fills: bool = False,
) -> Round:
    """Read the footers once through ``fs``; the proxy's and the chain's counts of that read."""
    before = fs.stats()
    proxy.reset_counters()
    seconds, footers = read_footers(fs, files)
    get, head, total = proxy.requests("GET"), proxy.requests("HEAD"), proxy.requests()
    if wait_fills:
        fs.chain.fills.join()  # Redis now holds what this pod fetched
    stats = _delta(fs.stats(), before)
    check_footers(case, files, footers)
    result = Round(
        seconds=seconds,
        get=get,
        head=head,
        other=total - get - head,
        origin_requests=stats["origin"]["requests"],
        origin_bytes=stats["origin"]["bytes"],
        shared_info_hits=stats["info"]["shared_hits"],
        info_origin=stats["info"]["origin"],
        fills=dict(stats["fills"]),
    )
    redis_tier = stats["tiers"].get("redis")
    if redis_tier is not None:
        result.redis_hits = redis_tier["hits"]
        result.redis_misses = redis_tier["misses"]
        result.redis_bytes_read = redis_tier["bytes_read"]
        result.redis_bytes_written = redis_tier["bytes_written"]
        result.redis_errors = redis_tier["errors"] + redis_tier["timeouts"] + redis_tier["rejected"]
    return result


def tiercache_round(
    proxy: CountingProxy,
    client: s3fs.S3FileSystem,
    settings: Settings,
    files: list[Written],
    case: str,
    *,
    wait_fills: bool = False,
    again: str | None = None,
) -> list[Round]:
    """A new pod with its own chain reads the footers (and, with ``again``, reads them again)."""
    client.invalidate_cache()
    fs = TieredFileSystem(
        fs=client, settings=settings, tiers=default_tiers(settings), skip_instance_cache=True
    )
    try:
        rounds = [_measure(fs, proxy, files, case, wait_fills=wait_fills)]
        if again is not None:
            rounds.append(_measure(fs, proxy, files, again))
        return rounds
    finally:
        fs.close()


def direct_round(proxy: CountingProxy, client: s3fs.S3FileSystem, files: list[Written]) -> Round:
    """pyarrow with the s3fs filesystem itself (its listing cache cleared first)."""
    client.invalidate_cache()
    proxy.reset_counters()
    seconds, footers = read_footers(client, files)
    get, head, total = proxy.requests("GET"), proxy.requests("HEAD"), proxy.requests()
    check_footers(DIRECT, files, footers)
    return Round(seconds=seconds, get=get, head=head, other=total - get - head)


def run(
    server: S3Server,
    proxy: CountingProxy,
    redis_server: RedisServer,
    base: Settings,
    *,
    files: list[Written],
    rounds: int,
) -> tuple[dict[str, list[Round]], list[tuple[int, int]]]:
    """Run every case ``rounds`` times; return the rounds and Redis's keys and bytes per round."""
    client = s3fs.S3FileSystem(**server.storage_options(proxy.url), skip_instance_cache=True)
    results: dict[str, list[Round]] = {case: [] for case in CASES}
    redis_memory: list[tuple[int, int]] = []
    no_redis = dataclasses.replace(base, redis_url=None)

    def redis_pair() -> None:
        prefix = f"tcbench:{uuid.uuid4().hex[:12]}:"
        settings = dataclasses.replace(
            base, redis_url=redis_server.url, redis_prefix=prefix, redis_hmac_key=HMAC_KEY
        )
        (warm,) = tiercache_round(proxy, client, settings, files, WARM_UP, wait_fills=True)
        results[WARM_UP].append(warm)
        redis_memory.append(_redis_memory(redis_server, prefix))
        cold, hot = tiercache_round(proxy, client, settings, files, WITH_REDIS, again=HOT)
        results[WITH_REDIS].append(cold)
        results[HOT].append(hot)

    steps: list[Callable[[], None]] = [
        lambda: results[DIRECT].append(direct_round(proxy, client, files)),
        lambda: results[NO_REDIS].extend(tiercache_round(proxy, client, no_redis, files, NO_REDIS)),
        redis_pair,
    ]
    # Not counted: open the client's connections, and let moto and the proxy warm up.
    read_footers(client, files[:5])
    shuffle = random.Random(SEED).shuffle
    for _ in range(rounds):
        shuffle(steps)
        for step in steps:
            step()
    return results, redis_memory


def _redis_memory(redis_server: RedisServer, prefix: str) -> tuple[int, int]:
    """The keys under ``prefix`` and the bytes Redis uses for them (``MEMORY USAGE``)."""
    client: redis.Redis = redis_server.client()
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        used = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
        return len(keys), used
    finally:
        client.close()


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.1f} ms"


def _opt(rounds: list[Round], name: str) -> list[int]:
    return [v for r in rounds if (v := getattr(r, name)) is not None]


def report(
    results: dict[str, list[Round]], files: list[Written], redis_memory: list[tuple[int, int]]
) -> tuple[str, list[str], dict[str, float]]:
    """The Markdown tables, the targets missed, and the headline figures."""
    count = len(files)
    base = statistics.median(r.seconds for r in results[NO_REDIS])
    lines = [
        f"#### Reading the footers of {count} Parquet files on a cold pod",
        "",
        "| case | wall (median) | spread (±IQR/2) | per footer | ÷ no Redis | proxy GET | "
        "proxy HEAD | origin requests (stats) | Redis hits | info shared hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        rs = results[case]
        secs = [r.seconds for r in rs]
        med = statistics.median(secs)
        dash = "—"
        origin = _opt(rs, "origin_requests")
        hits = _opt(rs, "redis_hits")
        shared = _opt(rs, "shared_info_hits")
        lines.append(
            f"| {case} | {fmt_ms(med)} | {spread(secs):.0%} | {fmt_ms(med / count)} "
            f"| {med / base:.3f} | {fmt_count([r.get for r in rs])} "
            f"| {fmt_count([r.head for r in rs])} "
            f"| {fmt_count(origin) if origin else dash} | {fmt_count(hits) if hits else dash} "
            f"| {fmt_count(shared) if shared else dash} |"
        )
    lines.append("")
    warm = results[WARM_UP]
    redis_rounds = results[WITH_REDIS]
    written = statistics.median(_opt(warm, "redis_bytes_written"))
    read = statistics.median(_opt(redis_rounds, "redis_bytes_read"))
    fills_dropped = sum(r.fills.get("dropped", 0) for r in warm)
    fills_failed = sum(r.fills.get("failed", 0) for r in warm)
    errors = sum(_opt(warm, "redis_errors")) + sum(_opt(redis_rounds, "redis_errors"))
    sizes = [f.size for f in files]
    footer = statistics.median(f.metadata.serialized_size for f in files)
    keys = [k for k, _ in redis_memory]
    used = statistics.median(b for _, b in redis_memory)
    lines += [
        f"- Files: {count} Parquet files of {min(sizes) / MIB:.2f}-{max(sizes) / MIB:.2f} MiB "
        f"({sum(sizes) / MIB:.1f} MiB in all), {ROW_GROUPS} row groups each; their footers "
        f"(Thrift metadata) are {footer:,.0f} bytes.",
        f"- Redis after the warm-up: {fmt_count(keys)} keys, {written / MIB:.2f} MiB of blocks "
        f"written ({written / count / KIB:,.0f} KiB per file, {written / count / footer:,.0f}x "
        f"the footer), {used / MIB:.2f} MiB used (`MEMORY USAGE`); fills dropped "
        f"{fills_dropped}, failed {fills_failed}.",
        f"- Pod with a warm Redis: {read / MIB:.2f} MiB read from Redis, "
        f"{statistics.median(_opt(redis_rounds, 'origin_bytes')):,.0f} bytes from the origin; "
        f"Redis errors, timeouts and rejections over every round: {errors}.",
        "",
    ]
    misses: list[str] = []
    without = [r.requests for r in results[NO_REDIS]]
    with_redis = [r.requests for r in redis_rounds]
    med_without, med_with = statistics.median(without), statistics.median(with_redis)
    ratio = med_without / med_with if med_with else float("inf")
    if ratio < 3.0:
        misses.append(
            f"origin requests: no Redis {med_without:g}, warm Redis {med_with:g} "
            f"({ratio:.2f}x fewer; target >= 3x)"
        )
    for rs in (results[NO_REDIS], redis_rounds):  # the proxy and the chain must agree
        for r in rs:
            if r.origin_requests != r.requests:
                misses.append(
                    f"proxy saw {r.requests} requests, stats() counted {r.origin_requests}"
                )
    wall_with = statistics.median(r.seconds for r in redis_rounds)
    if wall_with >= base:
        misses.append(
            f"wall time with Redis {fmt_ms(wall_with)} is not below {fmt_ms(base)} without"
        )
    if not all(r.redis_hits for r in redis_rounds):
        misses.append("the pod with a warm Redis read nothing from Redis")
    headline = {
        "requests_no_redis": med_without,
        "requests_with_redis": med_with,
        "request_ratio": ratio,
        "wall_no_redis_s": base,
        "wall_with_redis_s": wall_with,
        "wall_ratio": base / wall_with,
    }
    return "\n".join(lines), misses, headline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 20 files: a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every case (default 5)")
    parser.add_argument("--files", type=int, default=50, help="Parquet files (default 50)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="proxy first-byte delay")
    parser.add_argument("--mbps", type=float, default=100.0, help="proxy bandwidth, MB/s")
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds, count = args.rounds, args.files
    if args.quick:
        rounds, count = 2, 20
    # From the environment, but never a disk tier (a cold pod has an empty disk, and this one has
    # none) and never a Redis of the machine: the program starts its own.
    base = Settings.from_env(disk_dir=None, redis_url=None)
    started = time.perf_counter()
    with (
        S3Server() as server,
        HttpFaultProxy(
            server.endpoint_url,
            delay_s=args.delay_ms / 1000,
            bandwidth_bytes_per_s=args.mbps * 1e6,
        ) as proxy,
        RedisServer() as redis_server,
    ):
        server.create_bucket(BUCKET)
        files = write_files(server, count)
        results, redis_memory = run(server, proxy, redis_server, base, files=files, rounds=rounds)
    table, misses, headline = report(results, files, redis_memory)
    print(
        f"python {sys.version.split()[0]}, tiercache {tiercache.__version__}, "
        f"fsspec {fsspec.__version__}, s3fs {s3fs.__version__}, pyarrow {pa.__version__}, "
        f"redis-py {redis.__version__}, {os.cpu_count()} cpus; block size "
        f"{base.block_size_bytes // KIB:,} KiB, Redis timeout {base.redis_timeout_s * 1e3:g} ms, "
        f"info TTL {base.info_ttl_s:g} s; {count} files, {rounds} rounds, proxy "
        f"{args.delay_ms:g} ms + {args.mbps:g} MB/s; one s3fs client shared by every case; "
        f"took {time.perf_counter() - started:.0f} s\n"
    )
    print(table)
    print(
        f"Origin requests, no Redis ÷ warm Redis: {headline['requests_no_redis']:g} ÷ "
        f"{headline['requests_with_redis']:g} = "
        + (
            "∞ (none left)"
            if headline["requests_with_redis"] == 0
            else f"{headline['request_ratio']:.1f}x"
        )
        + f"; wall time {fmt_ms(headline['wall_no_redis_s'])} ÷ "
        f"{fmt_ms(headline['wall_with_redis_s'])} = {headline['wall_ratio']:.1f}x\n"
    )
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    if not misses:
        print("All targets met.")
    if args.json:
        raw = {
            "settings": {
                "block_size": base.block_size_bytes,
                "redis_timeout_s": base.redis_timeout_s,
                "files": count,
                "rounds": rounds,
                "delay_ms": args.delay_ms,
                "mbps": args.mbps,
            },
            "files": [{"path": f.path, "size": f.size} for f in files],
            "redis_keys_and_bytes": redis_memory,
            "headline": {k: (None if v == float("inf") else v) for k, v in headline.items()},
            "cases": {
                case: [{**vars(r), "requests": r.requests} for r in rs]
                for case, rs in results.items()
            },
        }
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
