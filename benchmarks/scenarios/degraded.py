"""Degraded modes: what a broken tier costs a pod, and that its bytes stay exact.

A pod (empty RAM) reads, for each of a few objects of ~3 MiB, its last 64 KiB (a footer: a
metadata block, the kind Redis keeps) and 1 MiB from a third of a MiB in (data), through the
emulated object store. Each read is timed and compared with the origin's bytes. Every fault is
measured twice: striking a *running* pod (built while the tier was healthy, then the fault, then
the reads), and a *new* pod built while the fault lasts (its start-up meets the fault).

- **Redis** (the program's own ``redis-server``, warmed by an earlier pod each round): healthy;
  hung (SIGSTOP: the kernel accepts connections, nothing answers); killed (SIGKILL: connections
  refused). References: the healthy run, and a pod without Redis.
- **Disk** (a disk tier on a 64 MiB tmpfs): empty (cold, fills in the background), warm (a new pod
  over the filled directory), and full (the tmpfs shrunk to the bytes it uses, then reading
  objects that are not cached: every fill fails). References: the healthy empty disk (same sizes,
  other objects), and a pod without a disk tier (the same objects).

Default settings otherwise (Redis and disk timeouts 50 ms, breaker after 5 failures).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.context import BUCKET, STORE, Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, body
from harness.timing import pct, summary
from redis_footers import HMAC_KEY
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.parsing import KIB, MIB
from tiercache.testing import RedisServer
from tiercache.testing.servers.tmpfs import remount, tmpfs

TMPFS_BYTES = 64 * MIB

DegradedResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    rounds: int
    objects: int  # of ~3 MiB each pod reads (a footer and 1 MiB of data of each)


NO_REDIS = "no Redis (RAM only)"
HEALTHY = "healthy Redis, warm"
HUNG_RUNNING = "Redis hung (SIGSTOP), running pod"
HUNG_NEW = "Redis hung (SIGSTOP), new pod"
KILLED_RUNNING = "Redis killed (SIGKILL), running pod"
KILLED_NEW = "Redis killed (SIGKILL), new pod"
NO_DISK = "no disk tier (RAM only)"
DISK_COLD = "healthy disk, empty"
DISK_WARM = "healthy disk, warm"
FULL_RUNNING = "disk full (tmpfs), running pod"
FULL_NEW = "disk full (tmpfs), new pod"
REDIS_CASES = (HEALTHY, NO_REDIS, HUNG_RUNNING, HUNG_NEW, KILLED_RUNNING, KILLED_NEW)
DISK_CASES = (DISK_WARM, DISK_COLD, NO_DISK, FULL_RUNNING, FULL_NEW)
# The reference each fault is compared with first (the healthy run), and second (no such tier).
REFERENCES = {
    HUNG_RUNNING: (HEALTHY, NO_REDIS),
    HUNG_NEW: (HEALTHY, NO_REDIS),
    KILLED_RUNNING: (HEALTHY, NO_REDIS),
    KILLED_NEW: (HEALTHY, NO_REDIS),
    FULL_RUNNING: (DISK_COLD, NO_DISK),
    FULL_NEW: (DISK_COLD, NO_DISK),
}


def make_objects(ctx: Context, name: str, count: int) -> dict[str, bytes]:
    objects = {}
    for i in range(count):
        key = f"degraded/{name}/part-{i:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        data = os.urandom(3 * MIB + 1000 * (i + 1))
        ctx.server.put_object(BUCKET, key, data)
        objects[f"{BUCKET}/{key}"] = data
    return objects


def workload(fs: TieredFileSystem, objects: dict[str, bytes]) -> tuple[list[float], int]:
    """Read every object's footer and a 1 MiB data range; latencies, and reads with wrong bytes."""
    latencies: list[float] = []
    wrong = 0
    for path, data in objects.items():
        for start, end in ((-64 * KIB, None), (MIB // 3, MIB // 3 + MIB)):
            t0 = time.perf_counter()
            got = fs.read_range(path, start, end)
            latencies.append(time.perf_counter() - t0)
            wrong += got != data[start:end]
    return latencies, wrong


class Recorder:
    """Per-case rounds: pod construction, the workload's reads, origin requests, tier counters."""

    def __init__(self, cases: tuple[str, ...]) -> None:
        self.cases: dict[str, dict[str, list[Any]]] = {
            case: {"start": [], "total": [], "reads": [], "wrong": [], "origin": [], "tier": []}
            for case in cases
        }

    def measure(
        self,
        case: str,
        settings: Settings,
        client: Any,
        objects: dict[str, bytes],
        tier_name: str | None,
        *,
        inject: Callable[[], None] | None = None,
        clear: Callable[[], None] | None = None,
        join_fills: bool = False,
    ) -> None:
        """A pod is built, then ``inject`` runs (a fault striking a running pod), then the pod
        reads; ``clear`` runs before the pod is closed, also on error."""
        try:
            t0 = time.perf_counter()
            fs = TieredFileSystem(fs=client, settings=settings, tiers=default_tiers(settings))
            started = time.perf_counter() - t0
            try:
                if inject is not None:
                    inject()
                latencies, wrong = workload(fs, objects)
                if join_fills:
                    fs.chain.fills.join()
                stats = fs.stats()
            finally:
                if clear is not None:
                    clear()
                    clear = None
                fs.close()
        finally:
            if clear is not None:
                clear()
        entry = self.cases[case]
        entry["start"].append(started)
        entry["total"].append(started + sum(latencies))
        entry["reads"].extend(latencies)
        entry["wrong"].append(wrong)
        entry["origin"].append(stats["origin"]["requests"])
        tier = stats["tiers"].get(tier_name) if tier_name else None
        entry["tier"].append(
            None
            if tier is None
            else {
                k: tier.get(k)
                for k in ("hits", "misses", "timeouts", "errors", "rejected", "full_skips", "state")
                if k in tier
            }
        )


def redis_faults(
    ctx: Context, client: Any, objects: dict[str, bytes], rounds: int
) -> dict[str, Any]:
    recorder = Recorder(REDIS_CASES)
    with RedisServer() as own:
        for _ in range(rounds):
            settings = dataclasses.replace(
                ctx.settings,
                redis_url=own.url,
                redis_prefix=f"tcdeg:{uuid.uuid4().hex[:12]}:",
                redis_hmac_key=HMAC_KEY,
            )
            no_redis = dataclasses.replace(ctx.settings, redis_url=None)
            warmer = TieredFileSystem(fs=client, settings=settings, tiers=default_tiers(settings))
            try:
                workload(warmer, objects)
                warmer.chain.fills.join()
            finally:
                warmer.close()
            recorder.measure(HEALTHY, settings, client, objects, "redis")
            recorder.measure(NO_REDIS, no_redis, client, objects, None)
            recorder.measure(
                HUNG_RUNNING, settings, client, objects, "redis", inject=own.stop, clear=own.cont
            )
            own.stop()
            recorder.measure(HUNG_NEW, settings, client, objects, "redis", clear=own.cont)
            recorder.measure(
                KILLED_RUNNING,
                settings,
                client,
                objects,
                "redis",
                inject=own.kill,
                clear=own.restart,
            )
            own.kill()
            recorder.measure(KILLED_NEW, settings, client, objects, "redis", clear=own.restart)
    return recorder.cases


def disk_faults(
    ctx: Context, client: Any, objects: dict[str, bytes], rounds: int
) -> dict[str, Any] | None:
    """None when no tmpfs can be mounted here (not root)."""
    others = make_objects(ctx, "disk-b", len(objects))
    recorder = Recorder(DISK_CASES)
    mount_point = ctx.workdir / "degraded-tmpfs"
    with tmpfs(mount_point, size_bytes=TMPFS_BYTES) as mounted:
        if mounted is None:
            return None

        def fill_up() -> None:
            """Shrink the tmpfs to what it uses: no free block left (as the chaos tests do)."""
            assert mounted is not None
            used = os.statvfs(mounted)
            remount(mounted, size_bytes=(used.f_blocks - used.f_bfree) * used.f_frsize + 64 * KIB)

        def free() -> None:
            assert mounted is not None
            remount(mounted, size_bytes=TMPFS_BYTES)

        for n in range(rounds):
            directory = Path(mounted) / f"round-{n}"
            settings = dataclasses.replace(ctx.settings, disk_dir=str(directory), redis_url=None)
            no_disk = dataclasses.replace(ctx.settings, disk_dir=None, redis_url=None)
            recorder.measure(DISK_COLD, settings, client, objects, "disk", join_fills=True)
            recorder.measure(DISK_WARM, settings, client, objects, "disk")
            recorder.measure(NO_DISK, no_disk, client, others, None)
            recorder.measure(
                FULL_RUNNING,
                settings,
                client,
                others,
                "disk",
                inject=fill_up,
                clear=free,
                join_fills=True,
            )
            fill_up()
            recorder.measure(FULL_NEW, settings, client, others, "disk", clear=free)
            shutil.rmtree(directory, ignore_errors=True)
    return recorder.cases


def counters(entries: list[dict[str, Any] | None]) -> str:
    """Tier counters summed over the rounds (the non-zero ones)."""
    total: dict[str, int] = {}
    for entry in entries:
        for k, v in (entry or {}).items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
    shown = [f"{k} {v:,}" for k, v in total.items() if v]
    return ", ".join(shown) if shown else "—"


def run(ctx: Context, sz: Sizes) -> DegradedResult:
    client = ctx.client(STORE)
    objects = make_objects(ctx, "a", sz.objects)
    client.cat_file(next(iter(objects)), start=0, end=1)  # open the client's connections
    groups: dict[str, dict[str, Any]] = {"redis": redis_faults(ctx, client, objects, sz.rounds)}
    notes: list[str] = []
    disk_cases = disk_faults(ctx, client, objects, sz.rounds)
    if disk_cases is None:
        notes.append("Disk full was not measured: no tmpfs can be mounted here (needs root).")
    else:
        groups["disk"] = disk_cases
    reads = 2 * len(objects)
    data: dict[str, Any] = {"reads_per_pod": reads, "groups": {}}
    lines = [
        f"Each pod: {reads} reads ({len(objects)} objects of ~3 MiB: the last 64 KiB, then 1 MiB "
        f"of data), {sz.rounds} round(s); Redis and disk timeouts "
        f"{ctx.settings.redis_timeout_s * 1e3:g} / {ctx.settings.disk_timeout_s * 1e3:g} ms, "
        f"breaker after {ctx.settings.breaker_failures} failures.",
        "",
        "| case | pod start + reads (median) | spread | added vs healthy | added vs no tier "
        "| read p50 | slowest read | pod start | origin requests | tier counters (all rounds) "
        "| timeouts x budget, per pod | reads with wrong bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for group, cases in groups.items():
        medians = {case: statistics.median(e["total"]) for case, e in cases.items()}
        out: dict[str, Any] = {}
        for case, e in cases.items():
            refs = REFERENCES.get(case)
            added = (
                [medians[case] - medians[refs[0]], medians[case] - medians[refs[1]]]
                if refs
                else None
            )
            out[case] = {
                **summary(e["total"]),
                "reads": e["reads"],
                "added_vs_healthy": None if added is None else added[0],
                "added_vs_no_tier": None if added is None else added[1],
                "start": summary(e["start"]),
                "wrong": sum(e["wrong"]),
                "origin": e["origin"],
                "tier": e["tier"],
            }
            spread = summary(e["total"])["spread"]
            timeouts = sum((t or {}).get("timeouts", 0) for t in e["tier"]) / len(e["tier"])
            budget = (
                ctx.settings.redis_timeout_s if group == "redis" else ctx.settings.disk_timeout_s
            )
            out[case]["timeouts_per_pod"] = timeouts
            lines.append(
                f"| {case} | {fmt_s(medians[case])} | {spread:.0%} "
                f"| {'—' if added is None else f'{added[0] * 1e3:+,.1f} ms'} "
                f"| {'—' if added is None else f'{added[1] * 1e3:+,.1f} ms'} "
                f"| {fmt_s(pct(e['reads'], 0.5))} | {fmt_s(max(e['reads']))} "
                f"| {fmt_s(statistics.median(e['start']))} "
                f"| {statistics.median(e['origin']):g} | {counters(e['tier'])} "
                f"| {timeouts * budget * 1e3:,.0f} ms "
                f"| {sum(e['wrong'])} of {len(e['reads'])} |"
            )
        data["groups"][group] = out
    lines.append("")
    wrong = sum(c["wrong"] for g in data["groups"].values() for c in g.values())
    assert wrong == 0, f"{wrong} degraded reads returned wrong bytes"
    return {"data": data, "tables": "\n".join(lines), "targets": [], "notes": notes}


def report(result: DegradedResult) -> Report:
    return Report({"degraded": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: DegradedResult, out: Path) -> list[str]:
    from harness.plots import SECONDS, save, subplots, value_label

    groups = result["data"]["groups"]
    fig, axes = subplots(1, len(groups), figsize=(6.5 * len(groups), 4), squeeze=False)
    for ax, (group, cases) in zip(axes[0], groups.items(), strict=True):
        names = list(cases)
        ax.boxplot(
            [cases[n]["reads"] for n in names],
            vert=False,
            tick_labels=[f"{n}\npod: {value_label(cases[n]['median'])}" for n in names],
            showfliers=True,
        )
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(SECONDS)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(
            f"{group}: each read's latency (all rounds); pod = start + reads, median", fontsize=9
        )
    return [save(fig, out, "degraded.png")]


SCENARIO = Scenario(
    name="degraded",
    order=60,
    sizes={
        "smoke": Sizes(rounds=1, objects=2),
        "quick": Sizes(rounds=2, objects=4),
        "full": Sizes(rounds=5, objects=8),
    },
    run=run,
    sections=(Section("degraded", "Degraded modes", plot="degraded.png", alt="degraded modes"),),
    report=report,
    plot=plot,
)
