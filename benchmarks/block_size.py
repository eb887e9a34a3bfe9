"""Block-size sweep: which ``TIERCACHE_BLOCK_SIZE`` serves a pyarrow workload best.

A real Parquet file (8 float64 columns, 5 row groups) on the S3 server behind the latency proxy
(20 ms to first byte, 100 MB/s), read with ``pyarrow.parquet.read_table`` through tiercache at
several block sizes, against the same reads straight through s3fs:

1. cold: a projection of three columns, nothing cached;
2. overlap: another projection sharing one column with the first (partly warm);
3. hot: the first projection again.

For each it reports the median time and the bytes and requests the origin saw. Smaller blocks
fetch fewer bytes the reader did not ask for; larger blocks cost fewer lookups per read. The
default is chosen from these figures (``docs/benchmarks.md``).

Run: ``python benchmarks/block_size.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.testing import HttpFaultProxy, S3Server

KIB = 1024
MIB = 1024 * KIB
BLOCK_SIZES = (256 * KIB, 1 * MIB, 4 * MIB, 16 * MIB)
QUERIES = {"cold": ["c0", "c1", "c2"], "overlap": ["c2", "c5", "c6"], "hot": ["c0", "c1", "c2"]}


def make_table(rows: int) -> pa.Table:
    import random

    rng = random.Random(7)
    return pa.table({f"c{i}": pa.array([rng.random() for _ in range(rows)]) for i in range(8)})


def run(
    reader: Any, path: str, proxy: HttpFaultProxy, table: pa.Table
) -> dict[str, tuple[float, int]]:
    """Run the three queries; return seconds and proxy requests of each."""
    out: dict[str, tuple[float, int]] = {}
    for name, columns in QUERIES.items():
        proxy.reset_counters()
        start = time.perf_counter()
        got = pq.read_table(path, filesystem=reader, columns=columns)
        elapsed = time.perf_counter() - start
        assert got.equals(table.select(columns)), name
        out[name] = (elapsed, proxy.requests())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, a smaller file")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    rows = 100_000 if args.quick else 500_000
    table = make_table(rows)
    results: dict[str, dict[str, list[tuple[float, int]]]] = {}
    origin_bytes: dict[str, list[int]] = {}
    with (
        S3Server() as server,
        HttpFaultProxy(server.endpoint_url, delay_s=0.02, bandwidth_bytes_per_s=100e6) as proxy,
    ):
        server.create_bucket("bench")
        client = s3fs.S3FileSystem(**server.storage_options(proxy.url), skip_instance_cache=True)
        path = "bench/sweep.parquet"
        with client.open(path, "wb") as f:
            pq.write_table(table, f, row_group_size=rows // 5)
        size = client.info(path)["size"]
        for _ in range(rounds):
            cases: list[tuple[str, Any]] = [("direct s3fs", None)]
            cases += [(f"tiercache {bs // KIB:,} KiB blocks", bs) for bs in BLOCK_SIZES]
            for label, block_size in cases:
                if block_size is None:
                    reader: Any = s3fs.S3FileSystem(
                        **server.storage_options(proxy.url), skip_instance_cache=True
                    )
                else:
                    settings = Settings(block_size_bytes=block_size)
                    reader = TieredFileSystem(
                        fs=client,
                        settings=settings,
                        tiers=[MemoryTier(settings.memory_bytes)],
                        skip_instance_cache=True,
                    )
                figures = run(reader, path, proxy, table)
                for query, value in figures.items():
                    results.setdefault(label, {}).setdefault(query, []).append(value)
                if block_size is not None:
                    origin_bytes.setdefault(label, []).append(reader.stats()["origin"]["bytes"])
                    reader.close()

    print(
        f"Parquet file: {size / MIB:.1f} MiB, {rows:,} rows, 8 columns, 5 row groups; "
        f"proxy 20 ms + 100 MB/s; {rounds} round(s); medians.\n"
    )
    print("| reader | cold | overlap | hot | requests (cold/overlap/hot) | origin MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, queries in results.items():
        times = [statistics.median(t for t, _ in queries[q]) for q in QUERIES]
        requests = "/".join(str(max(r for _, r in queries[q])) for q in QUERIES)
        fetched = origin_bytes.get(label)
        mib = f"{statistics.median(fetched) / MIB:.1f}" if fetched else "—"
        cells = " | ".join(f"{t * 1000:,.1f} ms" for t in times)
        print(f"| {label} | {cells} | {requests} | {mib} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
