"""Scaling: time and requests (the proxy's) and origin bytes (tiercache's) by object count,
object size and block size, and ``block_size.py``'s Parquet workload at every block size; against
direct s3fs and pyarrow's S3 filesystem (cold) and the dict-slice floor (hot). Plotted log-log."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import block_size
from harness.context import BUCKET, STORE, Context
from harness.fmt import fmt_s, size_label
from harness.scenario import Report, Result, Scenario, Section
from harness.timing import summary
from tiercache import TieredFileSystem
from tiercache.parsing import KIB, MIB

if TYPE_CHECKING:
    from matplotlib.ticker import FuncFormatter

AXES = ("count", "size", "block", "parquet")
#: Tables by axis (``AXES``).
ScalingResult = Result[dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class Sizes:
    count_points: tuple[int, ...]  # objects of 256 KiB
    size_points: tuple[int, ...]  # bytes of one object
    block_points: tuple[int, ...]  # block sizes (also of the Parquet workload)
    rounds: int
    sweep_rows: int  # of the Parquet file
    sweep_rounds: int
    scattered_reads: int  # cold 64 KiB reads per block size


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


def scale_count(ctx: Context, sz: Sizes, client: Any) -> dict[str, Any]:
    """N objects of 256 KiB read whole: one by one, and batched (``cat_ranges``)."""
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

    for _ in range(sz.rounds):
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


def scale_size(ctx: Context, sz: Sizes, client: Any) -> dict[str, Any]:
    """One object of each size read whole, cold and warm."""
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
    for _ in range(sz.rounds):
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


def scale_block(ctx: Context, sz: Sizes, client: Any) -> dict[str, Any]:
    """Per block size: scattered cold 64 KiB reads, a whole 16 MiB object, hot 64 KiB reads."""
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
    offsets = sorted(rng.randrange(0, scatter_bytes - 64 * KIB) for _ in range(sz.scattered_reads))
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
    for n in range(sz.rounds):
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


def parquet_sweep(ctx: Context, sz: Sizes) -> dict[str, Any]:
    """block_size.py's pyarrow workload at every block size of the scaling axis."""
    result = block_size.sweep(
        ctx.server,
        ctx.proxies[STORE],
        rows=sz.sweep_rows,
        rounds=sz.sweep_rounds,
        block_sizes=sz.block_points,
    )
    data = {
        "size": result.size,
        "rows": result.rows,
        "rounds": result.rounds,
        "readers": {
            name: {
                query: {
                    **summary([t for t, _ in values]),
                    "requests": [r for _, r in values],
                }
                for query, values in queries.items()
            }
            for name, queries in result.results.items()
        },
        "origin_bytes": result.origin_bytes,
        "block_sizes": list(sz.block_points),
        "labels": {str(bs): block_size.label(bs) for bs in sz.block_points},
    }
    header = (
        f"Parquet file: {result.size / MIB:.1f} MiB, {result.rows:,} rows, 8 float64 columns, "
        f"5 row groups; {result.rounds} round(s); medians."
    )
    return {
        "data": data,
        "tables": header + "\n\n" + "\n".join(block_size.table_lines(result)) + "\n",
    }


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


def run(ctx: Context, sz: Sizes) -> ScalingResult:
    client = ctx.client(STORE)
    count = scale_count(ctx, sz, client)
    size = scale_size(ctx, sz, client)
    block = scale_block(ctx, sz, client)
    parquet = parquet_sweep(ctx, sz)
    data = {"count": count, "size": size, "block": block, "parquet": parquet["data"]}
    rounds = sz.rounds
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
                f"Per block size: {sz.scattered_reads} cold 64 KiB reads at scattered "
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


def report(result: ScalingResult) -> Report:
    tables = result["tables"]
    return Report({f"scaling-{axis}": tables[axis] + "\n" for axis in AXES}, result["targets"])


def _axis(
    data: dict[str, Any], out: Path, name: str, *, title: str, xlabel: str, xfmt: FuncFormatter
) -> str:
    """Time, requests and origin MiB against one axis, log-log."""
    from harness.plots import log_axes, save, series, subplots

    names = list(data)
    fig, axes = subplots(1, 3, figsize=(15.6, 4.5))
    xs = series(axes[0], data, names, lambda e: e["median"])
    series(axes[1], data, names, lambda e: e["requests"])
    series(axes[2], data, names, lambda e: (e["origin_bytes"] or 0) / MIB)
    for ax, label in zip(
        axes,
        ("time (median)", "requests the store saw", "MiB fetched from the origin (tiercache)"),
        strict=True,
    ):
        log_axes(ax, xs, xlabel, xfmt, plain_y=ax is not axes[0])
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, out, name)


def _block(data: dict[str, Any], out: Path) -> str:
    """By block size: cold workloads, hot reads, requests, origin MiB."""
    from harness.plots import SIZES, log_axes, save, series, subplots

    names = list(data)
    cold = [n for n in names if not n.startswith("hot")]
    hot_names = [n for n in names if n.startswith("hot")]
    fig, axes = subplots(2, 2, figsize=(12, 8.5))
    (a, b), (c, d) = axes
    xs = series(a, data, cold, lambda e: e["median"])
    series(b, data, hot_names, lambda e: e["median"])
    series(c, data, cold, lambda e: e["requests"])
    series(d, data, cold, lambda e: (e["origin_bytes"] or 0) / MIB)
    titles = (
        (a, "cold reads: time (median)", False),
        (b, "hot 64 KiB reads: time per read (median)", False),
        (c, "cold reads: requests the store saw", True),
        (d, "cold reads: MiB fetched from the origin (tiercache)", True),
    )
    for ax, title, plain in titles:
        log_axes(ax, xs, "block size", SIZES, plain_y=plain)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("By block size (log-log; dashed: references, which do not depend on it)")
    return save(fig, out, "scaling-block.png")


def _parquet(parquet: dict[str, Any], out: Path) -> str:
    """The Parquet workload by block size: time, requests and origin MiB of its three queries."""
    from matplotlib.ticker import MaxNLocator

    from harness.plots import PEERS, SIZES, TIERCACHE, log_axes, save, subplots

    readers = parquet["readers"]
    sizes = parquet["block_sizes"]
    labels = parquet["labels"]
    fig, axes = subplots(1, 3, figsize=(15.6, 4.3))
    for i, query in enumerate(("cold", "overlap", "hot")):
        c = PEERS[i]
        axes[0].plot(
            sizes,
            [readers[labels[str(b)]][query]["median"] for b in sizes],
            marker="o",
            color=c,
            label=f"tiercache, {query}",
        )
        axes[0].axhline(
            readers["direct s3fs"][query]["median"],
            linestyle="--",
            color=c,
            label=f"direct s3fs, {query}",
        )
        axes[1].plot(
            sizes,
            [max(readers[labels[str(b)]][query]["requests"]) for b in sizes],
            marker="o",
            color=c,
            label=f"tiercache, {query}",
        )
    axes[1].axhline(
        max(readers["direct s3fs"]["cold"]["requests"]),
        linestyle="--",
        color="black",
        label="direct s3fs (each query)",
    )
    axes[2].plot(
        sizes,
        [statistics.median(parquet["origin_bytes"][labels[str(b)]]) / MIB for b in sizes],
        marker="o",
        color=TIERCACHE,
        label="tiercache, the three queries",
    )
    axes[2].axhline(parquet["size"] / MIB, linestyle="--", color="#555555", label="whole file")
    for ax, label in zip(
        axes,
        ("time (median)", "requests the store saw", "MiB fetched from the origin"),
        strict=True,
    ):
        log_axes(ax, list(sizes), "block size", SIZES, plain_y=ax is not axes[0])
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[1].set_yscale("linear")  # hot and overlap queries send no request at all: 0 on the axis
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_ylim(bottom=-0.3)
    axes[1].set_ylabel("requests the store saw (linear)")
    fig.suptitle(
        f"pyarrow read_table of a {parquet['size'] / MIB:.0f} MiB Parquet file, three "
        "projections, by block size (log-log)",
        fontsize=10,
    )
    return save(fig, out, "scaling-parquet.png")


def plot(result: ScalingResult, out: Path) -> list[str]:
    from matplotlib.ticker import FuncFormatter

    from harness.plots import SIZES

    data = result["data"]
    return [
        _axis(
            data["count"],
            out,
            "scaling-count.png",
            title="Objects of 256 KiB read whole, by object count (log-log)",
            xlabel="objects",
            xfmt=FuncFormatter(lambda x, _: f"{x:g}"),
        ),
        _axis(
            data["size"],
            out,
            "scaling-size.png",
            title="One object read whole, by object size (log-log)",
            xlabel="object size",
            xfmt=SIZES,
        ),
        _block(data["block"], out),
        _parquet(data["parquet"], out),
    ]


SCENARIO = Scenario(
    name="scaling",
    order=80,
    sizes={
        "smoke": Sizes(
            count_points=(1, 4),
            size_points=(64 * KIB, MIB),
            block_points=(256 * KIB, MIB),
            rounds=1,
            sweep_rows=20_000,
            sweep_rounds=1,
            scattered_reads=4,
        ),
        "quick": Sizes(
            count_points=(1, 4, 16, 64),
            size_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
            block_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
            rounds=1,
            sweep_rows=100_000,
            sweep_rounds=1,
            scattered_reads=8,
        ),
        "full": Sizes(
            count_points=(1, 4, 16, 64, 256),
            size_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB),
            block_points=(64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB),
            rounds=3,
            sweep_rows=500_000,
            sweep_rounds=3,
            scattered_reads=16,
        ),
    },
    run=run,
    sections=tuple(
        Section(f"scaling-{axis}", title, plot=f"scaling-{axis}.png", alt=f"scaling-{axis}")
        for axis, title in (
            ("count", "Scaling: object count"),
            ("size", "Scaling: object size"),
            ("block", "Scaling: block size"),
            ("parquet", "Scaling: block size, a Parquet workload"),
        )
    ),
    report=report,
    plot=plot,
)
