"""The ``tiercache`` command line. Subcommands are added by the features that need them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ConfigError


def _config(_: argparse.Namespace) -> int:
    from .config import Settings

    settings = Settings.from_env()
    for variable, value in settings.describe().items():
        print(f"{variable}={value}")
    return 0


def _read(args: argparse.Namespace) -> int:
    import fsspec

    fs, path = fsspec.core.url_to_fs(args.url)
    if fs.protocol != "tiercache":
        print(f"tiercache: {args.url!r} is not a tiercache:: URL", file=sys.stderr)
        return 2
    data = fs.read_range(path, args.start, args.end)
    print(json.dumps({"path": path, "bytes": len(data), "stats": fs.stats()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="tiercache", description="Cache tiers in front of object storage."
    )
    parser.add_argument("--version", action="version", version=f"tiercache {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser(
        "config", help="print the effective settings (from TIERCACHE_* variables), secrets redacted"
    )
    config.set_defaults(run=_config)
    read = commands.add_parser(
        "read", help="read a range through the cache and print the byte count and stats()"
    )
    read.add_argument("url", help="a chained URL, e.g. tiercache::s3://bucket/key")
    read.add_argument("--start", type=int, default=None, help="first byte (default: 0)")
    read.add_argument("--end", type=int, default=None, help="end byte, exclusive (default: EOF)")
    read.set_defaults(run=_read)
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
