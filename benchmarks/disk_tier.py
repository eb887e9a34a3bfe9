"""Disk tier benchmark: a warm 1 MiB read against a local file, and the eviction policies.

Every figure is measured in this run, on this machine, against a reference measured alongside it
(the machines are shared and noisy):

1. **Warm 1 MiB reads.** The same bytes (64 MiB of random data) as a local file and as 1 MiB
   blocks in a :class:`~tiercache.DiskTier`, both read once so that the OS page cache holds them.
   Reads of 1 MiB at random block-aligned offsets, case order shuffled every round, against the
   reference: fsspec's ``file`` filesystem ``cat_file`` of the same range. Cases: ``DiskTier.get``
   called directly, and ``TieredFileSystem.read_range`` with the RAM tier off (the chain calls the
   disk tier under its guard, on a worker thread). Informative rows split a disk-tier read into
   its parts: the sqlite lookup, the value-file read, the checksum, the guard hop.
2. **Eviction policies.** For each diskcache policy, a fresh tier whose capacity holds about 20%
   of the working set, driven by a Zipf-like stream of 64 KiB block requests (a miss is followed
   by a ``put``, as the chain's fill does): hit ratio, ``get`` and ``put`` latency, total time and
   the bytes the cache ends up using, on a stationary stream and on one whose popular keys change
   halfway. The reference for each hit ratio is an exact in-process simulation of the same policy
   with as many block slots as the capacity holds.

Run: ``python benchmarks/disk_tier.py`` (``--quick`` for a smoke run, ``--json FILE`` to keep the
raw figures, ``--check`` to exit non-zero when the 1 MiB read target of the issue is missed). The
Markdown tables it prints are what ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import diskcache
import fsspec

import tiercache
from tiercache import BlockKey, DiskTier, Settings, TieredFileSystem
from tiercache.framing import (
    ALGORITHM_NAMES,
    CRC32,
    DEFAULT_ALGORITHM,
    HEADER_BYTES,
    header,
    parse_header,
    verify,
)

KIB = 1024
MIB = 1024 * KIB
TARGET_RATIO = 2.0  # issue: a warm disk-tier 1 MiB read <= 2x the local-file read
REFERENCE = "local file: fsspec `file` cat_file"
DIRECT = "DiskTier.get"
CHAIN = "TieredFileSystem.read_range (disk tier only)"
POLICIES = ("least-recently-stored", "least-recently-used", "least-frequently-used", "none")


@dataclass
class Sample:
    """Per-operation latency of one case, over repeated rounds (seconds)."""

    name: str
    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.rounds) < 4:
            return 0.0
        q = statistics.quantiles(self.rounds, n=4)
        return (q[2] - q[0]) / 2 / self.median


def measure(
    cases: dict[str, Callable[[int], object]], offsets: list[int], rounds: int
) -> dict[str, Sample]:
    """Time every case over ``offsets``, interleaving the cases round by round.

    The order of the cases is shuffled every round (seeded), so that no case always runs right
    after another that warmed the CPU caches with the same bytes.
    """
    samples = {name: Sample(name, []) for name in cases}
    for fn in cases.values():  # warm up
        for offset in offsets[:20]:
            fn(offset)
    order = list(cases.items())
    shuffle = random.Random(20261124).shuffle
    for _ in range(rounds):
        shuffle(order)
        for name, fn in order:
            start = time.perf_counter()
            for offset in offsets:
                fn(offset)
            samples[name].rounds.append((time.perf_counter() - start) / len(offsets))
    return samples


# -- part 1: warm 1 MiB reads ------------------------------------------------------------------


@dataclass
class WarmResult:
    samples: dict[str, Sample]
    chain_reads: int  # reads of the chain case while timed (warm-up included)
    chain_disk_hits: int  # of those, blocks the disk tier served
    chain_origin_requests: int  # requests the chain sent to the local file while timed
    chain_disk_timeouts: int


def warm_read(workdir: Path, object_bytes: int, rounds: int, ops: int) -> WarmResult:
    """Warm 1 MiB reads: local file vs ``DiskTier.get`` vs the chain with only the disk tier."""
    blocks = object_bytes // MIB
    data = os.urandom(object_bytes)
    path = str(workdir / "object.bin")
    with open(path, "wb") as f:
        f.write(data)
    local = fsspec.filesystem("file")

    tier = DiskTier(workdir / "disk", capacity_bytes=4 * object_bytes)
    keys = [BlockKey("bench", "/obj", "v1", MIB, i) for i in range(blocks)]
    for i, key in enumerate(keys):
        tier.put(key, data[i * MIB : (i + 1) * MIB])
    cache: Any = tier._cache  # diskcache.Cache, for the breakdown rows only
    value_files: list[str] = []
    for key in keys:
        with cache.get(key.digest(), read=True, retry=False) as handle:
            value_files.append(handle.name)

    # The chain as a reader sees it: RAM tier off, the same disk tier, the local file as target.
    fs = TieredFileSystem(
        fs=local,
        settings=Settings(memory_bytes=0, block_size_bytes=MIB),
        tiers=[tier],
        skip_instance_cache=True,
    )
    try:
        assert fs.read_range(path, 0, None) == data  # cold: from the file, fills the disk tier
        fs.chain.fills.join()
        before = fs.chain.stats()
        for i in range(blocks):  # warm both: every block read once from the page cache
            o = i * MIB
            assert local.cat_file(path, start=o, end=o + MIB) == data[o : o + MIB]
            assert tier.get(keys[i]) == data[o : o + MIB]
            assert fs.read_range(path, o, o + MIB) == data[o : o + MIB], "chain"
        after = fs.chain.stats()
        assert after["origin"]["requests"] == before["origin"]["requests"], "chain missed disk"
        assert after["tiers"]["disk"]["hits"] - before["tiers"]["disk"]["hits"] == blocks

        guard = fs.chain.slots[0].guard
        assert guard is not None, "the disk tier runs under a guard"
        block = data[:MIB]
        algorithm = ALGORITHM_NAMES[DEFAULT_ALGORITHM]
        _, _, expected = parse_header(keys[0], header(keys[0], block))
        crc = zlib.crc32(block)

        def lookup(o: int) -> object:
            cache.get(keys[o // MIB].digest(), read=True, retry=False).close()
            return None

        def value_file(o: int) -> bytes:
            with open(value_files[o // MIB], "rb") as f:  # as DiskTier._unframe reads it
                f.read(HEADER_BYTES)
                return f.read(MIB + 1)

        def plain_read(o: int) -> bytes:
            with open(path, "rb") as f:
                f.seek(o)
                return f.read(MIB)

        cases: dict[str, Callable[[int], object]] = {
            REFERENCE: lambda o: local.cat_file(path, start=o, end=o + MIB),
            DIRECT: lambda o: tier.get(keys[o // MIB]),
            CHAIN: lambda o: fs.read_range(path, o, o + MIB),
            "local file: plain open+seek+read": plain_read,
            "· sqlite lookup (diskcache get, read=True, + close)": lookup,
            "· value file open + header + payload read": value_file,
            f"· checksum alone: {algorithm} of 1 MiB (framing.verify)": lambda o: verify(
                DEFAULT_ALGORITHM, MIB, expected, block
            ),
            "· guard hop: a no-op call through the disk tier's guard": lambda o: guard.call(
                int
            ),
        }
        if DEFAULT_ALGORITHM != CRC32:  # what a process without xxhash would pay instead
            cases["· checksum alone: crc32 of 1 MiB (the fallback)"] = lambda o: verify(
                CRC32, MIB, crc, block
            )
        full_reads = {REFERENCE, DIRECT, CHAIN, "local file: plain open+seek+read"}
        for name in full_reads:  # every case that returns the block must return the right bytes
            for o in (0, (blocks - 1) * MIB, (blocks // 2) * MIB):
                assert cases[name](o) == data[o : o + MIB], name
        for o in (0, (blocks - 1) * MIB):
            assert cases["· value file open + header + payload read"](o) == data[o : o + MIB]

        rng = random.Random(1)
        offsets = [rng.randrange(blocks) * MIB for _ in range(ops)]
        before = fs.chain.stats()
        samples = measure(cases, offsets, rounds)
        after = fs.chain.stats()
        disk0, disk1 = before["tiers"]["disk"], after["tiers"]["disk"]
        return WarmResult(
            samples,
            chain_reads=rounds * ops + min(20, ops),
            chain_disk_hits=disk1["hits"] - disk0["hits"],
            chain_origin_requests=after["origin"]["requests"] - before["origin"]["requests"],
            chain_disk_timeouts=disk1["timeouts"] - disk0["timeouts"],
        )
    finally:
        fs.close()  # closes the disk tier too


# -- part 2: eviction policies -----------------------------------------------------------------


@dataclass
class PolicyRun:
    """One policy on one workload, over repeated runs (latencies pooled over the runs)."""

    policy: str
    workload: str
    capacity: int
    hit_ratios: list[float] = field(default_factory=list)
    hit_get: list[float] = field(default_factory=list)
    miss_get: list[float] = field(default_factory=list)
    put: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    max_used: int = 0
    final_used: int = 0
    reference: float = 0.0  # hit ratio of the exact simulation


def zipf_stream(
    rng: random.Random, keys: int, total: int, exponent: float, shift_at: int | None
) -> list[int]:
    """Key indexes drawn with weights 1/rank**exponent; the ranking is re-drawn at ``shift_at``."""
    cum = list(accumulate(1 / rank**exponent for rank in range(1, keys + 1)))
    ranks = rng.choices(range(keys), cum_weights=cum, k=total)
    first = rng.sample(range(keys), keys)
    second = rng.sample(range(keys), keys)
    cut = total if shift_at is None else shift_at
    return [(first if i < cut else second)[r] for i, r in enumerate(ranks)]


def simulate(policy: str, stream: list[int], slots: int, warmup: int) -> float:
    """Hit ratio of an exact, one-block-at-a-time version of ``policy`` (new block protected)."""
    hits = 0
    resident: OrderedDict[int, int] = OrderedDict()  # key -> access count, in policy order
    for i, key in enumerate(stream):
        if key in resident:
            hits += i >= warmup
            if policy == "least-recently-used":
                resident.move_to_end(key)
            resident[key] += 1
            continue
        if policy != "none" and len(resident) >= slots:
            if policy == "least-frequently-used":  # fewest hits; the oldest among equals
                victim = min(resident, key=resident.__getitem__)
                del resident[victim]
            else:  # least-recently-stored and least-recently-used: the head of the order
                resident.popitem(last=False)
        resident[key] = 0
    return hits / (len(stream) - warmup)


def policy_run(
    run: PolicyRun, directory: Path, stream: list[int], payloads: list[bytes], warmup: int
) -> None:
    """Drive a fresh tier with ``stream``: ``get``, and ``put`` after each miss."""
    tier = DiskTier(directory, capacity_bytes=run.capacity, eviction_policy=run.policy)
    assert tier.ready, tier.last_error
    size = len(payloads[0])
    keys = [BlockKey("bench", "/zipf", "v1", size, i) for i in range(len(payloads))]
    hits = 0
    total = 0.0
    try:
        for i, index in enumerate(stream):
            key = keys[index]
            t0 = time.perf_counter()
            got = tier.get(key)
            t1 = time.perf_counter()
            if got is None:
                tier.put(key, payloads[index])
                t2 = time.perf_counter()
            else:
                assert got == payloads[index], (run.policy, index)
            if i % 25 == 0:
                run.max_used = max(run.max_used, used_bytes(tier))
            if i < warmup:
                continue
            if got is None:
                run.miss_get.append(t1 - t0)
                run.put.append(t2 - t1)
                total += t2 - t0
            else:
                hits += 1
                run.hit_get.append(t1 - t0)
                total += t1 - t0
        run.final_used = used_bytes(tier)
        run.max_used = max(run.max_used, run.final_used)
    finally:
        tier.close()
    run.hit_ratios.append(hits / (len(stream) - warmup))
    run.totals.append(total)


def used_bytes(tier: DiskTier) -> int:
    used = tier.stats()["used_bytes"]
    assert isinstance(used, int)
    return used


def eviction(
    workdir: Path, keys: int, block: int, capacity: int, total: int, warmup: int, rounds: int
) -> list[PolicyRun]:
    """Every policy on a stationary and on a shifting Zipf stream, ``rounds`` fresh runs each."""
    rng = random.Random(20261124)
    payloads = [rng.randbytes(block) for _ in range(keys)]
    streams = {
        "stationary": zipf_stream(random.Random(11), keys, total, 1.1, None),
        "shifting": zipf_stream(random.Random(12), keys, total, 1.1, (total + warmup) // 2),
    }
    slots = capacity // (block + HEADER_BYTES)
    runs = {
        (workload, policy): PolicyRun(policy, workload, capacity)
        for workload in streams
        for policy in POLICIES
    }
    for (workload, policy), run in runs.items():
        run.reference = simulate(policy, streams[workload], slots, warmup)
    order = list(runs)
    shuffle = random.Random(7).shuffle
    n = 0
    for _ in range(rounds):
        shuffle(order)
        for workload, policy in order:
            n += 1
            directory = workdir / f"evict-{n}"
            policy_run(runs[workload, policy], directory, streams[workload], payloads, warmup)
            shutil.rmtree(directory, ignore_errors=True)
    for run in runs.values():  # the tier must really evict (and "none" must really not)
        if run.policy == "none":
            assert run.final_used > 2 * capacity, run
        else:
            assert run.max_used <= capacity + 2 * block, (run.policy, run.max_used, capacity)
    return list(runs.values())


# -- report ------------------------------------------------------------------------------------


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(warm: WarmResult, runs: list[PolicyRun], keys: int, block: int) -> tuple[str, list[str]]:
    lines: list[str] = []
    misses: list[str] = []
    ref = warm.samples[REFERENCE].median
    lines += [
        "#### Warm 1 MiB reads at random block-aligned offsets (page cache warm)",
        "",
        "| case | median | spread (±IQR/2) | x local file |",
        "|---|---:|---:|---:|",
    ]
    for s in warm.samples.values():
        lines.append(f"| {s.name} | {fmt_us(s.median)} | {s.spread:.0%} | {s.median / ref:.2f} |")
    lines += [
        "",
        f"Rows starting with · are parts of a disk-tier read, for where the time goes. While "
        f"timed, the disk tier served {warm.chain_disk_hits:,} of the chain's "
        f"{warm.chain_reads:,} reads ({warm.chain_disk_timeouts} guard timeouts, "
        f"{warm.chain_origin_requests} requests to the local-file origin).",
        "",
    ]
    for name in (DIRECT, CHAIN):
        ratio = warm.samples[name].median / ref
        if ratio > TARGET_RATIO:
            misses.append(
                f"warm 1 MiB {name} is {ratio:.2f}x the local-file read (target <= {TARGET_RATIO}x)"
            )
    if warm.chain_origin_requests:
        misses.append(
            f"{warm.chain_origin_requests} chain reads went to the origin instead of the disk tier"
        )

    capacity = runs[0].capacity
    lines += [
        f"#### Eviction policies: {keys} distinct {block // KIB} KiB blocks "
        f"({keys * block / MIB:.0f} MiB), capacity {capacity / MIB:g} MiB",
        "",
        "| workload | policy | hit ratio | exact simulation | hit get p50 / p90 "
        "| miss get p50 | put p50 / p90 | total | max used | final used |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.workload} | {run.policy} | {statistics.median(run.hit_ratios):.1%} "
            f"| {run.reference:.1%} "
            f"| {fmt_us(pct(run.hit_get, 0.5))} / {fmt_us(pct(run.hit_get, 0.9))} "
            f"| {fmt_us(pct(run.miss_get, 0.5))} "
            f"| {fmt_us(pct(run.put, 0.5))} / {fmt_us(pct(run.put, 0.9))} "
            f"| {fmt_us(statistics.median(run.totals))} "
            f"| {run.max_used / MIB:.2f} MiB | {run.final_used / MIB:.2f} MiB |"
        )
    lines.append("")
    return "\n".join(lines), misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=21, help="rounds per 1 MiB case (21)")
    parser.add_argument("--policy-rounds", type=int, default=3, help="fresh runs per policy (3)")
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds, ops, object_bytes = args.rounds, 300, 64 * MIB
    policy_rounds, requests, warmup = args.policy_rounds, 6000, 1000
    if args.quick:
        rounds, ops, object_bytes = 3, 40, 16 * MIB
        policy_rounds, requests, warmup = 1, 1200, 300
    keys, block, capacity = 400, 64 * KIB, 5 * MIB

    workdir = Path(tempfile.mkdtemp(prefix="tiercache-disk-bench-"))
    try:
        warm = warm_read(workdir, object_bytes, rounds, ops)
        runs = eviction(workdir, keys, block, capacity, requests, warmup, policy_rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table, misses = report(warm, runs, keys, block)
    print(
        f"python {sys.version.split()[0]}, tiercache {tiercache.__version__}, "
        f"fsspec {fsspec.__version__}, diskcache {diskcache.__version__}, {os.cpu_count()} cpus; "
        f"checksum {ALGORITHM_NAMES[DEFAULT_ALGORITHM]}; 1 MiB reads: "
        f"{object_bytes // MIB} MiB object, {rounds} rounds of {ops} reads; eviction: "
        f"{requests:,} requests ({warmup:,} uncounted warm-up), Zipf exponent 1.1, "
        f"{policy_rounds} run(s) per policy\n"
    )
    print(table)
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    if not misses:
        print("All targets met.")
    if args.json:
        raw = {
            "warm": {n: s.rounds for n, s in warm.samples.items()},
            "eviction": [
                {
                    "policy": r.policy,
                    "workload": r.workload,
                    "hit_ratios": r.hit_ratios,
                    "reference": r.reference,
                    "totals": r.totals,
                    "max_used": r.max_used,
                    "final_used": r.final_used,
                    "hit_get_p50": pct(r.hit_get, 0.5),
                    "put_p50": pct(r.put, 0.5),
                }
                for r in runs
            ],
        }
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
