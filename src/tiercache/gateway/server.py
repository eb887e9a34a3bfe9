"""Serving the gateway: the HTTP server (uvicorn) around the app, and where it may listen.

uvicorn with httptools: keep-alive, a bound on concurrent connections (``limit_concurrency``:
more are answered 503 at once), idle connections closed after :data:`KEEP_ALIVE_S`, and a graceful
shutdown on SIGTERM (requests in progress finish, for at most :data:`GRACEFUL_S`). The only module
that imports uvicorn. Chosen by measurement over the standard library's threaded server and
aiohttp (docs/gateway.md).

Without client credentials the gateway accepts any signature, so it may listen on loopback
addresses only (:func:`check_listen`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

from tiercache.errors import ConfigError
from tiercache.fs import TieredFileSystem
from tiercache.gateway.app import GatewayApp
from tiercache.gateway.auth import Authenticator
from tiercache.gateway.objects import Objects
from tiercache.gateway.sigv4 import Credentials
from tiercache.gateway.upstream import Upstream
from tiercache.gateway.writes import Writes

#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 30
#: Seconds the requests in progress get to finish on shutdown.
GRACEFUL_S = 10
#: Connections served at once; more are answered 503 (their clients retry).
MAX_CONNECTIONS = 512


def parse_listen(listen: str, *, variable: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port).

    Raises:
        ConfigError: Not ``HOST:PORT``, or a port outside 0..65535.
    """
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{variable}={listen!r}: expected HOST:PORT, e.g. 127.0.0.1:9000")
    return host, int(port)


def check_listen(host: str, credentials: Sequence[Credentials]) -> None:
    """Refuse a non-loopback address when the gateway has no client credentials.

    Raises:
        ConfigError: ``host`` is not a loopback address and there are no credentials.
    """
    if credentials:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"the gateway would listen on {host!r} accepting any signature: set "
            "TIERCACHE_GATEWAY_ACCESS_KEY_ID and TIERCACHE_GATEWAY_SECRET_ACCESS_KEY, or listen "
            "on a loopback address (127.0.0.1, ::1)"
        )


def build_app(fs: TieredFileSystem, credentials: Sequence[Credentials] = ()) -> GatewayApp:
    """The gateway's app over ``fs``'s chain and target (an s3fs filesystem)."""
    upstream = Upstream(fs.target, timeout_s=fs.settings.origin_timeout_s)
    writes = Writes(upstream, fs.invalidate_cache)
    authenticate = Authenticator(credentials) if credentials else None
    return GatewayApp(Objects(fs.chain), writes, authenticate=authenticate)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def serve(
    app: GatewayApp,
    sock: socket.socket,
    *,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM / SIGINT (or :func:`stop` of the server)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_S,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        date_header=True,
    )
    server = uvicorn.Server(config)
    if on_started is not None:
        original = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original(sockets=sockets)
            on_started()

        server.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
