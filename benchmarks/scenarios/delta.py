"""Delta Lake + DataFusion (``delta_datafusion.py``): SQL over a Delta table, warm against local
files, cold against direct s3fs, and a new process with a warm Redis against one without."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import delta_datafusion
from harness.context import STORE, Context
from harness.scenario import Report, Result, Scenario, Section, Target, body, target
from harness.timing import summary

DeltaResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    shape: delta_datafusion.Shape  # how much table to write
    rounds: int  # (a) warm: rounds of ``reps`` queries
    reps: int
    cold_rounds: int  # (b)
    process_rounds: int  # (c)


def run(ctx: Context, sz: Sizes) -> DeltaResult:
    workdir = ctx.workdir / "delta"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        measured = delta_datafusion.measure_all(
            ctx.server,
            ctx.proxies[STORE],
            ctx.redis,
            ctx.settings,
            sz.shape,
            workdir=str(workdir),
            rounds=sz.rounds,
            reps=sz.reps,
            cold_rounds=sz.cold_rounds,
            process_rounds=sz.process_rounds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets: list[Target] = []
    for v in measured.verdicts:
        # "(a) selective, tiercache warm (RAM)" -> key "delta-a-selective"
        letter, query = v.scenario[1], v.scenario.split()[1].rstrip(",")
        process = v.scenario.startswith("(c)")
        default_listing = process and delta_datafusion.CHILD_SHARED not in v.scenario
        text = v.scenario.replace(" (RAM)", "").replace(" (query)", "")
        if v.scenario.startswith("(a)"):
            text = f"Delta {text} ≤ {delta_datafusion.WARM_TARGET}x local files"
        elif v.scenario.startswith("(b)"):
            text = f"Delta {text} query ≤ {delta_datafusion.COLD_TARGET}x direct s3fs"
        elif default_listing:
            text = (
                "the same with the default `TIERCACHE_DELTA_LOG_TTL=0`: a LIST of the log at "
                "every open, so the latest commit is always seen (the freshness price; not the "
                "target's configuration)"
            )
        else:
            text = (
                f"Delta (c) new process with a warm Redis (register + selective query) "
                f"≥ {delta_datafusion.PROCESS_TARGET:g}x faster than without "
                "(log listing shared: `TIERCACHE_DELTA_LOG_TTL=60s`)"
            )
        targets.append(
            target(
                key=f"delta-{letter}-{query}" + ("-default" if default_listing else ""),
                scenario="delta",
                text=text,
                measured=f"{delta_datafusion.fmt_ms(v.median_s)} vs "
                f"{delta_datafusion.fmt_ms(v.reference_s)}",
                ratio=v.ratio,
                met=v.met,
                reference=v.reference + (" (÷ this: speed-up)" if process else ""),
                informative=default_listing,
            )
        )
    raw = measured.raw()
    data = {
        "verdicts": raw["verdicts"],
        "table": raw["table"],
        "queries": raw["queries"],
        "warm": {k: summary(s.rounds) for k, s in measured.warm_result.samples.items()},
        "cold": {
            k: {**summary([r.query_s for r in rs]), "register": summary([r.register_s for r in rs])}
            for k, rs in measured.cold_results.items()
        },
        "processes": {
            k: {
                **summary([r.total_s for r in rs]),
                "register": summary([r.register_s for r in rs]),
                "query": summary([r.query_s for r in rs]),
            }
            for k, rs in measured.child_results.items()
        },
    }
    return {"data": data, "tables": measured.report(), "targets": targets, "notes": []}


def report(result: DeltaResult) -> Report:
    return Report({"delta": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: DeltaResult, out: Path) -> list[str]:
    from matplotlib.ticker import MaxNLocator

    from harness.plots import SECONDS, TIERCACHE, color, hbars, save, subplots

    data = result["data"]
    fig, axes = subplots(1, 3, figsize=(14, 4))
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
    return [save(fig, out, "delta.png")]


SCENARIO = Scenario(
    name="delta",
    order=50,
    sizes={
        "smoke": Sizes(
            shape=delta_datafusion.Shape(
                days=1, slices_per_day=2, traces_per_slice=60, row_group_rows=512
            ),
            rounds=2,
            reps=1,
            cold_rounds=1,
            process_rounds=1,
        ),
        "quick": Sizes(
            shape=delta_datafusion.QUICK_SHAPE, rounds=5, reps=3, cold_rounds=3, process_rounds=2
        ),
        "full": Sizes(
            shape=delta_datafusion.FULL_SHAPE, rounds=15, reps=5, cold_rounds=9, process_rounds=5
        ),
    },
    run=run,
    sections=(
        Section("delta", "Delta Lake + DataFusion", plot="delta.png", alt="Delta + DataFusion"),
    ),
    report=report,
    plot=plot,
)
