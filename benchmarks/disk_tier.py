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
   with as many block slots as the capacity holds. Then several processes share one warm tier
   (LRU and LFU turn every ``get`` into a database write): throughput, tail latency and lock
   timeouts.

Run: ``python benchmarks/disk_tier.py`` (about a minute; ``--quick`` for a smoke run, ``--only
read|eviction`` for one part, ``--json FILE`` to keep the raw figures, ``--check`` to exit
non-zero when the 1 MiB read target of the issue is missed). The Markdown tables it prints are
what ``docs/benchmarks.md`` shows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import diskcache
import fsspec

import tiercache
from harness.fmt import fmt_us
from harness.timing import Sample, measure, pct
from tiercache import BlockKey, DiskTier, Settings, TieredFileSystem, TierError, TierTimeoutError
from tiercache.context import DEMAND
from tiercache.guard import Guard
from tiercache.parsing import KIB, MIB
from tiercache.tiers.framing import (
    ALGORITHM_NAMES,
    CRC32,
    DEFAULT_ALGORITHM,
    HEADER_BYTES,
    header,
    parse_header,
    verify,
)

TARGET_RATIO = 2.0  # issue: a warm disk-tier 1 MiB read <= 2x the local-file read
REFERENCE = "local file: fsspec `file` cat_file"
DIRECT = "DiskTier.get"
CHAIN = "TieredFileSystem.read_range (disk tier only)"
GUARDED = "· DiskTier.get through the guard (the chain's call)"
PLAIN = "local file: plain open+seek+read"
VALUE_FILE = "· value file: open + header + payload read"
KEYS = 400  # distinct blocks of the eviction workload
BLOCK = 64 * KIB  # their size
CAPACITY = 5 * MIB  # holds about 20% of them
ZIPF_EXPONENT = 1.1
POLICIES = ("least-recently-stored", "least-recently-used", "least-frequently-used", "none")


# -- part 1: warm 1 MiB reads ------------------------------------------------------------------


@dataclass
class WarmResult:
    samples: dict[str, Sample]
    chain_reads: int  # reads of the chain case while timed (warm-up included)
    chain_disk_hits: int  # of those, blocks the disk tier served
    chain_origin_requests: int  # requests the chain sent to the local file while timed
    chain_disk_timeouts: int


def breakdown(
    path: str, tier: DiskTier, keys: list[BlockKey], block: bytes, guard: Guard
) -> dict[str, Callable[[int], object]]:
    """The informative rows: a plain file read, and the parts of a disk-tier read."""
    cache: Any = tier._cache  # the diskcache.Cache behind the tier
    value_files: list[str] = []
    for key in keys:
        with cache.get(key.digest(), read=True, retry=False) as handle:
            # The tier opens value files through a descriptor (O_NOFOLLOW): name it by its fd.
            value_files.append(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
    algorithm = ALGORITHM_NAMES[DEFAULT_ALGORITHM]
    _, _, expected = parse_header(keys[0], header(keys[0], block))
    crc = zlib.crc32(block)

    def plain_read(o: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(o)
            return f.read(MIB)

    def lookup(o: int) -> None:
        cache.get(keys[o // MIB].digest(), read=True, retry=False).close()

    def value_file(o: int) -> bytes:
        with open(value_files[o // MIB], "rb") as f:  # as DiskTier._unframe reads it
            f.read(HEADER_BYTES)
            return f.read(MIB + 1)

    cases: dict[str, Callable[[int], object]] = {
        PLAIN: plain_read,
        "· sqlite lookup: diskcache get(read=True) + close": lookup,
        VALUE_FILE: value_file,
        f"· checksum alone: {algorithm} of 1 MiB (framing.verify)": lambda o: verify(
            DEFAULT_ALGORITHM, MIB, expected, block
        ),
        "· guard hop: a no-op call through the disk tier's guard": lambda o: guard.call(
            int, ctx=DEMAND
        ),
        GUARDED: lambda o: guard.call(tier.get, keys[o // MIB], ctx=DEMAND),
    }
    if DEFAULT_ALGORITHM != CRC32:  # what a process without xxhash would pay instead
        cases["· checksum alone: crc32 of 1 MiB (the fallback)"] = lambda o: verify(
            CRC32, MIB, crc, block
        )
    return cases


def warm_up(
    fs: TieredFileSystem,
    *,
    local: Any,
    tier: DiskTier,
    path: str,
    keys: list[BlockKey],
    data: bytes,
) -> None:
    """Read every block once each way, until the chain serves all of them from the disk tier.

    A pass may miss a block if a call exceeded the guard's time budget on a loaded machine (the
    block then came from the file and is filled again); a few passes settle it.
    """
    for _ in range(5):
        fs.chain.fills.join()
        before = fs.chain.stats()
        for i, key in enumerate(keys):
            o = i * MIB
            assert local.cat_file(path, start=o, end=o + MIB) == data[o : o + MIB]
            assert tier.get(key) == data[o : o + MIB]
            assert fs.read_range(path, o, o + MIB) == data[o : o + MIB], "chain"
        after = fs.chain.stats()
        if after["origin"]["requests"] == before["origin"]["requests"]:
            assert after["tiers"]["disk"]["hits"] - before["tiers"]["disk"]["hits"] == len(keys)
            return
    raise AssertionError(f"the chain kept reading from the origin: {fs.chain.stats()}")


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
        warm_up(fs, local=local, tier=tier, path=path, keys=keys, data=data)

        guard = fs.chain.slots[0].guard
        assert guard is not None, "the disk tier runs under a guard"
        cases: dict[str, Callable[[int], object]] = {
            REFERENCE: lambda o: local.cat_file(path, start=o, end=o + MIB),
            DIRECT: lambda o: tier.get(keys[o // MIB]),
            CHAIN: lambda o: fs.read_range(path, o, o + MIB),
            **breakdown(path, tier, keys, data[:MIB], guard),
        }
        full_reads = {REFERENCE, DIRECT, CHAIN, GUARDED, PLAIN}
        for name in full_reads:  # every case that returns the block must return the right bytes
            for o in (0, (blocks - 1) * MIB, (blocks // 2) * MIB):
                assert cases[name](o) == data[o : o + MIB], name
        for o in (0, (blocks - 1) * MIB):
            assert cases[VALUE_FILE](o) == data[o : o + MIB]

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
    keys: int, total: int, *, draw_seed: int, ranking_seed: int, shift_at: int | None = None
) -> list[int]:
    """Key indexes drawn with weights 1/rank**1.1; the ranking is re-drawn at ``shift_at``.

    Streams with the same ``ranking_seed`` share their popular keys.
    """
    cum = list(accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, keys + 1)))
    ranks = random.Random(draw_seed).choices(range(keys), cum_weights=cum, k=total)
    first = random.Random(ranking_seed).sample(range(keys), keys)
    second = random.Random(ranking_seed + 1).sample(range(keys), keys)
    cut = total if shift_at is None else shift_at
    return [(first if i < cut else second)[r] for i, r in enumerate(ranks)]


def make_payloads(keys: int, block: int) -> list[bytes]:
    rng = random.Random(20261124)
    return [rng.randbytes(block) for _ in range(keys)]


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


def used_bytes(tier: DiskTier) -> int:
    used = tier.stats()["used_bytes"]
    assert isinstance(used, int)
    return used


def policy_run(
    run: PolicyRun, directory: Path, stream: list[int], payloads: list[bytes], warmup: int
) -> None:
    """Drive a fresh tier with ``stream``: ``get``, and ``put`` after each miss."""
    tier = DiskTier(directory, capacity_bytes=run.capacity, eviction_policy=run.policy)
    assert tier.ready, tier.last_error
    keys = [BlockKey("bench", "/zipf", "v1", len(payloads[0]), i) for i in range(len(payloads))]
    hits = 0
    total = 0.0
    try:
        for i, index in enumerate(stream):
            key = keys[index]
            t0 = time.perf_counter()
            got = tier.get(key)
            t1 = t2 = time.perf_counter()
            if got is None:
                tier.put(key, payloads[index])
                t2 = time.perf_counter()
            else:
                assert got == payloads[index], (run.policy, index)
            if i % 25 == 0:
                run.max_used = max(run.max_used, used_bytes(tier))
            if i < warmup:
                continue
            total += t2 - t0
            if got is None:
                run.miss_get.append(t1 - t0)
                run.put.append(t2 - t1)
            else:
                hits += 1
                run.hit_get.append(t1 - t0)
        run.final_used = used_bytes(tier)
        run.max_used = max(run.max_used, run.final_used)
    finally:
        tier.close()
    run.hit_ratios.append(hits / (len(stream) - warmup))
    run.totals.append(total)


def eviction(
    workdir: Path, *, block: int, capacity: int, total: int, warmup: int, rounds: int
) -> list[PolicyRun]:
    """Every policy on a stationary and on a shifting Zipf stream, ``rounds`` fresh runs each."""
    payloads = make_payloads(KEYS, block)
    streams = {
        "stationary": zipf_stream(KEYS, total, draw_seed=11, ranking_seed=21),
        "shifting": zipf_stream(
            KEYS, total, draw_seed=12, ranking_seed=21, shift_at=(total + warmup) // 2
        ),
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
    for n in range(rounds):
        shuffle(order)
        for workload, policy in order:
            directory = workdir / f"evict-{n}-{workload}-{policy}"
            policy_run(runs[workload, policy], directory, streams[workload], payloads, warmup)
            shutil.rmtree(directory, ignore_errors=True)
    for run in runs.values():  # the tier must really evict (and "none" must really not)
        if run.policy == "none":
            assert run.final_used > capacity, (run.policy, run.final_used, capacity)
        else:
            assert run.max_used <= capacity + 2 * block, (run.policy, run.max_used, capacity)
    return list(runs.values())


@dataclass
class Contention:
    """One policy with several processes sharing one warm tier."""

    policy: str
    processes: int
    requests: int
    hits: int
    wall: float
    get: list[float]
    get_timeouts: int
    put_timeouts: int
    errors: int


def contention_worker(
    *,
    directory: str,
    capacity: int,
    policy: str,
    stream: list[int],
    block: int,
    start_at: float,
) -> dict[str, Any]:
    """One process of the contention run (module level: it runs in a spawned process)."""
    payloads = make_payloads(KEYS, block)
    keys = [BlockKey("bench", "/zipf", "v1", block, i) for i in range(KEYS)]
    for _ in range(50):  # the processes open the database at once: one may find it locked
        tier = DiskTier(directory, capacity_bytes=capacity, eviction_policy=policy)
        if tier.ready:
            break
        tier.close()
        time.sleep(0.02)
    assert tier.ready, tier.last_error
    out: dict[str, Any] = {"hits": 0, "get_timeouts": 0, "put_timeouts": 0, "errors": 0}
    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))  # every process starts together
    start = time.perf_counter()
    for index in stream:
        key = keys[index]
        t0 = time.perf_counter()
        try:
            got = tier.get(key)
        except TierTimeoutError:
            out["get_timeouts"] += 1
            got = None
        except TierError:
            out["errors"] += 1
            got = None
        latencies.append(time.perf_counter() - t0)
        if got is None:
            try:
                tier.put(key, payloads[index])
            except TierTimeoutError:
                out["put_timeouts"] += 1
            except TierError:
                out["errors"] += 1
        else:
            assert got == payloads[index], (policy, index)
            out["hits"] += 1
    out["wall"] = time.perf_counter() - start
    out["get"] = latencies
    tier.close()
    return out


def contention(
    workdir: Path, *, block: int, capacity: int, processes: int, requests: int, warmup: int
) -> list[Contention]:
    """Every policy with ``processes`` processes reading and filling one warm tier at once."""
    payloads = make_payloads(KEYS, block)
    keys = [BlockKey("bench", "/zipf", "v1", block, i) for i in range(KEYS)]
    results: list[Contention] = []
    order = list(POLICIES)
    random.Random(8).shuffle(order)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        list(pool.map(abs, range(processes)))  # start the processes before the clock does
        for policy in order:
            directory = workdir / f"contention-{policy}"
            tier = DiskTier(directory, capacity_bytes=capacity, eviction_policy=policy)
            for index in zipf_stream(KEYS, warmup, draw_seed=30, ranking_seed=21):
                if tier.get(keys[index]) is None:  # fill it before the processes start
                    tier.put(keys[index], payloads[index])
            start_at = time.time() + 0.5
            futures = [
                pool.submit(
                    contention_worker,
                    directory=str(directory),
                    capacity=capacity,
                    policy=policy,
                    stream=zipf_stream(KEYS, requests, draw_seed=40 + p, ranking_seed=21),
                    block=block,
                    start_at=start_at,
                )
                for p in range(processes)
            ]
            outs = [f.result() for f in futures]
            tier.close()
            shutil.rmtree(directory, ignore_errors=True)
            results.append(
                Contention(
                    policy,
                    processes,
                    requests * processes,
                    sum(o["hits"] for o in outs),
                    max(o["wall"] for o in outs),
                    [t for o in outs for t in o["get"]],
                    sum(o["get_timeouts"] for o in outs),
                    sum(o["put_timeouts"] for o in outs),
                    sum(o["errors"] for o in outs),
                )
            )
    results.sort(key=lambda c: POLICIES.index(c.policy))
    return results


# -- report ------------------------------------------------------------------------------------


def report_read(warm: WarmResult) -> tuple[list[str], list[str]]:
    """The 1 MiB read table, and the targets it misses."""
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
    return lines, misses


def report_eviction(runs: list[PolicyRun], shared: list[Contention], block: int) -> list[str]:
    """The eviction tables."""
    capacity = runs[0].capacity
    lines = [
        f"#### Eviction policies: {KEYS} distinct {block // KIB} KiB blocks "
        f"({KEYS * block / MIB:.0f} MiB), capacity {capacity / MIB:g} MiB, one process",
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
    lines += [
        "",
        f"#### Eviction policies: {shared[0].processes} processes sharing one warm tier "
        f"(stationary stream, {shared[0].requests // shared[0].processes:,} requests each)",
        "",
        "| policy | requests/s (all processes) | hit ratio | get p50 / p99 "
        "| lock timeouts (get / put) | other errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in shared:
        lines.append(
            f"| {c.policy} | {c.requests / c.wall:,.0f} | {c.hits / c.requests:.1%} "
            f"| {fmt_us(pct(c.get, 0.5))} / {fmt_us(pct(c.get, 0.99))} "
            f"| {c.get_timeouts} / {c.put_timeouts} | {c.errors} |"
        )
    lines.append("")
    return lines


def eviction_parts(
    workdir: Path, processes: int, requests: int, warmup: int, rounds: int
) -> tuple[list[PolicyRun], list[Contention]]:
    """Part 2: one process per policy run, then several processes sharing a tier."""
    runs = eviction(
        workdir, block=BLOCK, capacity=CAPACITY, total=requests, warmup=warmup, rounds=rounds
    )
    shared = contention(
        workdir,
        block=BLOCK,
        capacity=CAPACITY,
        processes=processes,
        requests=requests // 3,  # each
        warmup=warmup,
    )
    return runs, shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=21, help="rounds per 1 MiB case (21)")
    parser.add_argument("--policy-rounds", type=int, default=3, help="fresh runs per policy (3)")
    parser.add_argument("--processes", type=int, default=4, help="processes sharing a tier (4)")
    parser.add_argument(
        "--only", choices=("read", "eviction"), help="run only one of the two parts"
    )
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds, ops, object_bytes = args.rounds, 300, 64 * MIB
    policy_rounds, requests, warmup = args.policy_rounds, 6000, 1000
    if args.quick:
        rounds, ops, object_bytes = 3, 40, 16 * MIB
        policy_rounds, requests, warmup = 1, 1200, 300

    warm: WarmResult | None = None
    runs: list[PolicyRun] = []
    shared: list[Contention] = []
    workdir = Path(tempfile.mkdtemp(prefix="tiercache-disk-bench-"))
    try:
        if args.only != "eviction":
            warm = warm_read(workdir, object_bytes, rounds, ops)
        if args.only != "read":
            runs, shared = eviction_parts(workdir, args.processes, requests, warmup, policy_rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table: list[str] = []
    misses: list[str] = []
    if warm is not None:
        table, misses = report_read(warm)
    if runs:
        table += report_eviction(runs, shared, BLOCK)
    setup = [
        f"python {sys.version.split()[0]}, tiercache {tiercache.__version__}, "
        f"fsspec {fsspec.__version__}, diskcache {diskcache.__version__}, {os.cpu_count()} cpus; "
        f"checksum {ALGORITHM_NAMES[DEFAULT_ALGORITHM]}"
    ]
    if warm is not None:
        setup.append(f"1 MiB reads: {object_bytes // MIB} MiB object, {rounds} rounds of {ops}")
    if runs:
        setup.append(
            f"eviction: {requests:,} requests ({warmup:,} uncounted warm-up), Zipf exponent "
            f"{ZIPF_EXPONENT}, {policy_rounds} run(s) per policy; {args.processes} processes x "
            f"{requests // 3:,} requests sharing a tier"
        )
    print("; ".join(setup) + "\n")
    print("\n".join(table))
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    if warm is not None and not misses:
        print("All targets met.")
    if args.json:
        raw = {
            "warm": {n: s.rounds for n, s in warm.samples.items()} if warm else {},
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
            "contention": [
                {k: v for k, v in vars(c).items() if k != "get"}
                | {"get_p50": pct(c.get, 0.5), "get_p99": pct(c.get, 0.99)}
                for c in shared
            ],
        }
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
