"""What the plots of ``run.py`` share (matplotlib, Agg backend, PNG): one colour per reader in
every figure, labelled bars, log axes with plain ticks, and the targets figure. Each scenario
draws its own figures (its ``plot``) from its stored result with these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from harness.fmt import size_label
from harness.scenario import Target

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


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """``matplotlib.pyplot.subplots``, on the Agg backend."""
    return plt.subplots(*args, **kwargs)


def save(fig: Figure, out: Path, name: str) -> str:
    """Write the figure as ``out / name`` (PNG), close it; return ``name``."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


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


# -- the targets ---------------------------------------------------------------------------------


def targets(checked: list[Target], out: Path) -> str | None:
    """Each target's margin: how far inside (> 1) or outside (< 1) its bound the measure is."""
    rows = []
    for t in checked:
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
    match = re.search(r"(≤|≥) ([\d.]+)x", text)
    if match is None:
        return None
    return match.group(1) == "≤", float(match.group(2))


def _short(text: str) -> str:
    text = text.replace("`", "")
    return text if len(text) <= 70 else text[:67] + "…"


# -- log-log series (the scaling axes) --------------------------------------------------------


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
