"""Readahead of open files (``TIERCACHE_READAHEAD_BYTES``): a cold sequential scan, and random
reads that must not cost more.

The store: the emulated object store's proxy (20 ms to first byte, 100 MB/s per stream) in
front of a server that answers ranged GETs of one object from memory (``canned_s3.py``), not in
front of moto: moto reads the whole object for every ranged GET, in one process, so requests in
flight at once queue behind each other there, where S3 serves each stream at its own pace. A
scan through readahead is several streams at once; on moto it measured moto (docs/benchmarks.md).

**Scan.** One object read cold from start to end in 8 MiB ``read()`` calls through that store:
tiercache ``fs.open()`` (a new pod per round with an LRU RAM tier of 256 MiB, so a readahead
budget of 64 MiB, half of 32 origin slots) against bare s3fs ``open()`` with its own default
readahead cache (50 MiB blocks, one request at a time), and tiercache with readahead off, in the
same run, rounds interleaved. Throughput in MB/s (10^6 bytes per second).

**Random.** 64 KiB reads at random offsets of an open file, readahead off (0) and on (default):
the GETs the proxy saw and the bytes the chain received with readahead on must be no more than
with it off.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

from canned_s3 import canned_server
from harness.context import PROFILES, STORE, Context
from harness.proxy import ProxyProcess
from harness.scenario import Report, Result, Scenario, Section, Target, body, target
from tiercache import TieredFileSystem
from tiercache.parsing import KIB, MIB

CHUNK = 8 * MIB
#: s3fs's default block size (its readahead cache fetches one block per request).
S3FS_BLOCK = 50 * MIB
RANDOM_READ = 64 * KIB
TIERCACHE = "tiercache fs.open() read(8 MiB)"
S3FS = "s3fs open() read(8 MiB), default readahead cache"
OFF = "tiercache fs.open() read(8 MiB), readahead off (0)"
#: Target: tiercache's scan throughput at least this many times s3fs's.
SPEEDUP_TARGET = 4.0

ReadaheadResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    object_bytes: int
    rounds: int
    random_reads: int


def scan(open_file: Any) -> float:
    """Seconds to read the whole file in :data:`CHUNK` reads."""
    began = time.perf_counter()
    with open_file() as f:
        while f.read(CHUNK):
            pass
    return time.perf_counter() - began


def chain_bytes(fs: TieredFileSystem) -> int:
    stats = fs.stats()
    return int(stats["origin"]["bytes"] + stats["prefetch"]["origin"]["bytes"])


def random_reads(
    ctx: Context, client: Any, proxy: ProxyProcess, path: str, sz: Sizes, *, budget: int | None
) -> dict[str, Any]:
    """GETs and bytes of random 64 KiB reads of an open file (``budget`` None: the default)."""
    overrides = {} if budget is None else {"readahead_bytes": budget}
    fs = ctx.ram_pod(client, **overrides)
    offsets = random.Random(17).sample(range(sz.object_bytes - RANDOM_READ), sz.random_reads)
    try:
        with fs.open(path, "rb") as f:
            proxy.reset_counters()
            for offset in offsets:
                f.seek(offset)
                f.read(RANDOM_READ)
        deadline = time.monotonic() + 30
        while fs.chain.readahead.snapshot()["in_flight_bytes"] and time.monotonic() < deadline:
            time.sleep(0.01)
        return {
            "gets": proxy.requests("GET"),
            "bytes": chain_bytes(fs),
            "readahead_blocks": fs.stats()["readahead"]["blocks"],
        }
    finally:
        fs.close()


def run(ctx: Context, sz: Sizes) -> ReadaheadResult:
    profile = PROFILES[STORE]
    with canned_server(sz.object_bytes) as url:
        proxy = ProxyProcess(
            url, delay_s=profile.delay_s, bandwidth_bytes_per_s=profile.bandwidth_bytes_per_s
        )
        proxy.start()
        try:
            return _measure(ctx, sz, ctx.client_at(proxy.url), proxy)
        finally:
            proxy.close()


def _measure(ctx: Context, sz: Sizes, client: Any, proxy: ProxyProcess) -> ReadaheadResult:
    path = f"canned/readahead-{sz.object_bytes}.bin"  # the server answers any path
    seconds: dict[str, list[float]] = {TIERCACHE: [], OFF: [], S3FS: []}
    stats: dict[str, Any] = {}
    for round_ in range(sz.rounds):
        order = [TIERCACHE, OFF, S3FS] if round_ % 2 == 0 else [S3FS, OFF, TIERCACHE]
        for case in order:
            if case == S3FS:
                seconds[case].append(scan(lambda: client.open(path, "rb")))
                continue
            fs = ctx.ram_pod(client, **({"readahead_bytes": 0} if case == OFF else {}))
            try:
                seconds[case].append(scan(lambda fs=fs: fs.open(path, "rb")))
                if case == TIERCACHE:
                    stats = fs.stats()["readahead"]
            finally:
                fs.close()
    mbps = {case: sz.object_bytes / statistics.median(s) / 1e6 for case, s in seconds.items()}
    randoms = {
        "off": random_reads(ctx, client, proxy, path, sz, budget=0),
        "on": random_reads(ctx, client, proxy, path, sz, budget=None),
    }
    data = {
        "object_bytes": sz.object_bytes,
        "rounds": sz.rounds,
        "seconds": seconds,
        "mbps": mbps,
        "readahead": stats,
        "random": randoms,
        "random_reads": sz.random_reads,
        "profile": PROFILES[STORE].describe(),
        "gets": {TIERCACHE: stats.get("requests", 0) + 2, S3FS: -(-sz.object_bytes // S3FS_BLOCK)},
    }
    return {"data": data, "tables": tables(data), "targets": targets(data), "notes": notes(data)}


def tables(data: dict[str, Any]) -> str:
    mib = data["object_bytes"] // MIB
    s3fs_mbps = data["mbps"][S3FS]
    lines = [
        f"#### Cold sequential read of a {mib} MiB object, {data['profile']}",
        "",
        "| path | median | MB/s | ÷ s3fs |",
        "|---|---:|---:|---:|",
    ]
    for case, mbps in data["mbps"].items():
        median = statistics.median(data["seconds"][case])
        lines.append(f"| {case} | {median:.2f} s | {mbps:.0f} | {mbps / s3fs_mbps:.2f} |")
    lines += [
        "",
        f"#### {data['random_reads']} random 64 KiB reads of an open file",
        "",
        "| readahead | GET | bytes from the origin | blocks read ahead |",
        "|---|---:|---:|---:|",
    ]
    for label, counts in data["random"].items():
        lines.append(
            f"| {label} | {counts['gets']} | {counts['bytes']:,} | {counts['readahead_blocks']} |"
        )
    return "\n".join(lines)


def notes(data: dict[str, Any]) -> list[str]:
    ra = data["readahead"]
    return [
        f"{data['rounds']} rounds, interleaved; each tiercache round a new RAM-only pod (cold).",
        f"Last tiercache round's readahead: {ra.get('blocks', 0)} blocks in "
        f"{ra.get('requests', 0)} requests, {ra.get('hits', 0)} read by the reader, "
        f"{ra.get('wasted', 0)} wasted.",
        f"The store: the proxy of the emulated store in front of a server answering ranged GETs "
        f"from memory (each stream at its own pace, as S3 serves them; moto reads the whole "
        f"object per GET and queues requests in flight). s3fs sends about "
        f"{data.get('gets', {}).get(S3FS, 0)} GETs (50 MiB blocks, one at a time), tiercache "
        f"about {data.get('gets', {}).get(TIERCACHE, 0)} (8 MiB requests, several in flight).",
    ]


def targets(data: dict[str, Any]) -> list[Target]:
    ours, theirs = data["mbps"][TIERCACHE], data["mbps"][S3FS]
    off, on = data["random"]["off"], data["random"]["on"]
    return [
        target(
            key="readahead-scan",
            scenario="readahead",
            text=f"cold sequential read through `fs.open()` (8 MiB reads, emulated store): ≥ "
            f"{SPEEDUP_TARGET:g}x s3fs `open()`'s throughput",
            measured=f"{ours:.0f} vs {theirs:.0f} MB/s",
            ratio=ours / theirs,
            met=ours / theirs >= SPEEDUP_TARGET,
            reference=S3FS,
        ),
        target(
            key="readahead-off",
            scenario="readahead",
            text="… the same scan, readahead on ÷ off (no target: what readahead gains on this "
            "store)",
            measured=f"{ours:.0f} vs {data['mbps'][OFF]:.0f} MB/s",
            ratio=ours / data["mbps"][OFF],
            met=True,
            reference=OFF,
            informative=True,
        ),
        target(
            key="readahead-random",
            scenario="readahead",
            text="random 64 KiB reads of an open file: GETs and origin bytes with readahead on "
            "≤ off (prefetch wastes nothing; the proxy's GET count also holds retries)",
            measured=f"{on['gets']} / {on['bytes']:,} B vs {off['gets']} / {off['bytes']:,} B",
            ratio=None,
            met=on["gets"] <= off["gets"] and on["bytes"] <= off["bytes"],
            reference="readahead off (0)",
        ),
    ]


def report(result: ReadaheadResult) -> Report:
    return Report({"readahead": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO = Scenario(
    name="readahead",
    order=22,
    sizes={
        "smoke": Sizes(object_bytes=16 * MIB, rounds=1, random_reads=20),
        # The object size in every preset but smoke: readahead's window grows to its
        # budget over the first reads, so a smaller object says less about a long scan.
        "quick": Sizes(object_bytes=256 * MIB, rounds=2, random_reads=100),
        "full": Sizes(object_bytes=256 * MIB, rounds=5, random_reads=300),
    },
    run=run,
    sections=(Section("readahead", "Readahead: cold sequential scans of open files"),),
    report=report,
)
