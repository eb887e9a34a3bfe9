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
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

from harness.context import BUCKET
from harness.proxy import CountingProxy
from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.parsing import KIB, MIB
from tiercache.testing import HttpFaultProxy, S3Server

BLOCK_SIZES = (256 * KIB, 1 * MIB, 4 * MIB, 16 * MIB)
QUERIES = {"cold": ["c0", "c1", "c2"], "overlap": ["c2", "c5", "c6"], "hot": ["c0", "c1", "c2"]}


def make_table(rows: int) -> pa.Table:
    import random

    rng = random.Random(7)
    return pa.table({f"c{i}": pa.array([rng.random() for _ in range(rows)]) for i in range(8)})


def run(
    reader: Any, path: str, proxy: CountingProxy, table: pa.Table
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


@dataclass
class Sweep:
    """What :func:`sweep` measured: per reader and query, (seconds, proxy requests) per round."""

    rows: int
    size: int
    rounds: int
    results: dict[str, dict[str, list[tuple[float, int]]]] = field(default_factory=dict)
    origin_bytes: dict[str, list[int]] = field(default_factory=dict)


def sweep(
    server: S3Server,
    proxy: CountingProxy,
    *,
    rows: int,
    rounds: int,
    block_sizes: tuple[int, ...] = BLOCK_SIZES,
    key: str = "sweep.parquet",
) -> Sweep:
    """Write the Parquet file (bucket :data:`~harness.context.BUCKET` must exist), then run
    every reader ``rounds`` times.

    Readers: direct s3fs, then tiercache with each of ``block_sizes`` (a new RAM-only chain per
    round over one shared s3fs client), all through ``proxy``.
    """
    table = make_table(rows)
    client = s3fs.S3FileSystem(**server.storage_options(proxy.url), skip_instance_cache=True)
    path = f"{BUCKET}/{key}"
    with client.open(path, "wb") as f:
        pq.write_table(table, f, row_group_size=rows // 5)
    out = Sweep(rows=rows, size=client.info(path)["size"], rounds=rounds)
    for _ in range(rounds):
        cases: list[tuple[str, Any]] = [("direct s3fs", None)]
        cases += [(label(bs), bs) for bs in block_sizes]
        for name, block_size in cases:
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
                out.results.setdefault(name, {}).setdefault(query, []).append(value)
            if block_size is not None:
                out.origin_bytes.setdefault(name, []).append(reader.stats()["origin"]["bytes"])
                reader.close()
    return out


def label(block_size: int) -> str:
    """The row label of a block size."""
    return f"tiercache {block_size // KIB:,} KiB blocks"


def table_lines(result: Sweep) -> list[str]:
    """The Markdown table of a sweep (medians)."""
    lines = [
        "| reader | cold | overlap | hot | requests (cold/overlap/hot) | origin MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, queries in result.results.items():
        times = [statistics.median(t for t, _ in queries[q]) for q in QUERIES]
        requests = "/".join(str(max(r for _, r in queries[q])) for q in QUERIES)
        fetched = result.origin_bytes.get(name)
        mib = f"{statistics.median(fetched) / MIB:.1f}" if fetched else "—"
        cells = " | ".join(f"{t * 1000:,.1f} ms" for t in times)
        lines.append(f"| {name} | {cells} | {requests} | {mib} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, a smaller file")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    rows = 100_000 if args.quick else 500_000
    with (
        S3Server() as server,
        HttpFaultProxy(server.endpoint_url, delay_s=0.02, bandwidth_bytes_per_s=100e6) as proxy,
    ):
        server.create_bucket(BUCKET)
        result = sweep(server, proxy, rows=rows, rounds=rounds)

    print(
        f"Parquet file: {result.size / MIB:.1f} MiB, {rows:,} rows, 8 columns, 5 row groups; "
        f"proxy 20 ms + 100 MB/s; {rounds} round(s); medians.\n"
    )
    print("\n".join(table_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
