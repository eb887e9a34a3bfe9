"""Hot and cold read benchmark: tiercache against the floor, the direct read and fsspec's caches.

Every figure is measured in this run, on this machine, and reported as a ratio against a
reference measured alongside it (the machines are shared and noisy):

- **hot** 64 KiB and 4 MiB reads of a 64 MiB object on the S3 server through ``fs.read_range``,
  ``fs.cat_file`` and an open file handle, against the floor (a dict of bytes sliced in this
  process) and against fsspec's own ``blockcache`` and ``simplecache`` warm reads of the same
  data (open+seek+read, and seek+read on a handle kept open);
- **cold** reads through the chain against a real S3 server (moto in a subprocess) behind a
  latency-injecting proxy (default 20 ms to first byte, 100 MB/s per stream, like a real object
  store), against a direct s3fs ``cat_file`` of the same range, with the requests each one sent.

Settings come from ``TIERCACHE_*`` variables (``TIERCACHE_BLOCK_SIZE=256KiB python …`` measures
another block size). Run: ``python benchmarks/hot_read.py`` (``--quick`` for a smoke run,
``--json FILE`` to keep the raw figures, ``--check`` to exit non-zero when a target of the issue
is missed). The Markdown table it prints is what ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fsspec
import s3fs

from harness.context import BUCKET
from harness.fmt import fmt_us
from harness.timing import Sample, measure
from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.parsing import KIB, MIB
from tiercache.testing import HttpFaultProxy, S3Server

OBJECT_BYTES = 64 * MIB


def hot(
    server: S3Server,
    size: int,
    rounds: int,
    ops: int,
    workdir: str,
    *,
    object_bytes: int = OBJECT_BYTES,
) -> dict[str, Sample]:
    """Warm reads of ``size`` bytes at scattered offsets of one object (64 MiB) on the S3 server."""
    data = os.urandom(object_bytes)
    key = f"{uuid.uuid4().hex}.bin"
    server.put_object(BUCKET, key, data)
    path = f"{BUCKET}/{key}"
    options = {**server.storage_options(), "skip_instance_cache": True}
    offsets = [(i * 7_919 * KIB + i * 13) % (object_bytes - size) for i in range(ops)]

    fs = TieredFileSystem(
        target_protocol="s3",
        target_options=options,
        settings=Settings.from_env(memory_bytes=256 * MIB),
        skip_instance_cache=True,
    )
    fs.read_range(path, 0, None)  # warm: every block in RAM
    handle = fs.open(path, "rb")

    block = fsspec.filesystem(
        "blockcache",
        target_protocol="s3",
        target_options=options,
        cache_storage=os.path.join(workdir, "blockcache"),
        skip_instance_cache=True,
    )
    simple = fsspec.filesystem(
        "simplecache",
        target_protocol="s3",
        target_options=options,
        cache_storage=os.path.join(workdir, "simplecache"),
        skip_instance_cache=True,
    )
    for peer in (block, simple):
        with peer.open(path, "rb") as f:  # warm: the whole object in the peer's local cache
            while f.read(4 * MIB):
                pass
    block_handle = block.open(path, "rb")
    simple_handle = simple.open(path, "rb")
    floor = {path: data}

    def open_seek_read(peer: Any) -> Callable[[int], object]:
        def run(offset: int) -> object:
            with peer.open(path, "rb") as f:
                f.seek(offset)
                return f.read(size)

        return run

    def seek_read(f: Any) -> Callable[[int], object]:
        def run(offset: int) -> object:
            f.seek(offset)
            return f.read(size)

        return run

    cases: dict[str, Callable[[int], object]] = {
        "floor: dict slice": lambda o: floor[path][o : o + size],
        "tiercache read_range": lambda o: fs.read_range(path, o, o + size),
        "tiercache cat_file": lambda o: fs.cat_file(path, start=o, end=o + size),
        "tiercache handle seek+read": seek_read(handle),
        "tiercache open+seek+read": open_seek_read(fs),
        "blockcache open+seek+read": open_seek_read(block),
        "blockcache handle seek+read": seek_read(block_handle),
        "simplecache open+seek+read": open_seek_read(simple),
        "simplecache handle seek+read": seek_read(simple_handle),
    }
    for name, fn in cases.items():  # every case must read the right bytes
        assert fn(offsets[1]) == data[offsets[1] : offsets[1] + size], name
    try:
        return measure(cases, offsets, rounds)
    finally:
        for f in (handle, block_handle, simple_handle):
            f.close()
        fs.close()


@dataclass
class Cold:
    name: str
    samples: list[float]
    requests: list[int]


def cold(server: S3Server, rounds: int, delay_s: float, bandwidth: float) -> dict[str, Cold]:
    """Cold reads through the chain vs direct s3fs reads, behind a latency proxy."""
    results: dict[str, Cold] = {}
    with HttpFaultProxy(
        server.endpoint_url, delay_s=delay_s, bandwidth_bytes_per_s=bandwidth
    ) as proxy:
        data = os.urandom(16 * MIB)
        server.put_object(BUCKET, "cold.bin", data)
        options = server.storage_options(proxy.url)
        path = f"{BUCKET}/cold.bin"
        ranges = {
            "4 MiB, block-aligned": (4 * MIB, 8 * MIB),
            "64 KiB inside one block": (5 * MIB + 12_345, 5 * MIB + 12_345 + 64 * KIB),
        }
        settings = Settings.from_env()
        # One s3fs client for both paths: creating a botocore client costs 100+ ms and varies
        # wildly, and "cold" here means a cold *cache* (no blocks, no object info), not a cold
        # client. Each tiercache round builds a new chain over the shared client.
        client = s3fs.S3FileSystem(**options, skip_instance_cache=True)

        def direct(start: int, end: int) -> bytes:
            return bytes(client.cat_file(path, start=start, end=end))

        def chain(start: int, end: int) -> bytes:
            fs = TieredFileSystem(
                fs=client,
                settings=settings,
                tiers=[MemoryTier(settings.memory_bytes)],
                skip_instance_cache=True,
            )
            try:
                return fs.read_range(path, start, end)
            finally:
                fs.close()

        direct(0, 1)  # open the client's connection pool once
        for label, (start, end) in ranges.items():
            for name in ("direct s3fs cat_file", "tiercache cold read_range"):
                results[f"{label}: {name}"] = Cold(f"{label}: {name}", [], [])
            for _ in range(rounds):
                for name, fn in (
                    ("direct s3fs cat_file", direct),
                    ("tiercache cold read_range", chain),
                ):
                    proxy.reset_counters()
                    t0 = time.perf_counter()
                    got = fn(start, end)
                    elapsed = time.perf_counter() - t0
                    assert got == data[start:end], name
                    results[f"{label}: {name}"].samples.append(elapsed)
                    results[f"{label}: {name}"].requests.append(proxy.requests())
    return results


def report_hot(hots: dict[int, dict[str, Sample]]) -> tuple[list[str], list[str]]:
    """The hot-read tables (one per read size), and the targets they miss."""
    lines: list[str] = []
    misses: list[str] = []
    for size, samples in hots.items():
        floor = samples["floor: dict slice"].median
        block = samples["blockcache open+seek+read"].median
        lines += [
            f"#### Hot {size // KIB:,} KiB reads (warm caches, S3 server target)",
            "",
            "| case | median | spread (±IQR/2) | x floor | blockcache open+seek+read ÷ case |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in samples.values():
            lines.append(
                f"| {s.name} | {fmt_us(s.median)} | {s.spread:.0%} | {s.median / floor:.2f} "
                f"| {block / s.median:.1f} |"
            )
        lines.append("")
        if size == 64 * KIB:
            rr = samples["tiercache read_range"].median
            if rr / floor > 3.0:
                misses.append(
                    f"hot 64 KiB read_range is {rr / floor:.2f}x the floor (target <= 3x)"
                )
            if block / rr < 5.0:
                misses.append(
                    f"hot 64 KiB read_range is only {block / rr:.1f}x faster than blockcache"
                )
    return lines, misses


def report_cold(colds: dict[str, Cold]) -> tuple[list[str], list[str]]:
    """The cold-read table, and the targets it misses."""
    lines: list[str] = []
    misses: list[str] = []
    lines += [
        "#### Cold reads against the S3 server behind the latency proxy",
        "",
        "| range: path | median | spread (±IQR/2) | requests | ÷ direct |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, c in colds.items():
        label = key.split(":")[0]
        direct = statistics.median(colds[f"{label}: direct s3fs cat_file"].samples)
        med = statistics.median(c.samples)
        s = Sample(key, c.samples)
        lines.append(
            f"| {key} | {fmt_us(med)} | {s.spread:.0%} | {max(c.requests)} | {med / direct:.3f} |"
        )
    lines.append("")
    aligned = "4 MiB, block-aligned"
    chain = colds[f"{aligned}: tiercache cold read_range"]
    direct_c = colds[f"{aligned}: direct s3fs cat_file"]
    ratio = statistics.median(chain.samples) / statistics.median(direct_c.samples)
    if ratio > 1.05:
        misses.append(f"cold aligned read is {ratio:.3f}x the direct read (target <= 1.05x)")
    if max(chain.requests) > max(direct_c.requests):
        misses.append("cold read sent more requests than the direct read")
    return lines, misses


def report(hots: dict[int, dict[str, Sample]], colds: dict[str, Cold]) -> tuple[str, list[str]]:
    hot_lines, hot_misses = report_hot(hots)
    cold_lines, cold_misses = report_cold(colds)
    return "\n".join(hot_lines + cold_lines), hot_misses + cold_misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per hot case (default 15)")
    parser.add_argument("--cold-rounds", type=int, default=15, help="rounds per cold case")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="proxy first-byte delay")
    parser.add_argument("--mbps", type=float, default=100.0, help="proxy bandwidth, MB/s")
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds, cold_rounds, ops = args.rounds, args.cold_rounds, 2000
    if args.quick:
        rounds, cold_rounds, ops = 3, 3, 200
    workdir = tempfile.mkdtemp(prefix="tiercache-bench-")
    try:
        with S3Server() as server:
            server.create_bucket(BUCKET)
            hots = {size: hot(server, size, rounds, ops if size < MIB else ops // 10, workdir)
                    for size in (64 * KIB, 4 * MIB)}  # fmt: skip
            colds = cold(server, cold_rounds, args.delay_ms / 1000, args.mbps * 1e6)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table, misses = report(hots, colds)
    print(f"python {sys.version.split()[0]}, fsspec {fsspec.__version__}, s3fs {s3fs.__version__}, "
          f"{os.cpu_count()} cpus; block size {Settings.from_env().block_size_bytes // KIB} KiB; "
          f"hot rounds {rounds}, cold rounds {cold_rounds}, proxy "
          f"{args.delay_ms:g} ms + {args.mbps:g} MB/s\n")  # fmt: skip
    print(table)
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    if not misses:
        print("All targets met.")
    if args.json:
        raw = {
            "hot": {str(k): {n: s.rounds for n, s in v.items()} for k, v in hots.items()},
            "cold": {k: {"seconds": c.samples, "requests": c.requests} for k, c in colds.items()},
        }
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
