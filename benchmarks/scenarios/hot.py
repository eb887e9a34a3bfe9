"""Hot reads: warm 64 KiB and 4 MiB reads against the dict-slice floor and fsspec's
``blockcache`` and ``simplecache`` (``hot_read.py``'s hot part)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import hot_read
from harness.context import Context
from harness.fmt import fmt_s, size_label
from harness.scenario import Report, Result, Scenario, Section, body, target
from harness.timing import Summary, summary
from tiercache.parsing import KIB, MIB

#: By read size (bytes, as text), by case.
HotData = dict[str, dict[str, Summary]]
HotResult = Result[HotData, str]


@dataclass(frozen=True)
class Sizes:
    rounds: int
    ops: int  # 64 KiB reads per round (a tenth as many 4 MiB ones, at least 20)
    object_bytes: int


def run(ctx: Context, sz: Sizes) -> HotResult:
    workdir = ctx.workdir / "hot"
    workdir.mkdir(parents=True, exist_ok=True)
    hots = {}
    for size in (64 * KIB, 4 * MIB):
        ops = sz.ops if size < MIB else max(20, sz.ops // 10)
        hots[size] = hot_read.hot(
            ctx.server, size, sz.rounds, ops, str(workdir), object_bytes=sz.object_bytes
        )
    shutil.rmtree(workdir, ignore_errors=True)
    lines, _ = hot_read.report_hot(hots)
    samples = hots[64 * KIB]
    floor = samples["floor: dict slice"].median
    rr = samples["tiercache read_range"].median
    block = samples["blockcache open+seek+read"].median
    targets = [
        target(
            key="hot-floor",
            scenario="hot",
            text="hot 64 KiB `read_range` ≤ 3x the dict-slice floor",
            measured=f"{fmt_s(rr)} vs {fmt_s(floor)}",
            ratio=rr / floor,
            met=rr / floor <= 3.0,
            reference="floor: dict slice",
        ),
        target(
            key="hot-blockcache",
            scenario="hot",
            text="fsspec `blockcache` warm open+seek+read ≥ 5x slower than tiercache "
            "(64 KiB `read_range`)",
            measured=f"{fmt_s(block)} vs {fmt_s(rr)}",
            ratio=block / rr,
            met=block / rr >= 5.0,
            reference="blockcache open+seek+read",
        ),
    ]
    data = {
        str(size): {name: summary(s.rounds) for name, s in per_size.items()}
        for size, per_size in hots.items()
    }
    return {"data": data, "tables": "\n".join(lines), "targets": targets, "notes": []}


def report(result: HotResult) -> Report:
    return Report({"hot": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: HotResult, out: Path) -> list[str]:
    from harness.plots import hbars, save, subplots

    data = result["data"]
    fig, axes = subplots(1, len(data), figsize=(12, 4.2))
    for ax, (size, cases) in zip(axes, data.items(), strict=True):
        names = list(cases)
        floor = cases[names[0]]["median"]
        hbars(ax, names, [cases[n]["median"] for n in names], ref=floor)
        ax.set_title(
            f"hot {size_label(int(size))} reads: median per read (x the floor)", fontsize=9
        )
    return [save(fig, out, "hot.png")]


SCENARIO = Scenario(
    name="hot",
    order=10,
    sizes={
        "smoke": Sizes(rounds=2, ops=20, object_bytes=8 * MIB),
        "quick": Sizes(rounds=3, ops=200, object_bytes=64 * MIB),
        "full": Sizes(rounds=15, ops=2000, object_bytes=64 * MIB),
    },
    run=run,
    sections=(Section("hot", "Hot reads", plot="hot.png", alt="hot reads"),),
    report=report,
    plot=plot,
)
