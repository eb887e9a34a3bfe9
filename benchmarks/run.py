"""Every benchmark in one command: each scenario against its references, a report and plots.

Starts an S3 server (moto, in a subprocess) behind latency-injecting proxies (each in a process of
its own): an emulated object store (20 ms to first byte, 100 MB/s per stream) and a loopback
profile with no added latency; a ``redis-server`` of its own (never the machine's). Then runs
every scenario of ``benchmarks/scenarios/`` in their order: one module each (its docstring says
what it measures), found by ``harness/registry.py``; ``--help`` lists their names.

Writes ``results.json``, ``report.md`` and PNG plots into ``--out`` (default
``benchmarks/results/``). ``--update-docs`` also rewrites the generated sections of
``docs/benchmarks.md`` and its plots in ``docs/benchmarks/`` (from a full run). ``--from FILE``
renders a ``results.json`` again without measuring.

Run: ``python benchmarks/run.py`` (the full run, about 8 minutes on 2 cores), ``--quick``
(under 3 minutes), ``--smoke`` (seconds: every code path, meaningless figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.context import Context
    from harness.scenario import Preset, Scenario

# Nothing heavy is imported at the top: the helper processes this program spawns (the proxies,
# the disk tier's contention workers) import this file as their main module, and need none of
# pyarrow, deltalake, datafusion or matplotlib.

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DOC_IMAGES = ROOT / "docs" / "benchmarks"

# The program's own tiers only: never a disk directory or a Redis from the environment.
OWN = ("TIERCACHE_DISK_DIR", "TIERCACHE_REDIS_URL", "TIERCACHE_REDIS_PREFIX")


STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the program started."""
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def discover() -> dict[str, Scenario[Any, Any]]:
    """The scenarios of ``benchmarks/scenarios/``, in their order."""
    from harness.registry import discover

    return discover()


def run_scenarios(
    scenarios: dict[str, Scenario[Any, Any]],
    names: list[str],
    mode: Preset,
    ctx: Context,
    results: dict[str, Any],
) -> None:
    """Run the scenarios ``names``, in that order, each at its ``mode`` sizes; record each
    result (a scenario that fails is recorded with its traceback, and the others still run)
    and the seconds each took into ``results``."""
    for name in names:
        scenario = scenarios[name]
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            results["scenarios"][name] = scenario.run(ctx, scenario.sizes[mode])
        except Exception:
            log(f"{name} FAILED:\n{traceback.format_exc()}")
            results["scenarios"][name] = {"error": traceback.format_exc()}
        results["timings"][name] = time.perf_counter() - t0
        log(f"{name} done in {results['timings'][name]:.1f} s")


def measure(
    mode: Preset, names: list[str], scenarios: dict[str, Scenario[Any, Any]]
) -> dict[str, Any]:
    """Start the servers, run the scenarios ``names``; the results as ``results.json`` has them."""
    from harness import report
    from harness.context import PROFILES, running
    from tiercache import Settings

    for name in OWN:
        os.environ.pop(name, None)
    settings = Settings.from_env(disk_dir=None, redis_url=None)
    results: dict[str, Any] = {
        "mode": mode,
        "meta": report.machine(),
        "settings": {
            "block_size_bytes": settings.block_size_bytes,
            "memory_bytes": settings.memory_bytes,
            "redis_timeout_s": settings.redis_timeout_s,
            "disk_timeout_s": settings.disk_timeout_s,
            "breaker_failures": settings.breaker_failures,
        },
        "profiles": {
            name: {
                "delay_s": p.delay_s,
                "bandwidth_bytes_per_s": p.bandwidth_bytes_per_s,
                "describe": p.describe(),
            }
            for name, p in PROFILES.items()
        },
        "scenarios": {},
        "timings": {},
        "load": {"start": os.getloadavg()},
    }
    started = time.perf_counter()
    with running(settings, log) as ctx:
        run_scenarios(scenarios, names, mode, ctx, results)
    results["took_s"] = time.perf_counter() - started
    results["load"]["end"] = os.getloadavg()
    return results


def render(
    results: dict[str, Any], out: Path, scenarios: dict[str, Scenario[Any, Any]]
) -> list[str]:
    """Write report.md and the plots into ``out``; return the plot file names."""
    from harness import plots, report

    out.mkdir(parents=True, exist_ok=True)
    drawn = [plots.targets(report.all_targets(results, scenarios), out)]
    names = [name for name in drawn if name is not None]
    for scenario in scenarios.values():
        stored = report.stored_ok(results, scenario.name)
        if stored is not None and scenario.plot is not None:
            names += scenario.plot(stored, out)
    (out / "report.md").write_text(report.report(results, names, scenarios))
    return names


def update_docs(
    results: dict[str, Any], out: Path, plots: list[str], scenarios: dict[str, Scenario[Any, Any]]
) -> list[str]:
    """Copy the plots into docs/benchmarks/ and rewrite the generated sections of the doc."""
    from harness import report

    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in plots:
        shutil.copyfile(out / name, DOC_IMAGES / name)
    parts = report.sections(results, "benchmarks/", plots, scenarios)
    return report.update_doc(DOC, parts)


def main(argv: list[str] | None = None) -> int:
    from harness import report

    scenarios = discover()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smaller run: under 3 minutes")
    size.add_argument("--smoke", action="store_true", help="minimal sizes: every code path")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    parser.add_argument(
        "--only", help=f"comma-separated scenarios (default: all of {', '.join(scenarios)})"
    )
    parser.add_argument("--from", dest="source", type=Path, help="render this results.json")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="rewrite docs/benchmarks.md's generated sections and docs/benchmarks/*.png",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.source is not None:
        results = json.loads(args.source.read_text())
    else:
        mode: Preset = "smoke" if args.smoke else "quick" if args.quick else "full"
        names = list(scenarios) if not args.only else args.only.split(",")
        unknown = [n for n in names if n not in scenarios]
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(unknown)}")
        results = measure(mode, names, scenarios)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    plots = render(results, args.out, scenarios)
    log(f"wrote {args.out / 'results.json'}, {args.out / 'report.md'} and {len(plots)} plots")
    if args.update_docs:
        missing = [n for n in scenarios if n not in results["scenarios"]]
        if missing:
            log(f"not updating the docs: these scenarios did not run: {', '.join(missing)}")
            return 2
        if results["mode"] != "full":
            log(f"note: updating the docs from a {results['mode']!r} run")
        replaced = update_docs(results, args.out, plots, scenarios)
        log(f"updated {DOC.relative_to(ROOT)}: {', '.join(replaced) or 'no generated sections'}")
    print(report.sections(results, "", plots, scenarios)["targets"])
    targets = report.all_targets(results, scenarios)
    missed = [t for t in targets if not t["informative"] and not t["met"]]
    failed = [name for name, s in results["scenarios"].items() if "error" in s]
    if failed:
        return 2
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
