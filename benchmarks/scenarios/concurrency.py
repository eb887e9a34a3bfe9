"""Concurrency: 1 to 32 threads on cold data (both proxy profiles: distinct blocks, and every
thread the same blocks) and on hot data (no origin requests): throughput and the requests the
proxy saw, against direct s3fs and pyarrow's S3 filesystem (cold), the dict-slice floor and
fsspec's ``blockcache`` (hot)."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import s3fs

from harness.context import BUCKET, Context
from harness.scenario import Report, Result, Scenario, Section, body
from harness.timing import summary
from tiercache.parsing import KIB, MIB

ConcurrencyResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    threads: tuple[int, ...]
    rounds: int
    blocks: int  # 1 MiB reads per cold measurement, split among the threads
    hot_ops: int  # 64 KiB reads per hot measurement, split among the threads


COLD_DISTINCT = "cold, distinct blocks"
COLD_SHARED = "cold, every thread the same blocks"
HOT = "hot 64 KiB reads"
SHARED_BLOCKS = 4
POOL = 64  # s3fs connection pool for the concurrency clients (botocore's default is 10)


def run_threads(threads: int, jobs: list[Callable[[], None]]) -> float:
    """Run ``jobs`` on ``threads`` threads (each takes the next job); return the wall time."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(abs, range(threads)))  # the threads exist before the clock starts
        t0 = time.perf_counter()
        for future in [pool.submit(job) for job in jobs]:
            future.result()
        return time.perf_counter() - t0


class Series:
    """Rounds of one (case, path, threads) point: seconds, requests, bytes delivered."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, dict[int, dict[str, list[float]]]]] = {}

    def add(
        self, case: str, path: str, threads: int, *, seconds: float, requests: int, nbytes: int
    ) -> None:
        entry = (
            self.points.setdefault(case, {})
            .setdefault(path, {})
            .setdefault(threads, {"seconds": [], "requests": [], "bytes": []})
        )
        entry["seconds"].append(seconds)
        entry["requests"].append(requests)
        entry["bytes"].append(nbytes)

    def json(self) -> dict[str, Any]:
        return {
            case: {
                path: {
                    str(t): {
                        **summary(e["seconds"]),
                        "requests": e["requests"],
                        "bytes": e["bytes"],
                        "throughput": statistics.median(
                            b / s for b, s in zip(e["bytes"], e["seconds"], strict=True)
                        ),
                    }
                    for t, e in by_threads.items()
                }
                for path, by_threads in paths.items()
            }
            for case, paths in self.points.items()
        }


def cold_concurrency(
    ctx: Context, sz: Sizes, profile: str, series: Series, case_prefix: str
) -> None:
    proxy = ctx.proxies[profile]
    per_object = 8
    objects: dict[str, bytes] = {}
    for i in range(-(-sz.blocks // per_object)):
        key = f"concurrency/{profile}/obj-{i}.bin"
        objects[f"{BUCKET}/{key}"] = os.urandom(per_object * MIB)
        ctx.server.put_object(BUCKET, key, objects[f"{BUCKET}/{key}"])
    ranges = [(path, j * MIB, (j + 1) * MIB) for path in objects for j in range(per_object)][
        : sz.blocks
    ]
    shared_path = next(iter(objects))
    shared = [(shared_path, j * MIB, (j + 1) * MIB) for j in range(SHARED_BLOCKS)]
    options = {**ctx.options(profile), "config_kwargs": {"max_pool_connections": POOL}}
    client = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    arrow = ctx.pyarrow_fs(profile)

    def direct(path: str, start: int, end: int) -> bytes:
        return bytes(client.cat_file(path, start=start, end=end))

    def pyarrow(path: str, start: int, end: int) -> bytes:
        f = arrow.open_input_file(path)
        try:
            return bytes(f.read_at(end - start, start))
        finally:
            f.close()

    for fn in (direct, pyarrow):  # not counted: open the connections
        fn(shared_path, 0, 1)

    def check(got: bytes, path: str, start: int, end: int) -> None:
        assert got == objects[path][start:end], (profile, path, start)

    def measure(case: str, name: str, threads: int, work: list[tuple[str, int, int]]) -> None:
        pod = ctx.ram_pod(client) if name == "tiercache" else None
        read: Callable[[str, int, int], bytes] = (
            pod.read_range if pod is not None else direct if name == "direct s3fs" else pyarrow
        )

        def job(path: str, start: int, end: int) -> Callable[[], None]:
            return lambda: check(read(path, start, end), path, start, end)

        try:
            proxy.reset_counters()
            seconds = run_threads(threads, [job(*r) for r in work])
            requests = proxy.requests()
        finally:
            if pod is not None:
                pod.close()
        nbytes = sum(end - start for _, start, end in work)
        series.add(
            f"{case_prefix}{case}", name, threads, seconds=seconds, requests=requests, nbytes=nbytes
        )

    paths = ("direct s3fs", "pyarrow S3FileSystem", "tiercache")
    for _ in range(sz.rounds):
        for threads in sz.threads:
            # Shared: every thread reads the same blocks, in the same order.
            same = [r for r in shared for _ in range(threads)]
            steps = [(COLD_DISTINCT, name, ranges) for name in paths]
            steps += [(COLD_SHARED, name, same) for name in ("direct s3fs", "tiercache")]
            random.Random(threads).shuffle(steps)
            for case, name, work in steps:
                measure(case, name, threads, work)


def hot_concurrency(ctx: Context, sz: Sizes, series: Series) -> None:
    size = 64 * KIB
    object_bytes = 16 * MIB
    data = os.urandom(object_bytes)
    ctx.server.put_object(BUCKET, "concurrency/hot.bin", data)
    path = f"{BUCKET}/concurrency/hot.bin"
    options = {**ctx.server.storage_options(), "skip_instance_cache": True}
    client = s3fs.S3FileSystem(**options)
    pod = ctx.ram_pod(client)
    pod.read_range(path, 0, None)
    block = fsspec.filesystem(
        "blockcache",
        target_protocol="s3",
        target_options=options,
        cache_storage=str(ctx.workdir / "concurrency-blockcache"),
        skip_instance_cache=True,
    )
    with block.open(path, "rb") as f:
        while f.read(4 * MIB):
            pass
    floor = {path: data}

    def blockcache(offset: int) -> bytes:
        with block.open(path, "rb") as f:
            f.seek(offset)
            return bytes(f.read(size))

    readers: dict[str, Callable[[int], bytes]] = {
        "floor: dict slice": lambda o: floor[path][o : o + size],
        "tiercache": lambda o: pod.read_range(path, o, o + size),
        "blockcache open+seek+read": blockcache,
    }
    for name, fn in readers.items():
        assert fn(12_345) == data[12_345 : 12_345 + size], name
    ops = sz.hot_ops
    offsets = [(i * 7_919 * KIB + i * 13) % (object_bytes - size) for i in range(ops)]
    try:
        for _ in range(sz.rounds):
            for threads in sz.threads:
                order = list(readers.items())
                random.Random(threads).shuffle(order)
                for name, fn in order:
                    chunks = [offsets[t::threads] for t in range(threads)]

                    def job(
                        chunk: list[int], fn: Callable[[int], bytes] = fn
                    ) -> Callable[[], None]:
                        def run() -> None:
                            for o in chunk:
                                fn(o)

                        return run

                    seconds = run_threads(threads, [job(c) for c in chunks])
                    series.add(HOT, name, threads, seconds=seconds, requests=0, nbytes=ops * size)
    finally:
        pod.close()


def run(ctx: Context, sz: Sizes) -> ConcurrencyResult:
    series = Series()
    for profile in ctx.profiles:
        cold_concurrency(ctx, sz, profile, series, f"{profile}: ")
    hot_concurrency(ctx, sz, series)
    data = series.json()
    lines: list[str] = []
    for case, paths in data.items():
        if case.endswith(COLD_DISTINCT):
            what = f"{sz.blocks} reads of 1 MiB at distinct offsets, split among threads"
        elif case.endswith(COLD_SHARED):
            what = f"every thread reads the same {SHARED_BLOCKS} blocks of 1 MiB"
        else:
            what = f"{sz.hot_ops:,} reads of 64 KiB of warm data, split among the threads"
        profile = case.split(":")[0]
        where = (
            ctx.profiles[profile].describe() if profile in ctx.profiles else "no origin requests"
        )
        lines += [
            f"#### {case.split(': ')[-1][0].upper() + case.split(': ')[-1][1:]} ({where}): {what}",
            "",
            "| path | "
            + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in sz.threads)
            + " |",
            "|---|" + "---:|" * len(sz.threads),
        ]
        for path, by_threads in paths.items():
            cells = []
            for t in sz.threads:
                e = by_threads[str(t)]
                rate = (
                    f"{e['throughput'] / MIB:,.0f} MiB/s"
                    if case != HOT
                    else f"{e['throughput'] / (64 * KIB) / 1e3:,.1f} k reads/s"
                )
                requests = f", {statistics.median(e['requests']):g} req" if case != HOT else ""
                cells.append(rate + requests)
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
        lines.append("")
    notes = [
        f"s3fs clients of this scenario have a pool of {POOL} connections (botocore's default "
        "is 10); pyarrow's S3 filesystem keeps its own defaults."
    ]
    return {"data": data, "tables": "\n".join(lines), "targets": [], "notes": notes}


def report(result: ConcurrencyResult) -> Report:
    return Report({"concurrency": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: ConcurrencyResult, out: Path) -> list[str]:
    from matplotlib.ticker import NullLocator

    from harness.plots import PLAIN, color, log_y, save, subplots

    data = result["data"]
    cases = list(data)
    sz_threads = sorted({int(t) for c in data.values() for p in c.values() for t in p})
    fig, axes = subplots(2, len(cases), figsize=(3.6 * len(cases), 6.5), squeeze=False)
    for col, case in enumerate(cases):
        top, bottom = axes[0][col], axes[1][col]
        hot_case = case.startswith("hot")
        for path, by_threads in data[case].items():
            threads = sorted(int(t) for t in by_threads)
            rate = [by_threads[str(t)]["throughput"] for t in threads]
            rate = [r / (64 * KIB) for r in rate] if hot_case else [r / MIB for r in rate]
            top.plot(threads, rate, marker="o", color=color(path, 0), label=path)
            if not hot_case:
                requests = [statistics.median(by_threads[str(t)]["requests"]) for t in threads]
                bottom.plot(threads, requests, marker="o", color=color(path, 0), label=path)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(sz_threads))
            ax.xaxis.set_major_formatter(PLAIN)
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("threads")
        top.set_yscale("log")
        log_y(top, PLAIN)
        top.set_ylabel("reads/s" if hot_case else "MiB/s delivered")
        top.set_title(case, fontsize=9)
        top.legend(fontsize=7)
        if hot_case:
            bottom.set_visible(False)
        else:
            bottom.set_yscale("log")
            log_y(bottom, PLAIN)
            bottom.set_ylabel("origin requests")
    return [save(fig, out, "concurrency.png")]


SCENARIO = Scenario(
    name="concurrency",
    order=70,
    sizes={
        "smoke": Sizes(threads=(1, 4), rounds=1, blocks=8, hot_ops=20),
        "quick": Sizes(threads=(1, 2, 8, 32), rounds=1, blocks=32, hot_ops=300),
        "full": Sizes(threads=(1, 2, 4, 8, 16, 32), rounds=3, blocks=64, hot_ops=2000),
    },
    run=run,
    sections=(Section("concurrency", "Concurrency", plot="concurrency.png", alt="concurrency"),),
    report=report,
    plot=plot,
)
