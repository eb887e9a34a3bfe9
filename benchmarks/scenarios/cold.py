"""Cold reads through a new chain against direct s3fs and pyarrow's own S3 filesystem, through
both proxy profiles (the emulated object store and loopback).

One s3fs client and one pyarrow filesystem per profile serve every round ("cold" means a cold
cache, not a cold client: building a botocore client costs 100+ ms and varies); each tiercache
round builds a new RAM-only chain over that s3fs client.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from harness.context import BUCKET, LOOPBACK, PROFILES, STORE, Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, body, target
from harness.timing import Sample, shuffled_rounds, summary
from tiercache.parsing import KIB, MIB

DIRECT = "direct s3fs cat_file"
PYARROW = "pyarrow S3FileSystem open_input_file + read_at"
CHAIN = "tiercache cold read_range"
COLD_PATHS = (DIRECT, PYARROW, CHAIN)
ALIGNED = "4 MiB, block-aligned"
INSIDE = "64 KiB inside one block"


class Case(TypedDict):
    """One "<range>: <path>" of one profile: the summary of its seconds, and the raw rounds."""

    median: float
    spread: float
    rounds: list[float]
    seconds: list[float]
    get: list[float]  # requests the proxy saw, per round
    head: list[float]


#: By profile, by "<range>: <path>".
ColdData = dict[str, dict[str, Case]]
ColdResult = Result[ColdData, str]


@dataclass(frozen=True)
class Sizes:
    rounds: int


def cold_profile(
    ctx: Context,
    profile: str,
    path: str,
    data: bytes,
    ranges: dict[str, tuple[int, int]],
    *,
    rounds: int,
) -> dict[str, dict[str, list[float]]]:
    """Every range by every path through one profile's proxy, rounds shuffled."""
    proxy = ctx.proxies[profile]
    client = ctx.client(profile)
    arrow = ctx.pyarrow_fs(profile)

    def direct(start: int, end: int) -> bytes:
        return bytes(client.cat_file(path, start=start, end=end))

    def pyarrow(start: int, end: int) -> bytes:
        f = arrow.open_input_file(path)
        try:
            return bytes(f.read_at(end - start, start))
        finally:
            f.close()

    def chain(start: int, end: int) -> bytes:
        fs = ctx.ram_pod(client)
        try:
            return fs.read_range(path, start, end)
        finally:
            fs.close()

    paths: dict[str, Callable[[int, int], bytes]] = {DIRECT: direct, PYARROW: pyarrow, CHAIN: chain}
    for fn in paths.values():  # not counted: open each client's connections
        fn(0, 1)
    results: dict[str, dict[str, list[float]]] = {}

    def step(label: str, name: str) -> Callable[[], None]:
        start, end = ranges[label]
        entry: dict[str, list[float]] = {"seconds": [], "get": [], "head": []}
        results[f"{label}: {name}"] = entry

        def run() -> None:
            proxy.reset_counters()
            t0 = time.perf_counter()
            got = paths[name](start, end)
            elapsed = time.perf_counter() - t0
            assert got == data[start:end], (profile, label, name)
            entry["seconds"].append(elapsed)
            entry["get"].append(proxy.requests("GET"))
            entry["head"].append(proxy.requests("HEAD"))

        return run

    for label in ranges:
        steps = [(name, step(label, name)) for name in COLD_PATHS]
        shuffled_rounds(rounds, steps)
    return results


def cold_tables(ctx: Context, out: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    lines: list[str] = []
    for profile, results in out.items():
        lines += [
            f"#### Cold reads, {ctx.profiles[profile].describe()}",
            "",
            "| range: path | median | spread (±IQR/2) | GET | HEAD | ÷ direct s3fs |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, entry in results.items():
            label = name.split(":")[0]
            ref = statistics.median(results[f"{label}: {DIRECT}"]["seconds"])
            s = Sample(name, entry["seconds"])
            lines.append(
                f"| {name} | {fmt_s(s.median)} | {s.spread:.0%} | {max(entry['get']):g} "
                f"| {max(entry['head']):g} | {s.median / ref:.3f} |"
            )
        lines.append("")
    return lines


def run(ctx: Context, sz: Sizes) -> ColdResult:
    payload = os.urandom(16 * MIB)
    ctx.server.put_object(BUCKET, "cold-reads.bin", payload)
    ranges = {ALIGNED: (4 * MIB, 8 * MIB), INSIDE: (5 * MIB + 12_345, 5 * MIB + 12_345 + 64 * KIB)}
    out = {
        profile: cold_profile(
            ctx, profile, f"{BUCKET}/cold-reads.bin", payload, ranges, rounds=sz.rounds
        )
        for profile in ctx.profiles
    }

    def median(profile: str, name: str) -> float:
        return float(statistics.median(out[profile][f"{ALIGNED}: {name}"]["seconds"]))

    def requests(name: str) -> float:
        entry = out[STORE][f"{ALIGNED}: {name}"]
        return max(g + h for g, h in zip(entry["get"], entry["head"], strict=True))

    ratio = median(STORE, CHAIN) / median(STORE, DIRECT)
    more = requests(CHAIN) > requests(DIRECT)
    targets = [
        target(
            key="cold-aligned",
            scenario="cold",
            text="cold 4 MiB block-aligned read ≤ 1.05x a direct s3fs read, with no more "
            "requests (emulated store)",
            measured=f"{fmt_s(median(STORE, CHAIN))} vs {fmt_s(median(STORE, DIRECT))}; "
            f"requests {requests(CHAIN):g} vs {requests(DIRECT):g}",
            ratio=ratio,
            met=ratio <= 1.05 and not more,
            reference=DIRECT,
        )
    ]
    if LOOPBACK in out:
        lo_ratio = median(LOOPBACK, CHAIN) / median(LOOPBACK, DIRECT)
        targets.append(
            target(
                key="cold-aligned-loopback",
                scenario="cold",
                text="the same read with no added latency (loopback; not a target)",
                measured=f"{fmt_s(median(LOOPBACK, CHAIN))} vs {fmt_s(median(LOOPBACK, DIRECT))}",
                ratio=lo_ratio,
                met=lo_ratio <= 1.05,
                reference=DIRECT,
                informative=True,
            )
        )
    data: ColdData = {
        profile: {
            name: {
                **summary(e["seconds"]),
                "seconds": e["seconds"],
                "get": e["get"],
                "head": e["head"],
            }
            for name, e in results.items()
        }
        for profile, results in out.items()
    }
    return {
        "data": data,
        "tables": "\n".join(cold_tables(ctx, out)),
        "targets": targets,
        "notes": [],
    }


def report(result: ColdResult) -> Report:
    return Report({"cold": body(result["tables"], result["notes"])}, result["targets"])


def plot(result: ColdResult, out: Path) -> list[str]:
    from harness.plots import hbars, save, subplots

    data = result["data"]
    labels = sorted({name.split(": ")[0] for cases in data.values() for name in cases})
    fig, axes = subplots(len(data), len(labels), figsize=(13, 2.8 * len(data)), squeeze=False)
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
            title = PROFILES[profile].describe() if profile in PROFILES else profile
            ax.set_title(f"{label} (x direct s3fs)\n{title}", fontsize=8)
    return [save(fig, out, "cold.png")]


SCENARIO = Scenario(
    name="cold",
    order=20,
    sizes={"smoke": Sizes(rounds=1), "quick": Sizes(rounds=3), "full": Sizes(rounds=15)},
    run=run,
    sections=(Section("cold", "Cold reads", plot="cold.png", alt="cold reads"),),
    report=report,
    plot=plot,
)
