"""``tiercache serve``: the gateway as a sidecar, for any engine in any language.

The origin is ``s3``, configured by ``--storage-option`` pairs (s3fs's options, e.g.
``endpoint_url=...``) and the standard AWS environment (credentials, region,
``AWS_ENDPOINT_URL``); the tiers by the ``TIERCACHE_*`` variables; where it listens by
``--listen`` or ``TIERCACHE_GATEWAY_LISTEN``. It serves until SIGTERM (graceful: requests in
progress finish). See docs/gateway.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tiercache.config import Settings
from tiercache.errors import ConfigError

_S3FS_ENDPOINT = "endpoint_url"


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
        help="an s3fs option of the origin, e.g. endpoint_url=http://minio:9000 (repeatable)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT; 0 on a clean shutdown."""
    from tiercache.fs import TieredFileSystem
    from tiercache.gateway.server import bind, build_app, check_listen, parse_listen, serve
    from tiercache.gateway.sigv4 import Credentials
    from tiercache.ops import observe

    settings = Settings.from_env()
    listen = args.listen or settings.gateway_listen
    host, port = parse_listen(
        listen, variable="--listen" if args.listen else "TIERCACHE_GATEWAY_LISTEN"
    )
    credentials = []
    if settings.gateway_access_key_id and settings.gateway_secret_access_key:
        credentials.append(
            Credentials(settings.gateway_access_key_id, settings.gateway_secret_access_key)
        )
    check_listen(host, credentials)
    options = _options(args.storage_option)
    observe.start(settings)
    fs = TieredFileSystem(target_protocol="s3", target_options=options, settings=settings)
    app = build_app(fs, credentials)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
    bound = sock.getsockname()

    def started() -> None:
        print(json.dumps({"listening": f"{bound[0]}:{bound[1]}"}), flush=True)

    serve(app, sock, on_started=started)
    return 0


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(
                f"--storage-option takes KEY=VALUE, e.g. endpoint_url=..., got {pair!r}"
            )
        if name == _S3FS_ENDPOINT:
            options.setdefault("client_kwargs", {})["endpoint_url"] = value
        elif name in ("region_name", "region"):
            options.setdefault("client_kwargs", {})["region_name"] = value
        else:
            options[name] = _value(value)
    return options


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text
