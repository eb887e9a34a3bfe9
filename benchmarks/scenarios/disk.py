"""The disk tier (``disk_tier.py``): warm 1 MiB reads against a local file, then the eviction
policies (one process per policy, then several processes sharing one warm tier)."""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from typing import Any, NotRequired

import disk_tier
from harness.context import Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, body, target
from harness.timing import pct, summary
from tiercache.parsing import MIB


class DiskResult(Result[dict[str, Any], str]):
    #: The eviction tables (absent from a ``results.json`` written before they had a section).
    eviction_tables: NotRequired[str]


@dataclass(frozen=True)
class Sizes:
    object_bytes: int  # of the warm-read object, read in 1 MiB blocks
    rounds: int
    ops: int  # 1 MiB reads per round
    policy_rounds: int  # fresh runs per eviction policy
    eviction_requests: int
    eviction_warmup: int  # requests not counted
    eviction_processes: int  # sharing one warm tier


def run(ctx: Context, sz: Sizes) -> DiskResult:
    workdir = ctx.workdir / "disk"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        warm = disk_tier.warm_read(workdir, sz.object_bytes, sz.rounds, sz.ops)
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
                "hit_get_p50": pct(r.hit_get, 0.5),
                "put_p50": pct(r.put, 0.5),
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
                "get_p50": pct(c.get, 0.5),
                "get_p99": pct(c.get, 0.99),
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


def report(result: DiskResult) -> Report:
    read = body(result["tables"], result["notes"])
    # A results.json from before the eviction tables had a section of their own: the tables again.
    eviction = (
        body(result["eviction_tables"], result["notes"]) if "eviction_tables" in result else read
    )
    return Report({"disk-read": read, "disk-eviction": eviction}, result["targets"])


SCENARIO = Scenario(
    name="disk",
    order=30,
    sizes={
        "smoke": Sizes(
            object_bytes=4 * MIB,
            rounds=2,
            ops=10,
            policy_rounds=1,
            eviction_requests=300,
            eviction_warmup=100,
            eviction_processes=2,
        ),
        "quick": Sizes(
            object_bytes=16 * MIB,
            rounds=3,
            ops=40,
            policy_rounds=1,
            eviction_requests=1200,
            eviction_warmup=300,
            eviction_processes=4,
        ),
        "full": Sizes(
            object_bytes=64 * MIB,
            rounds=21,
            ops=300,
            policy_rounds=3,
            eviction_requests=6000,
            eviction_warmup=1000,
            eviction_processes=4,
        ),
    },
    run=run,
    sections=(
        Section("disk-read", "Disk tier: warm 1 MiB reads"),
        Section("disk-eviction", "Disk tier: eviction policies"),
    ),
    report=report,
)
