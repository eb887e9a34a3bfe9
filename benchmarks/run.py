"""Every benchmark in one command: each scenario against its references, a report and plots.

Starts an S3 server (moto, in a subprocess) behind latency-injecting proxies (each in a process of
its own): an emulated object store (20 ms to first byte, 100 MB/s per stream) and a loopback
profile with no added latency; a ``redis-server`` of its own (never the machine's). Then runs:

- ``hot``: warm 64 KiB and 4 MiB reads against the dict-slice floor and fsspec's ``blockcache``
  and ``simplecache`` (``hot_read.py``);
- ``cold``: cold reads through a new chain against direct s3fs and pyarrow's own S3 filesystem,
  both profiles;
- ``disk``: warm 1 MiB disk-tier reads against a local file, eviction policies (``disk_tier.py``);
- ``redis``: Parquet footers on a cold pod with and without a warm Redis (``redis_footers.py``);
- ``delta``: DataFusion SQL over a Delta table, warm / cold / new process with a warm Redis,
  against local files and direct s3fs (``delta_datafusion.py``);
- ``degraded``: Redis hung (SIGSTOP) and killed, disk full (tmpfs): added latency, exact bytes;
- ``concurrency``: 1 to 32 threads on cold and hot data: throughput and origin requests;
- ``scaling``: time and origin requests by object count, object size and block size (and
  ``block_size.py``'s Parquet workload), log-log;
- ``memory``: peak RSS growth of a pod (RAM tier 64 MiB, with and without a disk tier, a fresh
  process per case) while 8 threads read distinct data, against its memory budget.

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
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _scenarios import Context

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DOC_IMAGES = ROOT / "docs" / "benchmarks"
SCENARIO_NAMES = (
    "hot", "cold", "disk", "redis", "delta", "degraded", "concurrency", "scaling", "memory",
)  # fmt: skip


def scenarios() -> dict[str, Callable[[Context], dict[str, Any]]]:
    """The scenario functions. Imported here, not at the top: the helper processes this program
    spawns (the proxies, the disk tier's contention workers) import this file as their main
    module, and need none of pyarrow, deltalake, datafusion or matplotlib."""
    from _scenarios import cold, delta, disk, hot, redis
    from _scenarios_faults import degraded
    from _scenarios_load import concurrency, scaling
    from _scenarios_memory import memory

    functions: dict[str, Callable[[Context], dict[str, Any]]] = {
        "hot": hot,
        "cold": cold,
        "disk": disk,
        "redis": redis,
        "delta": delta,
        "degraded": degraded,
        "concurrency": concurrency,
        "scaling": scaling,
        "memory": memory,
    }
    return functions


# The program's own tiers only: never a disk directory or a Redis from the environment.
OWN = ("TIERCACHE_DISK_DIR", "TIERCACHE_REDIS_URL", "TIERCACHE_REDIS_PREFIX")


STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the program started."""
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def measure(mode: str, names: list[str]) -> dict[str, Any]:
    """Run the scenarios; a scenario that fails is recorded (with its traceback) and skipped."""
    import _report
    from _proxy import ProxyProcess
    from _scenarios import BUCKET, PROFILES, SIZES, Context
    from tiercache import Settings
    from tiercache.testing import RedisServer, S3Server

    functions = scenarios()
    for name in OWN:
        os.environ.pop(name, None)
    settings = Settings.from_env(disk_dir=None, redis_url=None)
    results: dict[str, Any] = {
        "mode": mode,
        "meta": _report.machine(),
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
    workdir = Path(tempfile.mkdtemp(prefix="tiercache-run-"))
    try:
        with S3Server() as server, RedisServer() as redis_server:
            proxies = {
                name: ProxyProcess(
                    server.endpoint_url,
                    delay_s=p.delay_s,
                    bandwidth_bytes_per_s=p.bandwidth_bytes_per_s,
                )
                for name, p in PROFILES.items()
            }
            try:
                for proxy in proxies.values():
                    proxy.start()
                server.create_bucket(BUCKET)
                ctx = Context(
                    sizes=SIZES[mode],
                    server=server,
                    proxies=proxies,
                    redis=redis_server,
                    workdir=workdir,
                    settings=settings,
                    log=log,
                )
                for name in names:
                    log(f"{name} ...")
                    t0 = time.perf_counter()
                    try:
                        results["scenarios"][name] = functions[name](ctx)
                    except Exception:
                        log(f"{name} FAILED:\n{traceback.format_exc()}")
                        results["scenarios"][name] = {"error": traceback.format_exc()}
                    results["timings"][name] = time.perf_counter() - t0
                    log(f"{name} done in {results['timings'][name]:.1f} s")
            finally:
                for proxy in proxies.values():
                    proxy.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["took_s"] = time.perf_counter() - started
    results["load"]["end"] = os.getloadavg()
    return results


def render(results: dict[str, Any], out: Path) -> list[str]:
    """Write report.md and the plots into ``out``; return the plot file names."""
    import _plots
    import _report

    out.mkdir(parents=True, exist_ok=True)
    plots = _plots.draw_all(results, out)
    (out / "report.md").write_text(_report.report(results, plots))
    return plots


def update_docs(results: dict[str, Any], out: Path, plots: list[str]) -> list[str]:
    """Copy the plots into docs/benchmarks/ and rewrite the generated sections of the doc."""
    import _report

    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in plots:
        shutil.copyfile(out / name, DOC_IMAGES / name)
    parts = _report.sections(results, "benchmarks/", plots)
    return _report.update_doc(DOC, parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smaller run: under 3 minutes")
    size.add_argument("--smoke", action="store_true", help="minimal sizes: every code path")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    parser.add_argument(
        "--only", help=f"comma-separated scenarios (default: all of {', '.join(SCENARIO_NAMES)})"
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
        mode = "smoke" if args.smoke else "quick" if args.quick else "full"
        names = list(SCENARIO_NAMES) if not args.only else args.only.split(",")
        unknown = [n for n in names if n not in SCENARIO_NAMES]
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(unknown)}")
        results = measure(mode, names)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    plots = render(results, args.out)
    log(f"wrote {args.out / 'results.json'}, {args.out / 'report.md'} and {len(plots)} plots")
    if args.update_docs:
        missing = [n for n in SCENARIO_NAMES if n not in results["scenarios"]]
        if missing:
            log(f"not updating the docs: these scenarios did not run: {', '.join(missing)}")
            return 2
        if results["mode"] != "full":
            log(f"note: updating the docs from a {results['mode']!r} run")
        replaced = update_docs(results, args.out, plots)
        log(f"updated {DOC.relative_to(ROOT)}: {', '.join(replaced) or 'no generated sections'}")
    import _report

    print(_report.sections(results, "", plots)["targets"])
    targets = [t for s in results["scenarios"].values() for t in s.get("targets", [])]
    missed = [t for t in targets if not t["informative"] and not t["met"]]
    failed = [name for name, s in results["scenarios"].items() if "error" in s]
    if failed:
        return 2
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
