"""The plots of ``run.py``, drawn from ``results.json`` with matplotlib (Agg backend, PNG).

Each function draws one figure if its scenario ran and returns the file name, else ``None``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from tiercache.parsing import KIB, MIB

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

DPI = 110
TIERCACHE = "#1f77b4"
PEERS = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


BLUES = ("#1f77b4", "#17becf", "#08306b", "#6baed6")
KINDS = (
    ("floor", ("#555555", "#999999")),
    ("local files", ("#555555", "#999999")),
    ("direct s3fs", ("#ff7f0e", "#d62728", "#fdae6b")),
    ("pyarrow", ("#2ca02c", "#98df8a")),
    ("blockcache", ("#9467bd", "#c5b0d5")),
    ("simplecache", ("#8c564b", "#c49c94")),
)


def kind(name: str) -> tuple[str, tuple[str, ...]]:
    lowered = name.lower()
    for k, shades in KINDS:
        if k in lowered:
            return k, shades
    if "tiercache" in lowered:
        return "tiercache", BLUES
    return "other", PEERS


def color(name: str, index: int = 0) -> str:
    """The same colour for the same reader in every plot: tiercache in blues, direct s3fs orange,
    pyarrow green, fsspec's caches purple and brown, the floor grey."""
    shades = kind(name)[1]
    return shades[index % len(shades)]


def colors(names: list[str]) -> list[str]:
    """Colours for a list of series: several series of one reader get its shades in turn."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = kind(name)[0]
        out.append(color(name, seen.get(k, 0)))
        seen[k] = seen.get(k, 0) + 1
    return out


def value_label(s: float) -> str:
    """Three significant digits."""
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def size_label(n: float) -> str:
    if n >= MIB:
        return f"{n / MIB:g} MiB"
    if n >= KIB:
        return f"{n / KIB:g} KiB"
    return f"{n:g} B"


def seconds_label(s: float, _: object = None) -> str:
    if s <= 0:
        return "0"
    if s < 1e-3:
        return f"{s * 1e6:g} µs"
    if s < 1:
        return f"{s * 1e3:g} ms"
    return f"{s:g} s"


SECONDS = FuncFormatter(seconds_label)
SIZES = FuncFormatter(lambda x, _: size_label(x))
PLAIN = FuncFormatter(lambda y, _: f"{y:g}")


def save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


def ok(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    scenario = results["scenarios"].get(name)
    if scenario is None or "error" in scenario:
        return None
    data: dict[str, Any] = scenario["data"]
    return data


def hbars(
    ax: Axes,
    names: list[str],
    values: list[float],
    *,
    log: bool = False,
    ref: float | None = None,
    by_reader: bool = False,
) -> None:
    """Horizontal bars, first name on top, each labelled with its value (and ÷ ``ref``).

    ``by_reader``: one colour per reader even when it appears several times (several queries).
    """
    ys = list(range(len(names)))[::-1]
    ax.barh(ys, values, color=[color(n) for n in names] if by_reader else colors(names))
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_yticks(ys, names, fontsize=8)
    if log:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(SECONDS)
    for y, v in zip(ys, values, strict=True):
        text = f" {value_label(v)}" + (f" ({v / ref:.2f}x)" if ref else "")
        ax.text(v, y, text, va="center", fontsize=7)
    ax.margins(x=0.3)


# -- one figure per scenario ---------------------------------------------------------------------


def targets(results: dict[str, Any], out: Path) -> str | None:
    """Each target's margin: how far inside (> 1) or outside (< 1) its bound the measure is."""
    rows = []
    for scenario in results["scenarios"].values():
        for t in scenario.get("targets", []):
            bound = _bound(t["target"])
            if t["informative"] or bound is None:
                continue
            if t["ratio"] is None:  # nothing left to divide by: all requests gone
                if t["met"]:
                    rows.append((t["target"], float("inf")))
                continue
            at_most, limit = bound
            margin = limit / t["ratio"] if at_most else t["ratio"] / limit
            rows.append((t["target"], margin))
    if not rows:
        return None
    finite = [m for _, m in rows if m != float("inf")] or [1.0]
    cap = max(max(finite) * 2, 4.0)
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.4))
    names = [_short(t) for t, _ in rows]
    margins = [min(m, cap) for _, m in rows]
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, margins, color=["#2ca02c" if m >= 1 else "#d62728" for m in margins])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(ys, names, fontsize=8)
    for y, (_, m) in zip(ys, rows, strict=True):
        label = "none left" if m == float("inf") else f"{m:.2f}x"
        ax.text(min(m, cap), y, f" {label}", va="center", fontsize=7)
    ax.set_xlabel("margin: bound ÷ measured, or measured ÷ bound for an 'at least' (> 1: met)")
    ax.set_title("Targets of the earlier issues")
    ax.margins(x=0.2)
    return save(fig, out, "targets.png")


def _bound(text: str) -> tuple[bool, float] | None:
    """``(at_most, limit)`` from a target's text ("≤ 3x", "≥ 5x")."""
    import re

    match = re.search(r"(≤|≥) ([\d.]+)x", text)
    if match is None:
        return None
    return match.group(1) == "≤", float(match.group(2))


def _short(text: str) -> str:
    text = text.replace("`", "")
    return text if len(text) <= 70 else text[:67] + "…"


def hot(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "hot")
    if data is None:
        return None
    fig, axes = plt.subplots(1, len(data), figsize=(12, 4.2))
    for ax, (size, cases) in zip(axes, data.items(), strict=True):
        names = list(cases)
        floor = cases[names[0]]["median"]
        hbars(ax, names, [cases[n]["median"] for n in names], ref=floor)
        ax.set_title(
            f"hot {size_label(int(size))} reads: median per read (x the floor)", fontsize=9
        )
    return save(fig, out, "hot.png")


def cold(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "cold")
    if data is None:
        return None
    labels = sorted({name.split(": ")[0] for cases in data.values() for name in cases})
    fig, axes = plt.subplots(len(data), len(labels), figsize=(13, 2.8 * len(data)), squeeze=False)
    profiles = results.get("profiles", {})
    for row, (profile, cases) in enumerate(data.items()):
        for col, label in enumerate(labels):
            ax = axes[row][col]
            names = [n for n in cases if n.startswith(label + ":")]
            values = [cases[n]["median"] for n in names]
            requests = [
                f"{max(cases[n]['get']):g} GET + {max(cases[n]['head']):g} HEAD" for n in names
            ]
            short = [f"{n.split(': ', 1)[1]}\n({r})" for n, r in zip(names, requests, strict=True)]
            hbars(ax, short, values, ref=values[0])
            title = profiles.get(profile, {}).get("describe", profile)
            ax.set_title(f"{label} (x direct s3fs)\n{title}", fontsize=8)
    return save(fig, out, "cold.png")


def redis(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "redis")
    if data is None:
        return None
    cases = data["cases"]
    names = list(cases)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    short = [f"{n}\n({statistics.median(cases[n]['requests']):g} origin requests)" for n in names]
    hbars(ax, short, [cases[n]["median"] for n in names])
    ax.set_title(f"Footers of {data['files']} Parquet files on a cold pod (wall, median)")
    return save(fig, out, "redis.png")


def delta(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "delta")
    if data is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    warm = data["warm"]
    hbars(axes[0], list(warm), [warm[n]["median"] for n in warm], by_reader=True)
    axes[0].set_title("(a) warm query (median)")
    cold_cases = data["cold"]
    names = list(cold_cases)
    ys = list(range(len(names)))[::-1]
    query = [cold_cases[n]["median"] for n in names]
    register = [cold_cases[n]["register"]["median"] for n in names]
    axes[1].barh(ys, register, color="#bbbbbb", label="registration (Delta log)")
    axes[1].barh(ys, query, left=register, color=[color(n) for n in names], label="query")
    axes[1].xaxis.set_major_locator(MaxNLocator(4))
    axes[1].set_yticks(ys, names, fontsize=8)
    axes[1].xaxis.set_major_formatter(SECONDS)
    axes[1].legend(fontsize=7)
    axes[1].set_title("(b) cold: registration + query (medians)")
    procs = data["processes"]
    names = list(procs)
    ys = list(range(len(names)))[::-1]
    register = [procs[n]["register"]["median"] for n in names]
    query = [procs[n]["query"]["median"] for n in names]
    axes[2].barh(ys, register, color="#bbbbbb", label="registration")
    axes[2].barh(ys, query, left=register, color=TIERCACHE, label="selective query")
    axes[2].xaxis.set_major_locator(MaxNLocator(4))
    axes[2].set_yticks(ys, names, fontsize=8)
    axes[2].xaxis.set_major_formatter(SECONDS)
    axes[2].legend(fontsize=7)
    axes[2].set_title("(c) a new process (medians)")
    return save(fig, out, "delta.png")


def degraded(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "degraded")
    if data is None:
        return None
    groups = data["groups"]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4), squeeze=False)
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
    return save(fig, out, "degraded.png")


def concurrency(results: dict[str, Any], out: Path) -> str | None:
    data = ok(results, "concurrency")
    if data is None:
        return None
    cases = list(data)
    sz_threads = sorted({int(t) for c in data.values() for p in c.values() for t in p})
    fig, axes = plt.subplots(2, len(cases), figsize=(3.6 * len(cases), 6.5), squeeze=False)
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
    return save(fig, out, "concurrency.png")


def shades_for(names: list[str]) -> list[str]:
    """A colour per workload for "<workload>: <reader>" names, else per reader."""
    if all(": " in n for n in names):
        workloads = list(dict.fromkeys(n.split(": ")[0] for n in names))
        return [PEERS[workloads.index(n.split(": ")[0]) % len(PEERS)] for n in names]
    return colors(names)


def log_axes(ax: Axes, xs: list[int], xlabel: str, xfmt: FuncFormatter, *, plain_y: bool) -> None:
    """Log-log, a tick at each measured x only."""
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(xfmt)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel(xlabel)
    log_y(ax, SECONDS if not plain_y else PLAIN)
    ax.grid(True, which="major", alpha=0.3)


def log_y(ax: Axes, formatter: FuncFormatter) -> None:
    """Ticks at 1, 2 and 5 of each decade, labelled plainly; no minor labels."""
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(NullFormatter())


def series(
    ax: Axes, data: dict[str, Any], names: list[str], value: Callable[[dict[str, Any]], Any]
) -> list[int]:
    """One line per name (tiercache solid, references dashed); the xs drawn."""
    drawn: set[int] = set()
    for path, c in zip(names, shades_for(names), strict=True):
        by_x = data[path]
        points = [(int(x), value(by_x[x])) for x in by_x]
        points = sorted((x, v) for x, v in points if v)
        if not points:
            continue
        tier = "tiercache" in path
        ax.plot(
            [x for x, _ in points],
            [v for _, v in points],
            "-" if tier else "--",
            marker="o" if tier else "x",
            color=c,
            label=path,
        )
        drawn.update(x for x, _ in points)
    return sorted(drawn)


def _axis(
    data: dict[str, Any], out: Path, name: str, *, title: str, xlabel: str, xfmt: FuncFormatter
) -> str:
    """Time, requests and origin MiB against one axis, log-log."""
    names = list(data)
    fig, axes = plt.subplots(1, 3, figsize=(15.6, 4.5))
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
    names = list(data)
    cold = [n for n in names if not n.startswith("hot")]
    hot_names = [n for n in names if n.startswith("hot")]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
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


def scaling(results: dict[str, Any], out: Path) -> list[str]:
    data = ok(results, "scaling")
    if data is None:
        return []
    names = [
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
    ]
    parquet = data["parquet"]
    readers = parquet["readers"]
    sizes = parquet["block_sizes"]
    labels = parquet["labels"]
    fig, axes = plt.subplots(1, 3, figsize=(15.6, 4.3))
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
    names.append(save(fig, out, "scaling-parquet.png"))
    return names


def draw_all(results: dict[str, Any], out: Path) -> list[str]:
    """Every plot this run's results allow; the file names written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    drawn: list[str | None] = [
        targets(results, out),
        hot(results, out),
        cold(results, out),
        redis(results, out),
        delta(results, out),
        degraded(results, out),
        concurrency(results, out),
    ]
    names = [n for n in drawn if n is not None]
    return names + scaling(results, out)
