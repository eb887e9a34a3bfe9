"""Scan resistance of the RAM tier: S3-FIFO against LRU (``TIERCACHE_MEMORY_POLICY``), in one run.

**Scan.** A hot set of half the RAM budget is read over and over (three passes to warm it), then
interleaved with one pass over a table of 4x the budget (two table blocks between two hot reads,
so that under LRU a hot block's reuse distance, the hot set plus the table blocks read meanwhile,
exceeds the budget), then read alone again (three passes). Each policy runs in its own pod
(``TieredFileSystem`` with only its RAM tier, 64 KiB blocks, whole-block reads) over an in-memory
origin: hit ratios do not depend on the origin's latency. The hot set's hit ratio is counted by
the tier itself (lookups of the hot object's blocks, readahead included), during and after the
scan.

**Zipf.** Key popularity Zipf(alpha) for alpha 0.8, 1.0, 1.2 over 10x the budget's blocks,
replayed on the tiers directly (a miss stores the block) at 0.25x to 4x the budget: miss ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fsspec

from harness.context import Context
from harness.scenario import Report, Result, Scenario, Section, Target, body, target
from tiercache import MemoryTier, S3FifoTier, Settings, TieredFileSystem
from tiercache.parsing import KIB
from tiercache.protocol import BlockKey
from tiercache.testing import traces

BLOCK = 64 * KIB
POLICIES = ("s3fifo", "lru")
ALPHAS = (0.8, 1.0, 1.2)
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Target: the hot set's hit ratio during the scan with S3-FIFO.
HOT_TARGET = 0.80
#: Zipf: S3-FIFO's miss ratio at most LRU's plus this, at every size.
ZIPF_TOLERANCE = 0.01

ScanResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    budget_blocks: int  # RAM budget, in 64 KiB blocks
    zipf_length: int  # references per Zipf trace


class _Counting:
    """Counts the hot object's lookups and hits on a policy's tier (a subclass per policy)."""

    hot_hits = 0
    hot_lookups = 0

    def count(self, key: BlockKey, found: bool) -> None:
        if key.path.endswith("/hot.bin"):
            self.hot_lookups += 1
            self.hot_hits += found


class CountingFifo(S3FifoTier, _Counting):
    def get(self, key: BlockKey, /) -> bytes | None:
        data = super().get(key)
        self.count(key, data is not None)
        return data


class CountingLru(MemoryTier, _Counting):
    def get(self, key: BlockKey, /) -> bytes | None:
        data = super().get(key)
        self.count(key, data is not None)
        return data


def scan(policy: str, budget_blocks: int, root: str) -> dict[str, float]:
    """The hot set's hit ratio per phase under ``policy``."""
    capacity = budget_blocks * BLOCK
    tier: CountingFifo | CountingLru = (
        CountingFifo(capacity) if policy == "s3fifo" else CountingLru(capacity)
    )
    fs = TieredFileSystem(
        fs=fsspec.filesystem("memory"),
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=capacity, shadow_rate=0.0),
        tiers=[tier],
    )
    ratios: dict[str, float] = {}
    try:
        trace = traces.scan_trace(budget_blocks)
        before = (0, 0)
        phase_now = trace[0][1]
        for key_id, phase in [*trace, (0, "")]:
            if phase != phase_now:
                hits, lookups = tier.hot_hits - before[0], tier.hot_lookups - before[1]
                ratios[phase_now] = hits / lookups if lookups else 0.0
                before, phase_now = (tier.hot_hits, tier.hot_lookups), phase
            if not phase:
                break
            if traces.is_hot(key_id):
                path, offset = f"{root}/hot.bin", key_id * BLOCK
            else:
                path, offset = f"{root}/table.bin", (key_id - traces.SCAN_BASE) * BLOCK
            fs.read_range(path, offset, offset + BLOCK)
    finally:
        fs.close()
    return ratios


def zipf(budget_blocks: int, length: int) -> dict[str, dict[str, dict[str, float]]]:
    """Miss ratio by alpha, by size factor, by policy."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for alpha in ALPHAS:
        trace = traces.zipf_trace(10 * budget_blocks, length, alpha, seed=11)
        out[str(alpha)] = {}
        for factor in FACTORS:
            capacity = round(budget_blocks * factor) * 4096
            fifo = traces.replay(S3FifoTier(capacity), trace)
            lru = traces.replay(MemoryTier(capacity), trace)
            out[str(alpha)][str(factor)] = {
                "s3fifo": 1 - traces.hit_ratio(fifo),
                "lru": 1 - traces.hit_ratio(lru),
            }
    return out


def run(ctx: Context, sz: Sizes) -> ScanResult:
    root = "/bench-scan"
    origin = fsspec.filesystem("memory")
    hot_blocks = max(1, sz.budget_blocks // 2)
    origin.pipe_file(f"{root}/hot.bin", bytes(hot_blocks * BLOCK))
    origin.pipe_file(f"{root}/table.bin", bytes(4 * sz.budget_blocks * BLOCK))
    try:
        phases = {policy: scan(policy, sz.budget_blocks, root) for policy in POLICIES}
    finally:
        origin.rm(root, recursive=True)
    misses = zipf(sz.budget_blocks, sz.zipf_length)
    data = {"budget_blocks": sz.budget_blocks, "block_bytes": BLOCK, "scan": phases,
            "zipf": misses}  # fmt: skip
    return {"data": data, "tables": tables(data), "targets": targets(data), "notes": []}


def tables(data: dict[str, Any]) -> str:
    budget = data["budget_blocks"] * data["block_bytes"] // KIB
    lines = [
        f"RAM budget {budget:,} KiB ({data['budget_blocks']} blocks of 64 KiB); hot set half of "
        "it, one scan of 4x it. Hot set's hit ratio:",
        "",
        "| policy | before the scan (warm-up) | during the scan | after the scan |",
        "|---|---:|---:|---:|",
    ]
    for policy, ratios in data["scan"].items():
        cells = " | ".join(f"{100 * ratios.get(p, 0.0):.1f} %" for p in traces_phases())
        lines.append(f"| {policy} | {cells} |")
    lines += [
        "",
        "Zipf miss ratios (10x the budget's blocks), S3-FIFO / LRU:",
        "",
        "| alpha | " + " | ".join(f"{f:g}x" for f in FACTORS) + " |",
        "|---|" + "---:|" * len(FACTORS),
    ]
    for alpha, by_factor in data["zipf"].items():
        cells = " | ".join(
            f"{100 * by_factor[str(f)]['s3fifo']:.1f} / {100 * by_factor[str(f)]['lru']:.1f} %"
            for f in FACTORS
        )
        lines.append(f"| {alpha} | {cells} |")
    return "\n".join(lines)


def traces_phases() -> tuple[str, str, str]:
    return traces.WARM, traces.SCAN, traces.AFTER


def targets(data: dict[str, Any]) -> list[Target]:
    fifo, lru = data["scan"]["s3fifo"], data["scan"]["lru"]
    during = fifo.get(traces.SCAN, 0.0)
    worst = max(
        by_policy["s3fifo"] - by_policy["lru"]
        for by_factor in data["zipf"].values()
        for by_policy in by_factor.values()
    )
    return [
        target(
            key="scan-hot",
            scenario="scan",
            text=f"hot set (½ the RAM budget) during a scan of 4x the budget: ≥ "
            f"{100 * HOT_TARGET:.0f} % RAM hits with s3fifo",
            measured=f"{100 * during:.1f} % (after: {100 * fifo.get(traces.AFTER, 0.0):.1f} %)",
            ratio=None,
            met=during >= HOT_TARGET,
            reference="lru in the same run",
        ),
        target(
            key="scan-hot-lru",
            scenario="scan",
            text="… the same with lru (no target: what the scan costs without s3fifo)",
            measured=f"{100 * lru.get(traces.SCAN, 0.0):.1f} % "
            f"(after: {100 * lru.get(traces.AFTER, 0.0):.1f} %)",
            ratio=None,
            met=True,
            reference="",
            informative=True,
        ),
        target(
            key="scan-zipf",
            scenario="scan",
            text=f"Zipf 0.8-1.2 at 0.25x-4x the budget: s3fifo's miss ratio ≤ lru's + "
            f"{100 * ZIPF_TOLERANCE:.0f} pt",
            measured=f"worst difference {100 * worst:+.1f} pt",
            ratio=None,
            met=worst <= ZIPF_TOLERANCE,
            reference="lru in the same run",
        ),
    ]


def report(result: ScanResult) -> Report:
    return Report({"scan": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO = Scenario(
    name="scan",
    order=15,
    sizes={
        "smoke": Sizes(budget_blocks=20, zipf_length=2_000),
        "quick": Sizes(budget_blocks=256, zipf_length=40_000),
        "full": Sizes(budget_blocks=1024, zipf_length=200_000),
    },
    run=run,
    sections=(Section("scan", "Scan resistance: S3-FIFO against LRU in the RAM tier"),),
    report=report,
)
