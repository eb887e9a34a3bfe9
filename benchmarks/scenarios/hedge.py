"""Hedged origin reads: cold 1 MiB reads when a random 5% of requests wait 500 ms more.

A proxy process of its own in front of the S3 server, the emulated store's profile (20 ms to
first byte, 100 MB/s per stream), plus a seeded random 5% of GETs delayed 500 ms more to their
first byte (``HttpFaultProxy.delay_probability``): a long tail like an object store's. One pod
per way with no cache tier, so every 1 MiB read (block-aligned, one block) is an origin request;
each pod first reads untimed at the plain pace until it has timed enough reads to hedge. Then the
same reads, the same seed, with hedging on and off (``TIERCACHE_ORIGIN_HEDGE``): the p50 and
p99 of the read latency, and the extra requests the proxy saw. Last, the whole origin slow
(every GET 100 ms more): how many extra requests hedging spends there (the budget,
``TIERCACHE_ORIGIN_HEDGE_BUDGET``, caps them at 5% of reads plus a burst of 10; the threshold
lifts to the new pace within a few reads).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, TypedDict

from harness.context import BUCKET, PROFILES, STORE, Context
from harness.fmt import fmt_s
from harness.proxy import ProxyProcess
from harness.scenario import Report, Result, Scenario, Section, body, target
from harness.timing import pct
from tiercache import TieredFileSystem
from tiercache.hedging import BURST, MIN_SAMPLES
from tiercache.parsing import MIB

TAIL_P = 0.05
TAIL_S = 0.5
SLOW_S = 0.1
SEED = 17
BLOCKS = 16
WAYS = ("hedging on", "hedging off")


class Way(TypedDict):
    """One way's reads: their seconds, the reads and the GETs the proxy saw, the hedges."""

    seconds: list[float]
    reads: int
    gets: int
    hedges: int
    hedges_won: int


class HedgeData(TypedDict):
    tail: dict[str, Way]
    slow: Way


HedgeResult = Result[HedgeData, str]


@dataclass(frozen=True)
class Sizes:
    reads: int
    slow_reads: int


def _pod(ctx: Context, proxy: ProxyProcess, hedge: bool) -> TieredFileSystem:
    settings = dataclasses.replace(
        ctx.settings, block_size_bytes=MIB, memory_bytes=0, origin_hedge=hedge
    )
    options: dict[str, Any] = ctx.server.storage_options(proxy.url)
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True},
        settings=settings,
        tiers=[],
        skip_instance_cache=True,
    )


def _reads(fs: TieredFileSystem, path: str, data: bytes, count: int, first: int) -> list[float]:
    seconds = []
    for i in range(first, first + count):
        start = (i % BLOCKS) * MIB
        t0 = time.perf_counter()
        got = fs.read_range(path, start, start + MIB)
        seconds.append(time.perf_counter() - t0)
        assert got == data[start : start + MIB]
    return seconds


def _way(
    ctx: Context, proxy: ProxyProcess, path: str, data: bytes, *, hedge: bool, reads: int
) -> tuple[TieredFileSystem, Way]:
    """A warmed pod's ``reads`` reads under the seeded tail (the pod is returned open)."""
    proxy.delay_probability(0.0, 0.0, None)
    fs = _pod(ctx, proxy, hedge)
    _reads(fs, path, data, MIN_SAMPLES + 10, 0)  # untimed: enough samples to hedge
    before = fs.stats()["origin"]
    proxy.reset_counters()
    proxy.delay_probability(TAIL_P, TAIL_S, SEED)
    seconds = _reads(fs, path, data, reads, MIN_SAMPLES + 10)
    return fs, _counted(fs, proxy, before, seconds)


def _counted(
    fs: TieredFileSystem, proxy: ProxyProcess, before: dict[str, Any], seconds: list[float]
) -> Way:
    after = fs.stats()["origin"]
    return {
        "seconds": seconds,
        "reads": len(seconds),
        "gets": proxy.requests("GET"),
        "hedges": after["hedges"] - before["hedges"],
        "hedges_won": after["hedges_won"] - before["hedges_won"],
    }


def run(ctx: Context, sz: Sizes) -> HedgeResult:
    data = os.urandom(BLOCKS * MIB)
    key = "hedge/object.bin"
    ctx.server.put_object(BUCKET, key, data)
    path = f"{BUCKET}/{key}"
    store = PROFILES[STORE]
    tail: dict[str, Way] = {}
    with ProxyProcess(
        ctx.server.endpoint_url,
        delay_s=store.delay_s,
        bandwidth_bytes_per_s=store.bandwidth_bytes_per_s,
    ) as proxy:
        for way in WAYS:
            fs, tail[way] = _way(ctx, proxy, path, data, hedge=way == "hedging on", reads=sz.reads)
            if way == "hedging on":
                # The same pod, now with every GET slow: what hedging spends there.
                proxy.delay_probability(0.0, 0.0, None)
                proxy.set_delay(store.delay_s + SLOW_S)
                proxy.reset_counters()
                before = fs.stats()["origin"]
                seconds = _reads(fs, path, data, sz.slow_reads, 0)
                slow = _counted(fs, proxy, before, seconds)
                proxy.set_delay(store.delay_s)
            fs.close()
    return _result({"tail": tail, "slow": slow})


def _extra(way: Way) -> float:
    return (way["gets"] - way["reads"]) / way["reads"]


def _result(data: HedgeData) -> HedgeResult:
    tail = data["tail"]
    rows = [
        f"| {way} | {fmt_s(pct(w['seconds'], 0.5))} | {fmt_s(pct(w['seconds'], 0.99))} | "
        f"{fmt_s(max(w['seconds']))} | {w['reads']} | {w['gets'] - w['reads']} "
        f"({_extra(w):.1%}) | {w['hedges']} / {w['hedges_won']} |"
        for way, w in tail.items()
    ]
    slow = data["slow"]
    rows.append(
        f"| hedging on, every GET +{SLOW_S * 1e3:g} ms | {fmt_s(pct(slow['seconds'], 0.5))} | "
        f"{fmt_s(pct(slow['seconds'], 0.99))} | {fmt_s(max(slow['seconds']))} | "
        f"{slow['reads']} | {slow['gets'] - slow['reads']} ({_extra(slow):.1%}) | "
        f"{slow['hedges']} / {slow['hedges_won']} |"
    )
    lines = [
        f"| cold 1 MiB reads, {TAIL_P:.0%} of GETs +{TAIL_S * 1e3:g} ms | p50 | p99 | max | "
        "reads | extra GETs | hedges / won |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    on, off = (pct(tail[w]["seconds"], 0.99) for w in WAYS)
    on_extra = _extra(tail["hedging on"])
    allowed = 0.05 + BURST / tail["hedging on"]["reads"]
    slow_allowed = 0.05 + BURST / slow["reads"]
    targets = [
        target(
            key="hedge-p99",
            scenario="hedge",
            text=f"p99 of cold 1 MiB reads, {TAIL_P:.0%} of requests +{TAIL_S * 1e3:g} ms: "
            "at least 3x lower with hedging",
            measured=f"{fmt_s(on)} vs {fmt_s(off)} ({off / on:.1f}x lower)",
            ratio=on / off,
            met=off >= 3 * on,
            reference="hedging off",
        ),
        target(
            key="hedge-extra",
            scenario="hedge",
            text="extra origin requests with hedging, tail case: within the budget (5% of "
            f"reads plus the burst of {BURST:g})",
            measured=f"{on_extra:.1%} ({tail['hedging on']['gets'] - tail['hedging on']['reads']}"
            f" of {tail['hedging on']['reads']})",
            ratio=on_extra / allowed,
            met=on_extra <= allowed,
            reference=f"{allowed:.1%}",
        ),
        target(
            key="hedge-slow-budget",
            scenario="hedge",
            text=f"extra origin requests, every request +{SLOW_S * 1e3:g} ms: within the budget",
            measured=f"{_extra(slow):.1%} ({slow['gets'] - slow['reads']} of {slow['reads']})",
            ratio=_extra(slow) / slow_allowed,
            met=_extra(slow) <= slow_allowed,
            reference=f"{slow_allowed:.1%}",
        ),
    ]
    notes = [
        "Extra GETs are what the proxy saw beyond one per read; each hedge is one. The budget "
        f"is a token bucket: 0.05 per read, at most {BURST:g} held, 1 per hedge.",
        "The hedging threshold adapts to the pace it observes (the p95 of the last 256 "
        "first-byte latencies, at least twice their median and twice the median of the last 8, "
        "at least 50 ms): on an origin slow for everyone it stops hedging within a few reads.",
    ]
    return {"data": data, "tables": "\n".join(lines), "targets": targets, "notes": notes}


def report(result: HedgeResult) -> Report:
    return Report({"hedge": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO: Scenario[Sizes, HedgeResult] = Scenario(
    name="hedge",
    order=62,
    sizes={
        "smoke": Sizes(reads=10, slow_reads=5),
        "quick": Sizes(reads=120, slow_reads=30),
        "full": Sizes(reads=400, slow_reads=120),
    },
    run=run,
    sections=(Section("hedge", "Hedged origin reads (a long first-byte tail)"),),
    report=report,
)
