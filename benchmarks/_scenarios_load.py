"""The scenarios of ``run.py`` that grow something: threads (concurrency), and object count,
object size and block size (scaling). Each figure is measured alongside its references in the
same run: direct s3fs and pyarrow's S3 filesystem for cold reads, the dict-slice floor and fsspec's
``blockcache`` for hot ones. Requests are those the proxy saw.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
import s3fs

from _scenarios import (
    BUCKET,
    STORE,
    Context,
    fmt_s,
    parquet_sweep,
    summary,
)
from tiercache import TieredFileSystem
from tiercache.parsing import KIB, MIB

# -- concurrency -------------------------------------------------------------------------------

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


def cold_concurrency(ctx: Context, profile: str, series: Series, case_prefix: str) -> None:
    sz = ctx.sizes
    proxy = ctx.proxies[profile]
    per_object = 8
    objects: dict[str, bytes] = {}
    for i in range(-(-sz.concurrency_blocks // per_object)):
        key = f"concurrency/{profile}/obj-{i}.bin"
        objects[f"{BUCKET}/{key}"] = os.urandom(per_object * MIB)
        ctx.server.put_object(BUCKET, key, objects[f"{BUCKET}/{key}"])
    ranges = [(path, j * MIB, (j + 1) * MIB) for path in objects for j in range(per_object)][
        : sz.concurrency_blocks
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
    for _ in range(sz.concurrency_rounds):
        for threads in sz.threads:
            # Shared: every thread reads the same blocks, in the same order.
            same = [r for r in shared for _ in range(threads)]
            steps = [(COLD_DISTINCT, name, ranges) for name in paths]
            steps += [(COLD_SHARED, name, same) for name in ("direct s3fs", "tiercache")]
            random.Random(threads).shuffle(steps)
            for case, name, work in steps:
                measure(case, name, threads, work)


def hot_concurrency(ctx: Context, series: Series) -> None:
    sz = ctx.sizes
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
    ops = sz.concurrency_hot_ops
    offsets = [(i * 7_919 * KIB + i * 13) % (object_bytes - size) for i in range(ops)]
    try:
        for _ in range(sz.concurrency_rounds):
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


def concurrency(ctx: Context) -> dict[str, Any]:
    series = Series()
    for profile in ctx.profiles:
        cold_concurrency(ctx, profile, series, f"{profile}: ")
    hot_concurrency(ctx, series)
    data = series.json()
    lines: list[str] = []
    sz = ctx.sizes
    for case, paths in data.items():
        if case.endswith(COLD_DISTINCT):
            what = (
                f"{sz.concurrency_blocks} reads of 1 MiB at distinct offsets, split among threads"
            )
        elif case.endswith(COLD_SHARED):
            what = f"every thread reads the same {SHARED_BLOCKS} blocks of 1 MiB"
        else:
            what = (
                f"{sz.concurrency_hot_ops:,} reads of 64 KiB of warm data, split among the threads"
            )
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


# -- scaling -----------------------------------------------------------------------------------


class Points:
    """Rounds per (axis value, path): seconds, proxy requests, origin bytes (tiercache)."""

    def __init__(self) -> None:
        self.points: dict[str, dict[int, dict[str, list[float]]]] = {}

    def add(
        self, path: str, x: int, seconds: float, requests: int, origin_bytes: int | None = None
    ) -> None:
        entry = self.points.setdefault(path, {}).setdefault(
            x, {"seconds": [], "requests": [], "origin_bytes": []}
        )
        entry["seconds"].append(seconds)
        entry["requests"].append(requests)
        if origin_bytes is not None:
            entry["origin_bytes"].append(origin_bytes)

    def time(
        self,
        path: str,
        x: int,
        fn: Callable[[], object],
        proxy: Any,
        pod: TieredFileSystem | None = None,
    ) -> object:
        """Time ``fn()`` as one round of ``path`` at ``x``; return what it returned."""
        before = pod.stats()["origin"]["bytes"] if pod is not None else 0
        proxy.reset_counters()
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        fetched = pod.stats()["origin"]["bytes"] - before if pod is not None else None
        self.add(path, x, seconds, proxy.requests(), fetched)
        return out

    def json(self) -> dict[str, Any]:
        return {
            path: {
                str(x): {
                    **summary(e["seconds"]),
                    "requests": statistics.median(e["requests"]),
                    "origin_bytes": (
                        statistics.median(e["origin_bytes"]) if e["origin_bytes"] else None
                    ),
                }
                for x, e in xs.items()
            }
            for path, xs in self.points.items()
        }


def scale_count(ctx: Context, client: Any) -> dict[str, Any]:
    """N objects of 256 KiB read whole: one by one, and batched (``cat_ranges``)."""
    sz = ctx.sizes
    proxy = ctx.proxies[STORE]
    size = 256 * KIB
    objects = {}
    for i in range(max(sz.count_points)):
        key = f"scale/count/obj-{i:05d}.bin"
        objects[f"{BUCKET}/{key}"] = os.urandom(size)
        ctx.server.put_object(BUCKET, key, objects[f"{BUCKET}/{key}"])
    paths = list(objects)
    client.cat_file(paths[0], start=0, end=1)  # not counted: open the connections
    points = Points()

    def one_by_one(read: Callable[[str], bytes], chosen: list[str]) -> Callable[[], object]:
        def run() -> None:
            for p in chosen:
                assert read(p) == objects[p], p

        return run

    def batched(fs: Any, chosen: list[str]) -> Callable[[], object]:
        def run() -> None:
            got = fs.cat_ranges(chosen, [0] * len(chosen), [size] * len(chosen))
            assert list(got) == [objects[p] for p in chosen]

        return run

    def direct(path: str) -> bytes:
        return bytes(client.cat_file(path))

    for _ in range(sz.scaling_rounds):
        for n in sz.count_points:
            chosen = paths[:n]
            client.invalidate_cache()
            points.time("direct s3fs, one by one", n, one_by_one(direct, chosen), proxy)
            client.invalidate_cache()
            points.time("direct s3fs, batched cat_ranges", n, batched(client, chosen), proxy)
            pod = ctx.ram_pod(client)
            try:

                def read(path: str, pod: TieredFileSystem = pod) -> bytes:
                    return pod.read_range(path, 0, None)

                run = one_by_one(read, chosen)
                points.time("tiercache cold, one by one", n, run, proxy, pod)
                points.time("tiercache warm, one by one", n, run, proxy, pod)
            finally:
                pod.close()
            pod = ctx.ram_pod(client)
            try:
                points.time(
                    "tiercache cold, batched cat_ranges", n, batched(pod, chosen), proxy, pod
                )
            finally:
                pod.close()
    return points.json()


def scale_size(ctx: Context, client: Any) -> dict[str, Any]:
    """One object of each size read whole, cold and warm."""
    sz = ctx.sizes
    proxy = ctx.proxies[STORE]
    arrow = ctx.pyarrow_fs(STORE)
    objects = {}
    for size in sz.size_points:
        key = f"scale/size/obj-{size}.bin"
        objects[size] = (f"{BUCKET}/{key}", os.urandom(size))
        ctx.server.put_object(BUCKET, key, objects[size][1])
    points = Points()

    def whole(read: Callable[[str], bytes], path: str, data: bytes) -> Callable[[], object]:
        def run() -> None:
            assert read(path) == data, path

        return run

    def direct(path: str) -> bytes:
        return bytes(client.cat_file(path))

    def pyarrow(path: str) -> bytes:
        f = arrow.open_input_file(path)
        try:
            return bytes(f.read())
        finally:
            f.close()

    pyarrow(objects[sz.size_points[0]][0])  # not counted: pyarrow's connections
    for _ in range(sz.scaling_rounds):
        for size, (path, data) in objects.items():
            steps: list[tuple[str, Callable[[str], bytes]]] = [
                ("direct s3fs cat_file", direct),
                ("pyarrow S3FileSystem open_input_file + read", pyarrow),
            ]
            random.Random(size).shuffle(steps)
            for name, read in steps:
                points.time(name, size, whole(read, path, data), proxy)
            pod = ctx.ram_pod(client)
            try:

                def chain(path: str, pod: TieredFileSystem = pod) -> bytes:
                    return pod.read_range(path, 0, None)

                run = whole(chain, path, data)
                points.time("tiercache cold read_range", size, run, proxy, pod)
                points.time("tiercache warm read_range", size, run, proxy, pod)
            finally:
                pod.close()
    return points.json()


def scale_block(ctx: Context, client: Any) -> dict[str, Any]:
    """Per block size: scattered cold 64 KiB reads, a whole 16 MiB object, hot 64 KiB reads."""
    sz = ctx.sizes
    proxy = ctx.proxies[STORE]
    scatter_bytes, whole_bytes = 64 * MIB, 16 * MIB
    scatter = os.urandom(scatter_bytes)
    whole = scatter[:whole_bytes]
    ctx.server.put_object(BUCKET, "scale/block/scatter.bin", scatter)
    ctx.server.put_object(BUCKET, "scale/block/whole.bin", whole)
    scatter_path, whole_path = (
        f"{BUCKET}/scale/block/scatter.bin",
        f"{BUCKET}/scale/block/whole.bin",
    )
    rng = random.Random(5)
    offsets = sorted(
        rng.randrange(0, scatter_bytes - 64 * KIB) for _ in range(sz.block_scattered_reads)
    )
    hot_offsets = [(i * 7_919 * KIB + i * 13) % (whole_bytes - 64 * KIB) for i in range(500)]
    points = Points()
    floor = {whole_path: whole}

    def scattered(read: Callable[[str, int, int], bytes]) -> Callable[[], object]:
        def run() -> None:
            for o in offsets:
                assert read(scatter_path, o, o + 64 * KIB) == scatter[o : o + 64 * KIB]

        return run

    def whole_read(read: Callable[[str, int, int], bytes]) -> Callable[[], object]:
        def run() -> None:
            assert read(whole_path, 0, whole_bytes) == whole

        return run

    def hot_loop(read: Callable[[str, int, int], bytes]) -> float:
        """Seconds per read: the hot 64 KiB reads (of the whole object, warm in ``read``'s pod)."""
        t0 = time.perf_counter()
        for o in hot_offsets:
            read(whole_path, o, o + 64 * KIB)
        return (time.perf_counter() - t0) / len(hot_offsets)

    def direct(path: str, start: int, end: int) -> bytes:
        return bytes(client.cat_file(path, start=start, end=end))

    def dict_slice(path: str, start: int, end: int) -> bytes:
        return floor[path][start:end]

    first = sz.block_points[0]
    for n in range(sz.scaling_rounds):
        # The references do not depend on the block size: measured once per round, drawn flat.
        points.time("scattered 64 KiB reads: direct s3fs", first, scattered(direct), proxy)
        points.time("whole 16 MiB object: direct s3fs", first, whole_read(direct), proxy)
        points.add("hot 64 KiB reads: floor (dict slice)", first, hot_loop(dict_slice), 0)
        order = list(sz.block_points)
        random.Random(n).shuffle(order)
        for b in order:
            pod = ctx.ram_pod(client, block_size_bytes=b)
            try:
                points.time(
                    "scattered 64 KiB reads: tiercache cold",
                    b,
                    scattered(pod.read_range),
                    proxy,
                    pod,
                )
                points.time(
                    "whole 16 MiB object: tiercache cold", b, whole_read(pod.read_range), proxy, pod
                )
                points.add("hot 64 KiB reads: tiercache", b, hot_loop(pod.read_range), 0)
            finally:
                pod.close()
    out = points.json()
    for by_x in out.values():  # the references, at every block size
        if str(first) in by_x and len(by_x) == 1:
            for b in sz.block_points:
                by_x[str(b)] = by_x[str(first)]
    return out


def axis_table(
    points: dict[str, Any], label: Callable[[int], str], *, origin_bytes: bool = False
) -> list[str]:
    """Rows: paths; columns: the axis values; cells: median time, requests (and origin MiB)."""
    xs = sorted({int(x) for by_x in points.values() for x in by_x})
    lines = [
        "| path | " + " | ".join(label(x) for x in xs) + " |",
        "|---|" + "---:|" * len(xs),
    ]
    for path, by_x in points.items():
        cells = []
        for x in xs:
            e = by_x.get(str(x))
            if e is None:
                cells.append("—")
                continue
            cell = f"{fmt_s(e['median'])}, {e['requests']:g} req"
            if origin_bytes and e["origin_bytes"] is not None:
                cell += f", {e['origin_bytes'] / MIB:,.2f} MiB"
            cells.append(cell)
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def size_label(n: int) -> str:
    return f"{n // MIB:,} MiB" if n >= MIB else f"{n // KIB:,} KiB"


def scaling(ctx: Context) -> dict[str, Any]:
    client = ctx.client(STORE)
    count = scale_count(ctx, client)
    size = scale_size(ctx, client)
    block = scale_block(ctx, client)
    parquet = parquet_sweep(ctx)
    data = {"count": count, "size": size, "block": block, "parquet": parquet["data"]}
    rounds = ctx.sizes.scaling_rounds
    tables = {
        "count": "\n".join(
            [
                f"Objects of 256 KiB, each read whole; medians of {rounds} round(s); "
                "time, proxy requests and (tiercache cold) origin MiB.",
                "",
                *axis_table(
                    count, lambda n: f"{n:,} object{'s' if n > 1 else ''}", origin_bytes=True
                ),
            ]
        ),
        "size": "\n".join(
            [
                f"One object of each size, read whole; medians of {rounds} round(s).",
                "",
                *axis_table(size, size_label, origin_bytes=True),
            ]
        ),
        "block": "\n".join(
            [
                f"Per block size: {ctx.sizes.block_scattered_reads} cold 64 KiB reads at scattered "
                "offsets of a 64 MiB object (one new pod), a cold whole 16 MiB object, then hot "
                f"64 KiB reads of it (time per read); medians of {rounds} round(s). The direct "
                "s3fs and floor rows do not depend on the block size.",
                "",
                *axis_table(block, size_label, origin_bytes=True),
            ]
        ),
        "parquet": parquet["tables"],
    }
    return {"data": data, "tables": tables, "targets": [], "notes": []}
