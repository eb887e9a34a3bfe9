"""Serving the gateway: the HTTP server (uvicorn) around the app, where it may listen, and the
supervisor that keeps the socket while workers come and go.

uvicorn with httptools, and the bounds a server facing other containers needs (uvicorn has no
setting for most of them with httptools, so :func:`_guarded_protocol` adds them):

- a request head (request line and headers) of at most :data:`MAX_HEADER_BYTES` (431 beyond),
  read within :data:`HEADER_TIMEOUT_S` of its first byte (408 after);
- a request body that stalls for :data:`BODY_IDLE_S` ends its connection;
- a connection idle for :data:`KEEP_ALIVE_S` is closed, a new one that never sends a byte too;
- :data:`MAX_CONNECTIONS` at once: a request beyond is answered 503 at once (clients retry);
- a listen backlog of :data:`BACKLOG`;
- a graceful shutdown on SIGTERM / SIGINT: requests in progress finish, for at most
  :data:`GRACEFUL_S`, then :func:`serve` returns (uvicorn would re-raise the signal and kill the
  process before its ``atexit`` work: the stats file).

:func:`supervise` (``tiercache serve``) holds the listening socket in a parent process and serves
from worker processes it restarts when they die (uvicorn's multiprocess supervisor), so a crashed
worker never closes the port: connections wait in the backlog until a worker takes them.

The only module that imports uvicorn. Chosen by measurement over the standard library's threaded
server and aiohttp (docs/gateway.md). Without client credentials the gateway accepts any
signature, so it may listen on loopback addresses only (:func:`check_listen`).
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from tiercache.errors import ConfigError
from tiercache.fs import TieredFileSystem
from tiercache.gateway.app import GatewayApp
from tiercache.gateway.auth import Authenticator
from tiercache.gateway.deltalog import KeptLogListings
from tiercache.gateway.objects import Objects
from tiercache.gateway.sigv4 import Credentials
from tiercache.gateway.snapshots import Snapshots
from tiercache.gateway.upstream import OriginCalls, Upstream, is_s3fs
from tiercache.gateway.upstream_fsspec import FsspecUpstream
from tiercache.gateway.writes import Writes

#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 30
#: Seconds the requests in progress get to finish on shutdown.
GRACEFUL_S = 10
#: Connections served at once; more are answered 503 (their clients retry).
MAX_CONNECTIONS = 512
#: The largest request head (request line and headers) read; beyond, 431 and the connection
#: closes. S3 requests carry a few KiB (a presigned URL ~1.5 KiB, user metadata at most 2 KiB).
MAX_HEADER_BYTES = 64 << 10
#: Seconds a request head may take from its first byte to its last (a slow client's, a
#: slowloris'); after, 408 and the connection closes.
HEADER_TIMEOUT_S = 10.0
#: Seconds a request body may go without a byte arriving; after, the connection closes.
BODY_IDLE_S = 30.0
#: Connections the kernel queues before a worker accepts them (capped by net.core.somaxconn).
BACKLOG = 1024
#: Seconds the sidecar waits for a worker to answer ``GET /-/health`` before saying it serves.
READY_TIMEOUT_S = 60.0

logger = logging.getLogger(__name__)
# Addresses a server listens on but a client connects to by their family's loopback address.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


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
    """The gateway's app over ``fs``'s chain and target: s3fs, whose client the calls that are
    not reads go to (:class:`Upstream`), or any other fsspec filesystem, on which they are
    emulated (:class:`FsspecUpstream`: GCS, Azure, a local directory)."""
    timeout_s = fs.settings.origin_timeout_s
    upstream: OriginCalls = (
        Upstream(fs.target, timeout_s=timeout_s)
        if is_s3fs(fs.target)
        else FsspecUpstream(fs.target, timeout_s=timeout_s)
    )
    snapshots = Snapshots()
    writes = Writes(upstream, _forgetter(fs), KeptLogListings(fs), snapshots)
    authenticate = Authenticator(credentials) if credentials else None
    objects = Objects(fs.chain, log_ttl_s=fs.settings.delta_log_ttl_s)
    return GatewayApp(objects, writes, authenticate=authenticate, snapshots=snapshots)


def _forgetter(fs: TieredFileSystem) -> Callable[[str], None]:
    """What a write calls to forget ``bucket/key`` in the tiers: the path as the gateway's reads
    name it, and as the target spells it where that differs (memory: ``/bucket/key``)."""

    def forget(path: str) -> None:
        fs.invalidate_cache(path)
        if str(fs.target._strip_protocol(path)) != path:
            fs.chain.invalidate(path)

    return forget


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve(
    app: GatewayApp,
    sock: socket.socket,
    *,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM / SIGINT, then shut down gracefully and return."""
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="asyncio",
        http=_guarded_protocol(),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_S,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        date_header=True,
        # X-Forwarded-* headers are a client's word: the gateway acts on none of them.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    if on_started is not None:
        original = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original(sockets=sockets)
            on_started()

        server.startup = startup  # type: ignore[method-assign]
    restore = _absorb_reraised_signals()
    try:
        server.run(sockets=[sock])
    finally:
        restore()
        app.close()


def supervise(
    make_app: Callable[[], GatewayApp],
    sock: socket.socket,
    *,
    workers: int = 1,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve on ``sock`` from ``workers`` processes, each with its own ``make_app()``, restarting
    any that dies or stops answering, until SIGTERM / SIGINT (passed on to the workers, whose
    requests in progress finish).

    This process keeps ``sock`` open throughout, so a dead worker costs its requests in
    progress only: new connections wait in the backlog until a worker accepts them. uvicorn's
    supervisor checks its workers every 0.5 s (a worker that does not answer its ping within
    5 s is killed and replaced).

    Args:
        make_app: Builds a worker's app; pickled to each worker (a module-level function, or a
            ``functools.partial`` of one).
        sock: The bound, listening socket.
        workers: Worker processes (each has its own RAM tier; the disk and Redis tiers are
            shared).
        on_ready: Called (from a thread) once a worker answers ``GET /-/health``.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # The app string is never loaded: each worker builds its app with make_app.
    config = uvicorn.Config("tiercache.gateway.server:build_app", workers=workers, log_level="info")
    supervisor = Multiprocess(config, target=functools.partial(_worker, make_app), sockets=[sock])
    if on_ready is not None:
        threading.Thread(
            target=_announce_when_serving,
            args=(sock, on_ready),
            name="tiercache-ready",
            daemon=True,
        ).start()
    supervisor.run()


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent process dies, even by SIGKILL (its pipes may stay
    open in other processes)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(make_app: Callable[[], GatewayApp], sockets: list[socket.socket] | None) -> None:
    """A supervised worker's life: its own app, served on the supervisor's socket."""
    die_with_parent()
    assert sockets, "the supervisor passes its socket"
    serve(make_app(), sockets[0])


def _announce_when_serving(sock: socket.socket, on_ready: Callable[[], None]) -> None:
    host, port = sock.getsockname()[:2]
    host = _WILDCARDS.get(host, host)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", "/-/health")
            if connection.getresponse().status == 200:
                on_ready()
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    logger.error("gateway: no worker answered GET /-/health within %.0f s", READY_TIMEOUT_S)


def _absorb_reraised_signals() -> Callable[[], None]:
    """Let a graceful shutdown end in a normal return.

    uvicorn restores the signal handlers it found and re-raises the signal that stopped it; with
    these no-op handlers in place, that re-raise ends here instead of killing the process.
    Returns the function that restores the previous handlers (main thread only: elsewhere
    uvicorn installs none).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def absorb(signum: int, frame: FrameType | None) -> None:
        pass

    previous = {sig: signal.signal(sig, absorb) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send each write at once (``TCP_NODELAY``): uvicorn writes a response's head and its body
    separately, and with Nagle's algorithm on, the body of a small response waits for the
    client's delayed ACK of the head: 40 ms on Linux, measured on every request of a
    keep-alive connection (delta-rs opening a table: 150 ms instead of 10). asyncio leaves it
    off on accepted sockets."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@functools.cache
def _guarded_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the bounds of the module docstring.

    It extends callbacks of uvicorn's ``HttpToolsProtocol`` and reads its state (``cycle``,
    ``flow``, the keep-alive timer), which uvicorn does not promise to keep: written against
    uvicorn 0.32; tests/gateway/test_limits.py fails if a release changes them.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_open = False
        _head_bytes = 0
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            _no_delay(transport)
            # uvicorn arms its idle timer after a response only: a connection that never sends
            # a byte would stay open for ever (and count against MAX_CONNECTIONS).
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_open and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEADER_BYTES:
                    self._refuse(b"431 Request Header Fields Too Large")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_open, self._head_bytes = True, 0
            self._arm(HEADER_TIMEOUT_S, self._head_late)

        def on_headers_complete(self) -> None:
            self._head_open = False
            self._arm(BODY_IDLE_S, self._body_stalled)  # disarmed when the message completes
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._arm(BODY_IDLE_S, self._body_stalled)
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self, delay_s: float, callback: Callable[[], None]) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay_s, callback)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_late(self) -> None:
            self._timer = None
            if self._head_open and not self.transport.is_closing():
                self._refuse(b"408 Request Timeout")

        def _body_stalled(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.flow.read_paused:  # the app is the slow one: its buffer is full
                self._arm(BODY_IDLE_S, self._body_stalled)
                return
            self.logger.warning("gateway: a request body stalled for %.0f s", BODY_IDLE_S)
            self.transport.close()  # the app sees the client go away

        def _refuse(self, status: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # no response under way
                self.transport.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            self.transport.close()

    return GuardedHttpToolsProtocol
