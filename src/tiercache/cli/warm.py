"""``tiercache warm``: prefetch the Parquet footers of a table's most recent files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from tiercache.cli.options import parse_storage_options
from tiercache.errors import ConfigError

DESCRIPTION = (
    "Prefetch footers (and page index / bloom filter regions) into the tiers, within limits "
    "(default: the TIERCACHE_WARM_* settings). Slow storage never makes it fail: at the time "
    "limit it prints what it did (exit 0). Exit status 1 when it could not list the target "
    "(missing, no credentials, access denied: it warmed nothing), or with --fail-on-error when "
    "a file failed; 2 on bad arguments."
)


def add_parser(commands: Any, storage_option: dict[str, Any]) -> None:
    """Add the ``warm`` command to ``commands`` (the CLI's subparsers)."""
    warm = commands.add_parser(
        "warm",
        help="prefetch the Parquet footers of the most recent files of a Delta table or prefix",
        description=DESCRIPTION,
    )
    warm.add_argument("target", help="a Delta table URI or a prefix, e.g. s3://bucket/table")
    warm.add_argument("--max-files", type=int, default=None, help="most files to warm")
    warm.add_argument("--max-bytes", default=None, help="most bytes to read, e.g. 64MiB")
    warm.add_argument("--concurrency", type=int, default=None, help="files warmed at once")
    warm.add_argument("--time-limit", default=None, help="time limit, e.g. 10s")
    warm.add_argument("--version", type=int, default=None, help="Delta table version")
    warm.add_argument("--storage-option", **storage_option)
    warm.add_argument("--json", action="store_true", help="print the report as JSON")
    warm.add_argument(
        "--fail-on-error", action="store_true", help="exit 1 when any file failed to warm"
    )
    warm.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Warm; print the report; the exit status of the description."""
    from tiercache.config import parse_duration, parse_size
    from tiercache.integrations.warming import warm

    scheme = args.target.partition("://")[0].lower() if "://" in args.target else "file"
    options = parse_storage_options(args.storage_option, command="tiercache warm", protocol=scheme)
    # A listing that failed is said below, once, as the error line: not again as a log record.
    logging.getLogger("tiercache.integrations.warming").addFilter(_not_the_listing)
    filesystem, delta_options = _origin(args.target, options)
    report = warm(
        args.target,
        filesystem=filesystem,
        storage_options=delta_options,
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
    if report.listing_error is not None:
        print(
            f"tiercache warm: error: could not list {args.target}, nothing warmed: "
            f"{report.listing_error}",
            file=sys.stderr,
        )
        return 1
    return 1 if args.fail_on_error and report.errors else 0


def _not_the_listing(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("warmup of %s could not list")


def _origin(target: str, options: dict[str, Any]) -> tuple[Any, dict[str, str] | None]:
    """The filesystem to warm (None: warm() builds it from the environment) and deltalake's
    options for the Delta log, from the s3fs-style ``options``."""
    if not options:
        return None, None
    from tiercache.config import Settings
    from tiercache.fs import TieredFileSystem
    from tiercache.integrations.delta import storage_options_for
    from tiercache.ops import observe

    scheme = target.partition("://")[0].lower() if "://" in target else "file"
    protocol = "s3" if scheme in ("s3", "s3a") else scheme
    if protocol == "file":
        raise ConfigError("--storage-option applies to object storage, not to a local target")
    settings = Settings.from_env()
    observe.start(settings)  # as warm() does when it builds the filesystem itself
    filesystem = TieredFileSystem(
        target_protocol=protocol, target_options=options, settings=settings
    )
    return filesystem, storage_options_for(options) if protocol == "s3" else None
