"""The Redis tier (``redis_footers.py``): a cold pod reading Parquet footers, with and without a
warm Redis, against direct s3fs (through the emulated object store)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis_footers
from harness.context import STORE, Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, body, target
from harness.timing import summary

RedisResult = Result[dict[str, Any], str]


@dataclass(frozen=True)
class Sizes:
    files: int  # Parquet files whose footers a pod reads
    rounds: int


def run(ctx: Context, sz: Sizes) -> RedisResult:
    files = redis_footers.write_files(ctx.server, sz.files)
    results, memory = redis_footers.run(
        ctx.server,
        ctx.proxies[STORE],
        ctx.redis,
        ctx.settings,
        files=files,
        rounds=sz.rounds,
    )
    table, _, headline = redis_footers.report(results, files, memory)
    without, with_redis = headline["requests_no_redis"], headline["requests_with_redis"]
    ratio = headline["request_ratio"]
    wall_ratio = headline["wall_ratio"]
    targets = [
        target(
            key="redis-requests",
            scenario="redis",
            text=f"a cold pod with a warm Redis: ≥ 3x fewer origin requests for {len(files)} "
            "footers than without Redis (all gone: 0)",
            measured=f"{with_redis:g} vs {without:g} requests",
            ratio=None if with_redis == 0 else ratio,
            met=ratio >= 3.0,
            reference="the same pod without Redis",
        ),
        target(
            key="redis-wall",
            scenario="redis",
            text="… and less wall time",
            measured=f"{fmt_s(headline['wall_with_redis_s'])} vs "
            f"{fmt_s(headline['wall_no_redis_s'])} ({wall_ratio:.1f}x less)",
            ratio=None,
            met=headline["wall_with_redis_s"] < headline["wall_no_redis_s"],
            reference="the same pod without Redis",
        ),
    ]
    data = {
        "files": len(files),
        "headline": {k: (None if v == float("inf") else v) for k, v in headline.items()},
        "cases": {
            case: {
                **summary([r.seconds for r in rs]),
                "requests": [r.requests for r in rs],
                "redis_hits": [r.redis_hits for r in rs],
            }
            for case, rs in results.items()
        },
    }
    return {"data": data, "tables": table, "targets": targets, "notes": []}


def report(result: RedisResult) -> Report:
    return Report({"redis": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: RedisResult, out: Path) -> list[str]:
    from harness.plots import hbars, save, subplots

    data = result["data"]
    cases = data["cases"]
    names = list(cases)
    fig, ax = subplots(figsize=(10, 3.6))
    short = [f"{n}\n({statistics.median(cases[n]['requests']):g} origin requests)" for n in names]
    hbars(ax, short, [cases[n]["median"] for n in names])
    ax.set_title(f"Footers of {data['files']} Parquet files on a cold pod (wall, median)")
    return [save(fig, out, "redis.png")]


SCENARIO = Scenario(
    name="redis",
    order=40,
    sizes={
        "smoke": Sizes(files=3, rounds=1),
        "quick": Sizes(files=20, rounds=2),
        "full": Sizes(files=50, rounds=5),
    },
    run=run,
    sections=(
        Section(
            "redis",
            "Redis tier: Parquet footers on a cold pod",
            plot="redis.png",
            alt="Redis footers",
        ),
    ),
    report=report,
    plot=plot,
)
