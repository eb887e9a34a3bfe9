"""Memory: a pod's peak RSS growth while it reads distinct data, against its memory budget.

Issue 12: with ``TIERCACHE_MEMORY_BYTES=64MiB`` and a disk tier, 8 threads reading 1 GiB of
distinct data peaked at 406 MiB RSS (38 MiB at the start): the background fill queue held up to
1,024 whole blocks outside any budget. Each case runs in a fresh process (this module, run as
``python -m scenarios.memory``), configured only by ``TIERCACHE_*`` variables as a pod would be,
over the ``file`` target (files just written, so in the page cache: a local origin faster than
any object store, which is what fills the queue). The process reads its RSS once set up (imports
done, filesystem built, no read yet) and resets its RSS high-water mark, then 8 threads each read
their own file in 1 MiB block-aligned reads, then the high-water mark (``VmHWM``) gives the peak.
Growth = peak - RSS after set-up. Not ``ru_maxrss``: in a process started by fork + exec, Linux
carries the parent's peak RSS into it, and it cannot be reset (measured: 189 MiB, this program's
own, in a child whose own peak was 111 MiB).

Cases: RAM tier only, and RAM tier + disk tier; each with glibc's malloc as the process gets it,
and with ``MALLOC_ARENA_MAX=1`` (one malloc arena: the RSS that per-thread arenas keep besides the
budgets, measured; see ``docs/operations.md``). The target: peak growth within the RAM budget plus
64 MiB (the fill queue's 16 MiB, the reads in flight, the allocator), for both tiers' cases as the
process gets them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.scenario import Report, Result, Scenario, Section, Target, body, target
from tiercache.parsing import KIB, MIB

if TYPE_CHECKING:  # not imported by the child process (this module, run as a program)
    from harness.context import Context

THREADS = 8
RAM_BUDGET = 64 * MIB
SLACK = 64 * MIB  # the target: peak RSS growth <= RAM budget + this
READ = MIB  # one block per read, block-aligned

RAM = "RAM tier only"
DISK = "RAM tier + disk tier"
ONE_ARENA = "MALLOC_ARENA_MAX=1"
CASES: dict[str, tuple[bool, dict[str, str]]] = {
    DISK: (True, {}),
    RAM: (False, {}),
    f"{DISK}, {ONE_ARENA}": (True, {"MALLOC_ARENA_MAX": "1"}),
    f"{RAM}, {ONE_ARENA}": (False, {"MALLOC_ARENA_MAX": "1"}),
}
#: ``benchmarks/``: the child runs as ``python -m scenarios.memory`` from there.
BENCHMARKS = Path(__file__).resolve().parents[1]

MemoryResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    read_bytes: int  # distinct data the 8 threads read, in all
    rounds: int  # a fresh process per case and round


def child(files: list[str], read_bytes: int) -> dict[str, Any]:
    """One case, in this process (configured by the environment): read, measure, report."""
    import resource
    import threading
    import time

    import fsspec

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def peak_rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * KIB
        raise RuntimeError("no VmHWM in /proc/self/status")

    fs = fsspec.filesystem("tiercache", target_protocol="file", skip_instance_cache=True)
    settings = fs.settings
    base = rss()
    # The peak from here on: reset the high-water mark to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    errors: list[BaseException] = []

    def read_file(path: str) -> None:
        try:
            for offset in range(0, read_bytes, READ):
                got = fs.read_range(path, offset, offset + READ)
                assert len(got) == READ, (path, offset, len(got))
        except BaseException as exc:  # reported by the parent
            errors.append(exc)

    threads = [threading.Thread(target=read_file, args=(path,)) for path in files]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    # Not the peak: after fork + exec, Linux counts the parent's RSS at the fork in ru_maxrss.
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB  # KiB on Linux
    at_end = rss()
    stats = fs.stats()
    fs.chain.fills.join(30.0)
    drained = rss()
    if errors:
        raise errors[0]
    return {
        "base_bytes": base,
        "peak_bytes": peak,
        "growth_bytes": peak - base,
        "ru_maxrss_bytes": ru_maxrss,
        "end_growth_bytes": at_end - base,
        "drained_growth_bytes": drained - base,
        "seconds": seconds,
        "read_bytes": read_bytes * len(files),
        "fills": stats["fills"],
        "memory_used_bytes": stats["tiers"]["memory"].get("used_bytes"),
        "memory_bytes": settings.memory_bytes,
        # Absent before TIERCACHE_FILL_QUEUE_BYTES existed (a run of an older commit).
        "fill_queue_bytes": getattr(settings, "fill_queue_bytes", None),
        "fill_queue_size": settings.fill_queue_size,
    }


def run_case(
    files: list[Path], read_bytes: int, disk_dir: Path | None, extra_env: dict[str, str]
) -> dict[str, Any]:
    """One case in a fresh process, configured as a pod is: by ``TIERCACHE_*`` variables."""
    import tiercache

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    for name in ("TIERCACHE_MEMORY_BYTES", "TIERCACHE_DISK_DIR", "TIERCACHE_REDIS_URL"):
        env.pop(name, None)
    env["TIERCACHE_MEMORY_BYTES"] = str(RAM_BUDGET)
    if disk_dir is not None:
        env["TIERCACHE_DISK_DIR"] = str(disk_dir)
    env.update(extra_env)
    # The child measures the tiercache this program imported (a run of another commit's src/
    # by PYTHONPATH measures that commit).
    source = str(Path(tiercache.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    argument = json.dumps({"files": [str(f) for f in files], "read_bytes": read_bytes})
    # As a module from benchmarks/ (as when this was a file there): a program in scenarios/ would
    # have that folder first on sys.path, where scenarios/redis.py hides the redis package.
    done = subprocess.run(
        [sys.executable, "-m", "scenarios.memory", argument],
        cwd=BENCHMARKS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory case failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def write_files(directory: Path, count: int, size: int) -> list[Path]:
    """``count`` files of ``size`` bytes, every 1 MiB chunk distinct (its first 8 bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(MIB)
    files = []
    for i in range(count):
        path = directory / f"part-{i:02d}.bin"
        with open(path, "wb") as out:
            for j in range(size // MIB):
                out.write((i * 1_000_000 + j).to_bytes(8, "big") + chunk[8:])
        files.append(path)
    return files


def mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def run(ctx: Context, sz: Sizes) -> MemoryResult:
    """Peak RSS growth of a pod reading distinct data, RAM-only and with a disk tier."""
    import random
    import shutil

    per_thread = max(MIB, sz.read_bytes // THREADS // MIB * MIB)
    total = per_thread * THREADS
    workdir = ctx.workdir / "memory"
    files = write_files(workdir / "data", THREADS, per_thread)
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    order = list(CASES)
    shuffle = random.Random(12).shuffle
    serial = 0
    try:
        for _ in range(sz.rounds):
            shuffle(order)
            for case in order:
                with_disk, extra_env = CASES[case]
                serial += 1
                disk_dir = workdir / f"cache-{serial}" if with_disk else None
                try:
                    runs[case].append(run_case(files, per_thread, disk_dir, extra_env))
                finally:
                    if disk_dir is not None:
                        shutil.rmtree(disk_dir, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    limit = RAM_BUDGET + SLACK
    rows = [
        "| case | peak RSS growth: worst (median) | budgets: RAM + fill queue | worst over the "
        "budgets | at the end of the reads | fills drained | fills queued / dropped | read |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    data: dict[str, Any] = {}
    targets: list[Target] = []
    for case, results in runs.items():
        growth = [r["growth_bytes"] for r in results]
        worst = max(growth)
        with_disk, _ = CASES[case]
        fill_budget = results[0]["fill_queue_bytes"] if with_disk else 0
        budgets = RAM_BUDGET + (fill_budget or 0)
        shown_budget = (
            mib(RAM_BUDGET)
            + (" + " + mib(fill_budget) if with_disk and fill_budget else "")
            + (" + unbounded" if with_disk and fill_budget is None else "")
        )
        queued = sum(r["fills"]["queued"] for r in results)
        dropped = sum(r["fills"]["dropped"] for r in results)
        rate = statistics.median(r["read_bytes"] / r["seconds"] for r in results)
        rows.append(
            f"| {case} | {mib(worst)} ({mib(statistics.median(growth))}) | {shown_budget} | "
            f"{mib(worst - budgets)} | {mib(max(r['end_growth_bytes'] for r in results))} | "
            f"{mib(max(r['drained_growth_bytes'] for r in results))} | {queued:,} / {dropped:,} | "
            f"{mib(rate)}/s |"
        )
        data[case] = {"rounds": results, "worst_growth_bytes": worst, "budgets_bytes": budgets}
        one_arena = ONE_ARENA in case
        what = "RAM tier + disk tier" if with_disk else "RAM tier only"
        targets.append(
            target(
                key=f"memory-{'disk' if with_disk else 'ram'}{'-one-arena' if one_arena else ''}",
                scenario="memory",
                text=(
                    f"{what}, `TIERCACHE_MEMORY_BYTES=64MiB`, {THREADS} threads reading "
                    f"{mib(total)} of distinct data: peak RSS growth ≤ 1x (the RAM budget + "
                    f"64 MiB = {mib(limit)})"
                )
                if not one_arena
                else f"the same, {what}, with `{ONE_ARENA}` (not a target)",
                measured=f"{mib(worst)} (worst of {len(results)}); {mib(worst - budgets)} over "
                f"the budgets",
                ratio=worst / limit,
                met=worst <= limit,
                reference=f"RAM budget + {mib(SLACK)}",
                informative=one_arena,
            )
        )
    base = statistics.median(r["base_bytes"] for rs in runs.values() for r in rs)
    notes = [
        f"{THREADS} threads, each reading its own file of {mib(per_thread)} in 1 MiB "
        f"block-aligned reads ({mib(total)} in all, the `file` target, the files in the page "
        f"cache); a fresh process per case and round, {sz.rounds} round(s), cases shuffled.",
        f"Growth = peak RSS (`VmHWM`, reset once set up) - RSS once set up (median {mib(base)}: "
        "imports done, filesystem built); 'at the end' and 'fills drained' are RSS - the same "
        "base, after the reads and after `fills.join()`. Not `ru_maxrss`: after fork + exec it "
        "holds the parent's peak RSS.",
        "Budgets: `TIERCACHE_MEMORY_BYTES` and `TIERCACHE_FILL_QUEUE_BYTES` (absent: a commit "
        "before the fill queue was bounded in bytes). The rest of the growth is reads in flight "
        "and what glibc's per-thread malloc arenas keep (the `MALLOC_ARENA_MAX=1` rows).",
    ]
    return {"data": data, "tables": "\n".join(rows), "targets": targets, "notes": notes}


def report(result: MemoryResult) -> Report:
    return Report({"memory": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO = Scenario(
    name="memory",
    order=90,
    sizes={
        "smoke": Sizes(read_bytes=64 * MIB, rounds=1),
        "quick": Sizes(read_bytes=512 * MIB, rounds=1),
        "full": Sizes(read_bytes=1024 * MIB, rounds=3),
    },
    run=run,
    sections=(Section("memory", "Memory: peak RSS against the budget"),),
    report=report,
)


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(child(arguments["files"], arguments["read_bytes"])))
