"""``tiercache serve``: the gateway as a sidecar, for any engine in any language.

The origin is ``s3`` (or ``--target-protocol``: any fsspec filesystem, e.g. ``gs``, ``abfs``,
whose calls other than reads the gateway emulates), configured by ``--storage-option`` pairs
(the origin filesystem's own options, e.g. s3fs's ``endpoint_url=...``) and the store's
standard environment (for S3: credentials, region, ``AWS_ENDPOINT_URL``); the tiers by the
``TIERCACHE_*`` variables; where it listens by ``--listen`` or ``TIERCACHE_GATEWAY_LISTEN``.
This process holds the listening socket and serves from ``--workers`` worker processes it
restarts when they die, so a crash never closes the port. It serves until SIGTERM (graceful:
requests in progress finish). See docs/gateway.md.
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import TYPE_CHECKING, Any

from tiercache.cli.options import parse_storage_options
from tiercache.config import Settings
from tiercache.errors import ConfigError

if TYPE_CHECKING:
    from tiercache.gateway.app import GatewayApp

#: The most worker processes ``--workers`` takes.
MAX_WORKERS = 64


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command to ``commands`` (the CLI's subparsers)."""
    serve = commands.add_parser(
        "serve",
        help="run the S3-compatible gateway over the tiers (a sidecar; docs/gateway.md)",
        description="Serve path-style S3 requests through the tiers: reads by block through "
        "RAM, disk and Redis; writes and listings passed to the origin. Prints one JSON line "
        "with the address once it serves.",
    )
    serve.add_argument(
        "--listen", default=None, help="HOST:PORT (default: TIERCACHE_GATEWAY_LISTEN)"
    )
    serve.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the origin's filesystem (repeatable), e.g. s3fs's "
        "endpoint_url=http://minio:9000; "
        "the rules of every command's --storage-option (docs/operations.md)",
    )
    serve.add_argument(
        "--target-protocol",
        default="s3",
        metavar="PROTOCOL",
        help="the origin's fsspec protocol (default s3; gs, abfs, ...: listings and writes are "
        "then emulated on the filesystem, docs/gateway.md)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes serving the socket, each restarted when it dies; each has its "
        "own RAM tier (default 1)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT; 0 on a clean shutdown."""
    from tiercache.gateway.server import bind, check_listen, parse_listen, supervise

    settings = Settings.from_env()
    listen = args.listen or settings.gateway_listen
    host, port = parse_listen(
        listen, variable="--listen" if args.listen else "TIERCACHE_GATEWAY_LISTEN"
    )
    check_listen(host, _credentials(settings))
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(f"--workers={args.workers}: expected 1 to {MAX_WORKERS}")
    if args.workers > 1 and (settings.metrics_port is not None or settings.stats_file):
        raise ConfigError(
            f"--workers={args.workers} with TIERCACHE_METRICS_PORT or TIERCACHE_STATS_FILE: each "
            "worker process has its own counters and they would share one port or file; use "
            "--workers 1 to export them"
        )
    protocol = str(args.target_protocol)
    _check_protocol(protocol)
    options = parse_storage_options(
        args.storage_option, command="tiercache serve", protocol=protocol
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    address = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"

    def ready() -> None:
        print(json.dumps({"listening": address}), flush=True)

    make_app = functools.partial(worker_app, options, protocol=protocol)
    supervise(make_app, sock, workers=args.workers, on_ready=ready)
    return 0


def worker_app(options: dict[str, Any], *, protocol: str = "s3") -> GatewayApp:
    """A worker's app over ``protocol`` (``s3``) with ``options``, its settings from the
    environment (run in each worker process; its metrics and stats file start there)."""
    from tiercache.fs import TieredFileSystem
    from tiercache.gateway.server import build_app
    from tiercache.ops import observe

    settings = Settings.from_env()
    observe.start(settings)
    fs = TieredFileSystem(target_protocol=protocol, target_options=options, settings=settings)
    return build_app(fs, _credentials(settings))


def _check_protocol(protocol: str) -> None:
    """Refuse a protocol fsspec has no filesystem for (before any worker starts).

    Raises:
        ConfigError: Unknown, or its package is not installed.
    """
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"--target-protocol={protocol!r}: {exc}") from exc


def _credentials(settings: Settings) -> list[Any]:
    from tiercache.gateway.sigv4 import Credentials

    key, secret = settings.gateway_access_key_id, settings.gateway_secret_access_key
    return [Credentials(key, secret)] if key and secret else []
