"""The ``tiercache`` command line. Subcommands are added by the features that need them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tiercache import __version__
from tiercache.errors import ConfigError


def _pairs(pairs: Sequence[str], usage: str) -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict (the last one wins); a value may be empty."""
    given = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{usage}, got {pair!r}")
        given[name] = value
    return given


def _assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``--set VARIABLE=VALUE`` pairs."""
    return _pairs(pairs, "--set takes VARIABLE=VALUE, e.g. TIERCACHE_MEMORY_BYTES=1GiB")


def _config(args: argparse.Namespace) -> int:
    from tiercache.config import UNAUTHENTICATED_REDIS, Settings

    settings, sources = Settings.from_env_with_sources(arguments=_assignments(args.set))
    shown = settings.describe()  # secrets redacted
    if settings.redis_unauthenticated:  # on stderr: loud, and the table stays parseable
        print(f"tiercache: WARNING: {UNAUTHENTICATED_REDIS}", file=sys.stderr)
    if args.json:
        table = {name: {"value": shown[name], "source": sources[name]} for name in shown}
        print(json.dumps(table, indent=2))
        return 0
    rows = [("VARIABLE", "VALUE", "SOURCE")]
    rows += [(name, _text(value), sources[name]) for name, value in shown.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, value, source in rows:
        print(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    return 0


def _text(value: object) -> str:
    """A setting as text an environment variable could hold (unset: ``-``)."""
    return "-" if value is None else str(value)


def _doctor(args: argparse.Namespace) -> int:
    from tiercache.cli.doctor import format_report, run_doctor
    from tiercache.config import Settings

    settings, _ = Settings.from_env_with_sources(arguments=_assignments(args.set))
    report = run_doctor(
        settings,
        args.url,
        storage_options=_storage_options(args.storage_option),
        gateway=args.gateway,
        gateway_bucket=args.gateway_bucket,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return report.exit_status


#: How long ``tiercache read`` waits for the background fills of the slower tiers.
FILL_WAIT_S = 5.0


def _read(args: argparse.Namespace) -> int:
    import fsspec

    from tiercache.ops import observe

    observe.start()  # the environment's stats file (written at exit) and metrics, if asked for
    fs, path = fsspec.core.url_to_fs(args.url)
    if fs.protocol != "tiercache":
        print(f"tiercache: {args.url!r} is not a tiercache:: URL", file=sys.stderr)
        return 2
    data = fs.read_range(path, args.start, args.end)
    # The slower tiers are filled behind the read: let them finish (a few seconds at most), so
    # that the next process finds the blocks and the stats show what was written.
    fs.chain.fills.join(FILL_WAIT_S)
    print(json.dumps({"path": path, "bytes": len(data), "stats": fs.stats()}, indent=2))
    return 0


def _storage_options(pairs: Sequence[str]) -> dict[str, str]:
    """``--storage-option KEY=VALUE`` pairs."""
    return _pairs(pairs, "--storage-option takes KEY=VALUE, e.g. AWS_REGION=eu-west-1")


def _warm(args: argparse.Namespace) -> int:
    from tiercache.config import parse_duration, parse_size
    from tiercache.integrations.warming import warm

    report = warm(
        args.target,
        storage_options=_storage_options(args.storage_option),
        version=args.version,
        max_files=args.max_files,
        max_bytes=None
        if args.max_bytes is None
        else parse_size(args.max_bytes, variable="--max-bytes"),
        concurrency=args.concurrency,
        time_limit_s=None
        if args.time_limit is None
        else parse_duration(args.time_limit, variable="--time-limit"),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        stopped = f" (stopped by {report.stopped_by})" if report.stopped_by else ""
        print(
            f"warmed {report.files_warmed} of {report.files_attempted} files attempted "
            f"({report.files_found} found), {report.bytes:,} bytes in "
            f"{report.duration_s:.2f} s{stopped}"
        )
        for error in report.errors:
            print(f"  error: {error}")
    return 1 if args.fail_on_error and report.errors else 0


def _load_stats(path: str) -> dict[str, object] | None:
    from tiercache.ops.statsfile import read

    try:
        return read(path)
    except (OSError, ValueError) as exc:
        print(f"tiercache: cannot read the stats file: {exc}", file=sys.stderr)
        return None


def _stats(args: argparse.Namespace) -> int:
    from tiercache.ops.report import format_document

    document = _load_stats(args.file)
    if document is None:
        return 2
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(format_document(document))
    return 0


def _advise(args: argparse.Namespace) -> int:
    from tiercache.ops.advise import advise
    from tiercache.ops.report import table

    document = _load_stats(args.file)
    if document is None:
        return 2
    chains = document["chains"]
    assert isinstance(chains, list)
    results = []
    for chain in chains:
        verdicts, suggested = advise(chain["stats"])
        results.append((chain, verdicts, suggested))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "chain": chain["chain"],
                        "target": chain["target"],
                        "verdicts": [v.to_dict() for v in verdicts],
                        "suggested_memory_bytes": suggested,
                    }
                    for chain, verdicts, suggested in results
                ],
                indent=2,
            )
        )
    else:
        for chain, verdicts, suggested in results:
            print(f"chain {chain['chain']}  target {chain['target']}")
            rows = [[v.layer, v.verdict, v.measured, v.threshold] for v in verdicts]
            print(table(rows, ["layer", "verdict", "measured", "threshold"]))
            if suggested is not None:
                print(f"RAM the curve suggests: TIERCACHE_MEMORY_BYTES={suggested // 2**20}MiB")
            for v in verdicts:
                print(f"- {v.layer}: {v.detail}. Degrades to: {v.failure_mode}")
            print()
    if args.plot:
        from tiercache.ops.advise import plot

        try:
            plot([chain["stats"] for chain, _, _ in results], args.plot)
        except (ImportError, ValueError) as exc:
            print(f"tiercache: cannot plot: {exc}", file=sys.stderr)
            return 1
        print(f"miss-ratio curves written to {args.plot}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tiercache.cli.demo.run import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="tiercache", description="Cache tiers in front of object storage."
    )
    parser.add_argument("--version", action="version", version=f"tiercache {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    set_help = (
        "set a TIERCACHE_* variable for this run (repeatable), parsed like the environment and "
        "winning over it; an empty VALUE unsets the variable"
    )
    config = commands.add_parser(
        "config",
        help="print the effective settings and where each came from, secrets redacted",
        description="Print every TIERCACHE_* setting the process would use, and its source: "
        "argument (--set), environment or default. The Redis URL's password and the HMAC key "
        "are never printed. Exit status 0, or 2 on a configuration error.",
    )
    config.add_argument(
        "--set", action="append", default=[], metavar="VARIABLE=VALUE", help=set_help
    )
    config.add_argument("--json", action="store_true", help="print {variable: {value, source}}")
    config.set_defaults(run=_config)
    doctor = commands.add_parser(
        "doctor",
        help="check that every configured tier (and optionally the origin) is usable",
        description="Start each configured tier as reads would (memory; disk with "
        "TIERCACHE_DISK_DIR; Redis with TIERCACHE_REDIS_URL), check it is ready, and probe it: "
        "write a small framed block under a unique key, read it back and compare, delete it, "
        "check it is gone, each step timed and bounded by the tier's time budget. Exit status "
        "0 when everything checked is usable, 1 when something is not, 2 on a configuration "
        "error.",
    )
    doctor.add_argument(
        "--set", action="append", default=[], metavar="VARIABLE=VALUE", help=set_help
    )
    doctor.add_argument(
        "--url",
        default=None,
        help="also check the origin: info() of this object, e.g. tiercache::s3://bucket/key, "
        "within TIERCACHE_ORIGIN_TIMEOUT",
    )
    doctor.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the origin's filesystem (repeatable), e.g. endpoint_url=http://...",
    )
    doctor.add_argument(
        "--gateway",
        default=None,
        metavar="URL",
        help="also check a running gateway, e.g. http://127.0.0.1:9000: GET /-/health within "
        "2 s, GET /-/stats (its request counts), and one signed S3 request (signed with "
        "TIERCACHE_GATEWAY_ACCESS_KEY_ID / TIERCACHE_GATEWAY_SECRET_ACCESS_KEY when set)",
    )
    doctor.add_argument(
        "--gateway-bucket",
        default=None,
        metavar="BUCKET",
        help="the signed request is HeadBucket of this bucket (default: ListBuckets)",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)
    read = commands.add_parser(
        "read", help="read a range through the cache and print the byte count and stats()"
    )
    read.add_argument("url", help="a chained URL, e.g. tiercache::s3://bucket/key")
    read.add_argument("--start", type=int, default=None, help="first byte (default: 0)")
    read.add_argument("--end", type=int, default=None, help="end byte, exclusive (default: EOF)")
    read.set_defaults(run=_read)
    warm = commands.add_parser(
        "warm",
        help="prefetch the Parquet footers of the most recent files of a Delta table or prefix",
        description="Prefetch footers (and page index / bloom filter regions) into the tiers, "
        "within limits (default: the TIERCACHE_WARM_* settings). Slow storage never makes it "
        "fail: at the time limit it prints what it did. Exit status 0, unless --fail-on-error "
        "and a file failed (1), or bad arguments (2).",
    )
    warm.add_argument("target", help="a Delta table URI or a prefix, e.g. s3://bucket/table")
    warm.add_argument("--max-files", type=int, default=None, help="most files to warm")
    warm.add_argument("--max-bytes", default=None, help="most bytes to read, e.g. 64MiB")
    warm.add_argument("--concurrency", type=int, default=None, help="files warmed at once")
    warm.add_argument("--time-limit", default=None, help="time limit, e.g. 10s")
    warm.add_argument("--version", type=int, default=None, help="Delta table version")
    warm.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a deltalake storage option (repeatable), e.g. AWS_ENDPOINT_URL=http://...",
    )
    warm.add_argument("--json", action="store_true", help="print the report as JSON")
    warm.add_argument(
        "--fail-on-error", action="store_true", help="exit 1 when any file failed to warm"
    )
    warm.set_defaults(run=_warm)
    demo = commands.add_parser(
        "demo",
        help="run the demo: a local S3 server, a Delta table of spans, DataFusion SQL through "
        "the tiers, cold and warm",
    )
    demo.add_argument("--rows", type=int, default=200_000, help="spans to write (default: 200000)")
    demo.add_argument(
        "--latency",
        default="20ms",
        help="added latency to first byte of every S3 response (default: 20ms; 0 for none)",
    )
    demo.add_argument("--json", action="store_true", help="print the result table as JSON")
    demo.set_defaults(run=_demo)
    stats = commands.add_parser(
        "stats", help="print a stats file (TIERCACHE_STATS_FILE): tiers, origin, latency"
    )
    stats.add_argument("file", help="the stats file")
    stats.add_argument("--json", action="store_true", help="print the file as JSON")
    stats.set_defaults(run=_stats)
    advise = commands.add_parser(
        "advise",
        help="evaluate the triggers of docs/triggers.md on a stats file: which layer pays",
        description="For each optional layer (more RAM, the disk tier, the Redis tier, warmup): "
        "the measured value, the threshold and the verdict; and the RAM size the miss-ratio "
        "curve suggests. Exit 0, or 2 when the file cannot be read.",
    )
    advise.add_argument("file", help="the stats file")
    advise.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    advise.add_argument("--plot", metavar="FILE.png", help="draw the miss-ratio curves")
    advise.set_defaults(run=_advise)
    from tiercache.cli import serve

    serve.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except ConfigError as exc:
        print(f"tiercache: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"tiercache: not found: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
