"""The ``tiercache`` command line. Subcommands are added by the features that need them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tiercache import __version__
from tiercache.cli import read, warm
from tiercache.cli.boundary import run_command
from tiercache.cli.options import parse_storage_options
from tiercache.errors import ConfigError

#: The ``--storage-option`` argument of every command that reaches storage (one convention).
STORAGE_OPTION: dict[str, object] = {
    "action": "append",
    "default": [],
    "metavar": "KEY=VALUE",
    "help": "an option of the origin's filesystem (repeatable; s3fs's keys for s3://), e.g. "
    "endpoint_url=http://127.0.0.1:9000, key=..., secret=..., anon=true, "
    "client_kwargs.region_name=eu-west-1; over the standard AWS environment "
    "(docs/operations.md)",
}


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
        print(f"tiercache config: WARNING: {UNAUTHENTICATED_REDIS}", file=sys.stderr)
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


def _protocol_of(url: str | None) -> str:
    """The origin protocol of ``tiercache::gs://b/k`` (``gs``); ``s3`` when none is named."""
    target = (url or "").removeprefix("tiercache::")
    return target.partition("://")[0].lower() if "://" in target else "s3"


def _doctor(args: argparse.Namespace) -> int:
    from tiercache.cli.doctor import format_report, run_doctor
    from tiercache.config import Settings

    settings, _ = Settings.from_env_with_sources(arguments=_assignments(args.set))
    report = run_doctor(
        settings,
        args.url,
        storage_options=parse_storage_options(
            args.storage_option, command="tiercache doctor", protocol=_protocol_of(args.url)
        ),
        gateway=args.gateway,
        gateway_bucket=args.gateway_bucket,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return report.exit_status


def _load_stats(path: str, command: str) -> dict[str, object] | None:
    from tiercache.cli.boundary import one_line
    from tiercache.ops.statsfile import read as read_stats

    try:
        return read_stats(path)
    except (OSError, ValueError) as exc:
        print(
            f"tiercache {command}: error: cannot read the stats file: {one_line(exc)}",
            file=sys.stderr,
        )
        return None


def _stats(args: argparse.Namespace) -> int:
    from tiercache.ops.report import format_document

    document = _load_stats(args.file, args.command)
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

    document = _load_stats(args.file, args.command)
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
            print(f"tiercache advise: error: cannot plot: {exc}", file=sys.stderr)
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
    doctor.add_argument("--storage-option", **STORAGE_OPTION)  # type: ignore[arg-type]
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
    read.add_parser(commands, STORAGE_OPTION)
    warm.add_parser(commands, STORAGE_OPTION)
    demo = commands.add_parser(
        "demo",
        help="run the demo: a local S3 server, a Delta table of spans, DataFusion SQL through "
        "the tiers, cold and warm",
        description="Start a local S3 server (moto) with added latency, write a Delta table of "
        "spans to it, and run DataFusion SQL over it through the tiers, cold then warm, "
        "printing each query's time and what the origin was asked. Needs the demo extra "
        "(pip install 'tiercache[demo]'). Exit status 0; 1 when the results of the direct, cold "
        "and warm runs differ; 2 when a package is missing or an argument is bad.",
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
        "stats",
        help="print a stats file (TIERCACHE_STATS_FILE): tiers, origin, latency",
        description="Print a stats file written by a process with TIERCACHE_STATS_FILE set: "
        "for each chain, each tier's hits, misses and errors, the origin's requests and "
        "latency, the info cache and the fills. --json prints the file itself. Exit status 0, "
        "or 2 when the file cannot be read.",
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
    return run_command(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
