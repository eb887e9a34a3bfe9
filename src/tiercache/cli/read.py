"""``tiercache read``: read one range through the tiers and say what the cache did."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tiercache.cli.options import parse_storage_options
from tiercache.errors import ConfigError

#: How long ``tiercache read`` waits for the background fills of the slower tiers.
FILL_WAIT_S = 5.0
DESCRIPTION = (
    "Read bytes [START, END) of one object through the tiers (RAM, then disk and Redis as the "
    "TIERCACHE_* variables configure them, then the origin), wait up to 5 s for the slower "
    "tiers to be filled, and print a short summary: the bytes read and the tiers' and origin's "
    "counters. --json prints the whole stats() document instead. Exit status 0; 1 when the "
    "object cannot be read (missing, a directory, no credentials, access denied); 2 on a bad "
    "argument or configuration error."
)


def add_parser(commands: Any, storage_option: dict[str, Any]) -> None:
    """Add the ``read`` command to ``commands`` (the CLI's subparsers)."""
    read = commands.add_parser(
        "read",
        help="read a range through the cache and print the byte count and what the tiers did",
        description=DESCRIPTION,
    )
    read.add_argument("url", help="a chained URL, e.g. tiercache::s3://bucket/key")
    read.add_argument("--start", type=int, default=None, help="first byte (default: 0)")
    read.add_argument("--end", type=int, default=None, help="end byte, exclusive (default: EOF)")
    read.add_argument("--storage-option", **storage_option)
    read.add_argument(
        "--json", action="store_true", help="print {path, bytes, stats} with the full stats()"
    )
    read.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read the range; print the summary (or the JSON document)."""
    import fsspec

    from tiercache.ops import observe
    from tiercache.ops.report import format_chain

    if not args.url.startswith("tiercache::"):
        raise ConfigError(f"{args.url!r} is not a tiercache:: URL (e.g. tiercache::s3://b/key)")
    target = args.url.removeprefix("tiercache::")
    protocol = target.partition("://")[0] if "://" in target else "file"
    options = parse_storage_options(
        args.storage_option, command="tiercache read", protocol=protocol
    )
    observe.start()  # the environment's stats file (written at exit) and metrics, if asked for
    fs, path = fsspec.core.url_to_fs(args.url, **({protocol: options} if options else {}))
    if fs.isdir(path):
        raise IsADirectoryError(f"{path} (read one object in it)")
    data = fs.read_range(path, args.start, args.end)
    # The slower tiers are filled behind the read: let them finish (a few seconds at most), so
    # that the next process finds the blocks and the stats show what was written.
    fs.chain.fills.join(FILL_WAIT_S)
    stats = fs.stats()
    if args.json:
        print(json.dumps({"path": path, "bytes": len(data), "stats": stats}, indent=2))
        return 0
    print(f"read {len(data):,} bytes of {path}")
    print(format_chain({"chain": "read", "target": protocol, "stats": stats}))
    return 0
