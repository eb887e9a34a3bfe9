"""An HTTP fault proxy in front of an object store, for chaos tests and latency benchmarks.

:class:`HttpFaultProxy` listens on ``127.0.0.1`` and forwards every request to an upstream base
URL (typically an :class:`~tiercache.testing.S3Server`). Between client and upstream it can:

- answer requests with an S3-style error (``503 SlowDown`` by default, optionally with a
  ``Retry-After`` header) without reaching the upstream: the next *n*
  (:meth:`HttpFaultProxy.fail_next`) or each with a probability
  (:meth:`HttpFaultProxy.fail_probability`);
- cut response bodies short while announcing the full ``Content-Length``, then close the
  connection (:meth:`HttpFaultProxy.truncate_next`, :meth:`HttpFaultProxy.truncate_probability`);
- reset the client connection (an RST, no response at all) instead of answering
  (:meth:`HttpFaultProxy.reset_next`, :meth:`HttpFaultProxy.reset_probability`);
- delay the first byte of every response (:attr:`HttpFaultProxy.delay_s`) and pace bodies to a
  bandwidth (:attr:`HttpFaultProxy.bandwidth_bytes_per_s`), to emulate a real object store, e.g.
  20 ms to first byte and 100 MB/s per stream.

:meth:`HttpFaultProxy.clear_faults` cancels all of that at once. Count-mode faults take precedence
over probabilistic ones, and probabilistic ones are seeded for reproducible runs (see
:mod:`tiercache.testing.faults._plan` for the exact order of decisions). The proxy counts requests
by method and the faults it injected. Requests and responses are buffered whole, so it is meant
for test-sized objects. Only plain ``http://`` upstreams are supported.

Example::

    with S3Server() as server, HttpFaultProxy(server.endpoint_url) as proxy:
        fs = s3fs.S3FileSystem(**server.storage_options(proxy.url))
        proxy.fail_next(2)  # the next two GETs get 503 SlowDown
        proxy.reset_probability(0.1, seed=42)  # then one GET in ten, reproducibly, is reset
        ...
        proxy.clear_faults()  # plain forwarding again
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import math
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from tiercache.testing.faults._plan import FAULT_KINDS, Failure, FaultKind, FaultPlan, Reset
from tiercache.testing.servers._service import Service
from tiercache.testing.servers.ports import LOOPBACK

_log = logging.getLogger(__name__)

_CHUNK_BYTES = 64 * 1024
_IDLE_TIMEOUT_S = 60.0
_STOP_JOIN_TIMEOUT_S = 5.0
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN.

# Headers that describe one connection, not the message (RFC 9110 section 7.6.1), plus those the
# proxy sets itself: Host (the upstream's), Content-Length (recomputed), Expect (answered here).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "expect"}


def _forwardable(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, those the proxy sets itself, and those named in Connection."""
    items = list(headers)
    named = {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in items if n.lower() not in _NOT_FORWARDED | named]


# What S3 itself answers; other statuses get a code derived from the reason phrase.
_S3_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def s3_error_body(status: int) -> bytes:
    """Return the S3-style XML error document the proxy sends for an injected ``status``.

    Args:
        status: An HTTP status code. 503 gives ``SlowDown`` and 500 ``InternalError``, as S3
            sends them; any other status gives its reason phrase as code and message.

    Returns:
        ``<Error><Code>…</Code><Message>…</Message></Error>`` encoded as UTF-8.
    """
    if status in _S3_ERRORS:
        code, message = _S3_ERRORS[status]
    else:
        phrase = HTTPStatus(status).phrase
        code, message = phrase.replace(" ", ""), phrase
    return (
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()


@dataclass(frozen=True, slots=True)
class _Upstream:
    """Where and how requests are forwarded."""

    host: str
    port: int
    prefix: str
    timeout_s: float

    @classmethod
    def parse(cls, url: str, timeout_s: float) -> _Upstream:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream_url must be an http:// URL with a host: {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"), timeout_s)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def target(self, path: str) -> str:
        return self.prefix + path


@dataclass(frozen=True, slots=True)
class _UpstreamResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class HttpFaultProxy(Service):
    """A threaded HTTP/1.1 forwarding proxy on ``127.0.0.1`` that injects faults and latency.

    Every control is thread-safe and may be changed while requests are in flight. Use it as a
    context manager, or call :meth:`start` and :meth:`close` (both idempotent). A closed proxy
    can be started again; it listens on the same port, so clients keep their URL.

    Args:
        upstream_url: The base URL requests are forwarded to, e.g. an S3 server's
            ``http://127.0.0.1:PORT``. A path in it is prefixed to every request path.
        port: The port to listen on. Default 0: a free port chosen by the operating system at
            the first :meth:`start`.
        delay_s: Initial :attr:`delay_s`. Default 0.
        bandwidth_bytes_per_s: Initial :attr:`bandwidth_bytes_per_s`. Default ``None``.
        upstream_timeout_s: Socket timeout for connecting to and reading from the upstream; a
            request that exceeds it gets ``502 Bad Gateway``. Default 60 s.

    Raises:
        ValueError: ``upstream_url`` is not an ``http://`` URL with a host, or a control value
            is out of range.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        port: int = 0,
        delay_s: float = 0.0,
        bandwidth_bytes_per_s: float | None = None,
        upstream_timeout_s: float = 60.0,
    ) -> None:
        self._upstream = _Upstream.parse(upstream_url, upstream_timeout_s)
        self._upstream_url = upstream_url
        self._port = port
        self._faults = FaultPlan()
        self._lock = threading.Lock()
        self._delay_s = 0.0
        self._bandwidth_bytes_per_s: float | None = None
        self.delay_s = delay_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        running = self._server is not None
        return f"HttpFaultProxy(upstream_url={self._upstream_url!r}, running={running})"

    @property
    def port(self) -> int:
        """The port the proxy listens on.

        Raises:
            RuntimeError: The proxy was created with port 0 and has never been started.
        """
        if self._port == 0:
            raise RuntimeError("the proxy has not been started, so it has no port yet")
        return self._port

    @property
    def url(self) -> str:
        """The proxy's base URL, ``http://127.0.0.1:PORT``; clients use it as their endpoint.

        Raises:
            RuntimeError: The proxy was created with port 0 and has never been started.
        """
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def upstream_url(self) -> str:
        """The base URL requests are forwarded to."""
        return self._upstream_url

    @property
    def delay_s(self) -> float:
        """Seconds to wait before the first byte of every response, injected ones included.

        Default 0. Raises ``ValueError`` when set below 0.
        """
        with self._lock:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"delay_s must be >= 0, got {value!r}")
        with self._lock:
            self._delay_s = float(value)

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        """The pace of each response body in bytes per second; ``None`` (the default) is unlimited.

        Bodies are written in 64 KiB chunks, each released when the pace allows. Raises
        ``ValueError`` when set to a value that is not above 0.
        """
        with self._lock:
            return self._bandwidth_bytes_per_s

    @bandwidth_bytes_per_s.setter
    def bandwidth_bytes_per_s(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"bandwidth_bytes_per_s must be > 0 or None, got {value!r}")
        with self._lock:
            self._bandwidth_bytes_per_s = None if value is None else float(value)

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        methods: Iterable[str] = ("GET",),
        retry_after_s: float | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with an error, without forwarding them.

        The error body is S3's XML (see :func:`s3_error_body`); HEAD answers carry no body. The
        request body is read first, so the connection stays usable. Replaces any failures still
        pending; ``fail_next(0)`` cancels them. While failures are pending they take precedence
        over :meth:`fail_probability` and :meth:`reset_probability`.

        Args:
            count: How many requests to fail (>= 0).
            status: The HTTP status to answer with (400-599). Default 503 (``SlowDown``).
            methods: The request methods that match, case-insensitive. Default GET only.
            retry_after_s: If given, the answers carry ``Retry-After`` with this many seconds,
                rounded up to a whole number (>= 0). Default ``None``: no such header.

        Raises:
            ValueError: ``count`` is negative, ``status`` is not an error status, or
                ``retry_after_s`` is negative or not finite.
        """
        _check_count(count)
        failure = _failure(status, retry_after_s)
        self._faults.fail_next(count, failure, _methods(methods))

    def fail_probability(
        self,
        p: float,
        *,
        status: int = 503,
        methods: Iterable[str] = ("GET",),
        retry_after_s: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Answer each matching request with an error with probability ``p``, without forwarding.

        The answers are those of :meth:`fail_next`, which takes precedence while it has failures
        pending. Each call replaces the previous setting and starts a new generator, so with a
        ``seed`` the pattern is reproducible: the *n*-th request considered fails when the *n*-th
        ``random()`` of ``random.Random(seed)`` is below ``p``. ``fail_probability(0)`` turns
        probabilistic failures off.

        Args:
            p: The probability, from 0 (never) to 1 (always).
            status: The HTTP status to answer with (400-599). Default 503 (``SlowDown``).
            methods: The request methods that match, case-insensitive. Default GET only.
            retry_after_s: As for :meth:`fail_next`.
            seed: Seed of the generator. Default ``None``: seeded from the operating system.

        Raises:
            ValueError: ``p`` is not within [0, 1], ``status`` is not an error status, or
                ``retry_after_s`` is negative or not finite.
        """
        _check_probability(p)
        failure = _failure(status, retry_after_s)
        self._faults.fail_randomly(p, failure, _methods(methods), seed)

    def truncate_next(
        self, count: int, *, keep_bytes: int, methods: Iterable[str] = ("GET",)
    ) -> None:
        """Cut the body of the next ``count`` matching responses after ``keep_bytes`` bytes.

        The response keeps the upstream's status and full ``Content-Length``; after
        ``keep_bytes`` of the body the proxy closes the connection, as a failing network would.
        A response matches when its method matches and its body is longer than ``keep_bytes``
        (HEAD answers never match). Replaces any truncations still pending; ``truncate_next(0,
        keep_bytes=0)`` cancels them. While truncations are pending they take precedence over
        :meth:`truncate_probability`.

        Args:
            count: How many responses to cut (>= 0).
            keep_bytes: How many body bytes to send before closing (>= 0).
            methods: The request methods that match, case-insensitive. Default GET only.

        Raises:
            ValueError: ``count`` or ``keep_bytes`` is negative.
        """
        _check_count(count)
        _check_keep_bytes(keep_bytes)
        self._faults.truncate_next(count, keep_bytes, _methods(methods))

    def truncate_probability(
        self,
        p: float,
        *,
        keep_bytes: int,
        methods: Iterable[str] = ("GET",),
        seed: int | None = None,
    ) -> None:
        """Cut the body of each matching response after ``keep_bytes`` bytes with probability ``p``.

        Responses match as for :meth:`truncate_next`, which takes precedence while it has
        truncations pending; only matching responses draw from the generator. Seeding, replacing
        and ``p=0`` work as for :meth:`fail_probability`.

        Args:
            p: The probability, from 0 (never) to 1 (always).
            keep_bytes: How many body bytes to send before closing (>= 0).
            methods: The request methods that match, case-insensitive. Default GET only.
            seed: Seed of the generator. Default ``None``: seeded from the operating system.

        Raises:
            ValueError: ``p`` is not within [0, 1] or ``keep_bytes`` is negative.
        """
        _check_probability(p)
        _check_keep_bytes(keep_bytes)
        self._faults.truncate_randomly(p, keep_bytes, _methods(methods), seed)

    def reset_next(self, count: int, *, methods: Iterable[str] = ("GET",)) -> None:
        """Reset the connection of the next ``count`` matching requests instead of answering.

        The proxy reads the request, does not forward it, and closes the client connection with
        SO_LINGER 0, so the client gets a TCP RST and not a single byte of response: a
        connection error, not an HTTP answer. :attr:`delay_s` does not apply. Replaces any
        resets still pending; ``reset_next(0)`` cancels them. Pending resets take precedence
        over every other fault.

        Args:
            count: How many requests to reset (>= 0).
            methods: The request methods that match, case-insensitive. Default GET only.

        Raises:
            ValueError: ``count`` is negative.
        """
        _check_count(count)
        self._faults.reset_next(count, _methods(methods))

    def reset_probability(
        self, p: float, *, methods: Iterable[str] = ("GET",), seed: int | None = None
    ) -> None:
        """Reset the connection of each matching request with probability ``p``.

        Resets as :meth:`reset_next` does, which takes precedence (as does :meth:`fail_next`)
        while it has resets pending. Seeding, replacing and ``p=0`` work as for
        :meth:`fail_probability`.

        Args:
            p: The probability, from 0 (never) to 1 (always).
            methods: The request methods that match, case-insensitive. Default GET only.
            seed: Seed of the generator. Default ``None``: seeded from the operating system.

        Raises:
            ValueError: ``p`` is not within [0, 1].
        """
        _check_probability(p)
        self._faults.reset_randomly(p, _methods(methods), seed)

    def clear_faults(self) -> None:
        """Cancel every pending and probabilistic fault and set :attr:`delay_s` back to 0 and
        :attr:`bandwidth_bytes_per_s` to ``None``: the proxy forwards plainly again.

        Counters are kept (see :meth:`reset_counters`). Requests already being answered finish
        as they started.
        """
        self._faults.clear()
        self.delay_s = 0.0
        self.bandwidth_bytes_per_s = None

    def requests(self, method: str | None = None) -> int:
        """Return how many requests the proxy received since the last :meth:`reset_counters`.

        Args:
            method: Count only this method (case-insensitive; HEAD and GET are distinct).
                Default ``None``: every method.
        """
        return self._faults.requests(method)

    def injected(self, kind: FaultKind | None = None) -> int:
        """Return how many faults were injected since the last :meth:`reset_counters`.

        Args:
            kind: Count only this kind: ``"fail"`` (error answers), ``"truncate"`` (cut bodies)
                or ``"reset"`` (reset connections). Default ``None``: every kind.

        Raises:
            ValueError: ``kind`` is not one of those.
        """
        if kind is not None and kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS} or None, got {kind!r}")
        return self._faults.injected(kind)

    def reset_counters(self) -> None:
        """Set the request and injected-fault counters to zero. Pending faults are kept."""
        self._faults.reset_counters()

    def start(self) -> None:
        """Start listening and serving in a background thread. Do nothing if running.

        Raises:
            OSError: The port cannot be bound.
        """
        with self._lock:
            if self._server is not None:
                return
            server = _ProxyServer((LOOPBACK, self._port), self, self._faults, self._upstream)
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"HttpFaultProxy:{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop serving, close every client connection and join the threads. Do nothing if closed.

        Requests in flight are cut off; waits for pacing and delays are woken at once.
        """
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None or thread is None:
            return
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join()
        server.close_connections(timeout_s=_STOP_JOIN_TIMEOUT_S)


def _methods(methods: Iterable[str]) -> frozenset[str]:
    if isinstance(methods, str):
        raise TypeError("methods must be an iterable of method names, not a single string")
    return frozenset(method.upper() for method in methods)


def _check_count(count: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")


def _check_keep_bytes(keep_bytes: int) -> None:
    if keep_bytes < 0:
        raise ValueError(f"keep_bytes must be >= 0, got {keep_bytes}")


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability within [0, 1], got {p!r}")


def _failure(status: int, retry_after_s: float | None) -> Failure:
    """Validate an injected error answer's settings and return it."""
    if not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
    HTTPStatus(status)  # Rejects codes without a reason phrase, before any request needs one.
    if retry_after_s is not None and not 0.0 <= retry_after_s < math.inf:
        raise ValueError(
            f"retry_after_s must be a finite number >= 0 or None, got {retry_after_s!r}"
        )
    return Failure.of(status, retry_after_s)


class _ProxyServer(ThreadingHTTPServer):
    """The listening socket, plus the open client connections so :meth:`close` can end them."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        proxy: HttpFaultProxy,
        faults: FaultPlan,
        upstream: _Upstream,
    ) -> None:
        self.proxy = proxy
        self.faults = faults
        self.upstream = upstream
        self.closing = threading.Event()
        self._connections_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a badly configured
        # resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, self.server_address[1]

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections[connection] = threading.current_thread()
            if self.closing.is_set():
                _shut(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(connection, None)

    def close_connections(self, *, timeout_s: float) -> None:
        """Shut every client connection down and wait (bounded) for its handler thread."""
        with self._connections_lock:
            connections = dict(self._connections)
        for connection in connections:
            _shut(connection)
        deadline = time.monotonic() + timeout_s
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that goes away (or a connection cut by close()) is routine for a fault proxy;
        # anything else is a bug worth a log record, but never a traceback on stderr.
        if self.closing.is_set() or isinstance(sys.exc_info()[1], ConnectionError):
            _log.debug("HttpFaultProxy: connection from %s ended", client_address, exc_info=True)
        else:
            _log.exception("HttpFaultProxy: error while serving %s", client_address)


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one client connection's requests; one instance (and thread) per connection."""

    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_S
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK (40 ms on Linux), a latency no real store adds.
    disable_nagle_algorithm = True
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._close_upstream()
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: a proxy under load must not write a line per request to stderr."""

    def do_GET(self) -> None:
        """Forward, fail, truncate or reset one request, as the proxy's controls say."""
        self._serve()

    do_HEAD = do_GET
    do_PUT = do_GET
    do_POST = do_GET
    do_DELETE = do_GET

    def _serve(self) -> None:
        faults = self.server.faults
        method = self.command
        faults.received(method)
        body = self._read_body()
        if body is None:
            return
        decision = faults.before_forward(method)
        if isinstance(decision, Reset):
            self._reset_connection()
            return
        if decision is not None:
            self._respond_error(decision.status, retry_after=decision.retry_after)
            return
        try:
            response = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            _log.debug("HttpFaultProxy: upstream failed for %s %s: %r", method, self.path, exc)
            self._respond_error(HTTPStatus.BAD_GATEWAY)
            return
        keep_bytes = None
        if method != "HEAD":
            keep_bytes = faults.take_truncation(method, len(response.body))
        headers = _forwardable(response.headers)
        if method == "HEAD":
            # A HEAD answer's Content-Length describes the object, not the (empty) body.
            headers += [(n, v) for n, v in response.headers if n.lower() == "content-length"]
        else:
            headers.append(("Content-Length", str(len(response.body))))
        self._respond(response.status, response.reason, headers, response.body, keep_bytes)

    def _read_body(self) -> bytes | None:
        """Read the request body; return ``b""`` if there is none, ``None`` if it is unusable.

        An unusable body (malformed framing, or a client that hung up) leaves the connection in
        an unknown state, so it is answered with 400 if possible and closed.
        """
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length = self.headers.get("Content-Length")
            if length is None:
                return b""
            size = int(length)
            if size < 0:
                raise ValueError(f"negative Content-Length {size}")
            body = self.rfile.read(size)
            if len(body) < size:
                raise ValueError(f"request body ended after {len(body)} of {size} bytes")
        except ValueError as exc:
            _log.debug("HttpFaultProxy: unusable request body: %s", exc)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._respond_error(HTTPStatus.BAD_REQUEST)
            return None
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline()
            if not line:
                raise ValueError("request body ended inside chunked framing")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ValueError("request body ended inside a chunk")
            parts.append(chunk)
            self.rfile.readline()  # The CRLF after each chunk.
        while self.rfile.readline().strip():  # Trailer fields, up to the blank line.
            pass
        return b"".join(parts)

    def _forward(self, body: bytes) -> _UpstreamResponse:
        has_body = bool(body) or any(
            name in self.headers for name in ("Content-Length", "Transfer-Encoding")
        )
        headers = _forwardable(self.headers.items())
        reused = self._upstream is not None
        try:
            return self._exchange(headers, body if has_body else None)
        except ConnectionError:
            if not reused:
                raise
            # The upstream may have closed an idle kept-alive connection: retry once on a fresh
            # one, as HTTP clients do.
            return self._exchange(headers, body if has_body else None)

    def _exchange(self, headers: list[tuple[str, str]], body: bytes | None) -> _UpstreamResponse:
        """Send one request upstream and read the whole response; close the connection on error."""
        upstream = self.server.upstream
        if self._upstream is None:
            self._upstream = upstream.connect()
        connection = self._upstream
        try:
            connection.putrequest(
                self.command, upstream.target(self.path), skip_accept_encoding=True
            )
            for name, value in headers:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            self._close_upstream()
            raise
        if response.will_close:
            self._close_upstream()
        return _UpstreamResponse(response.status, response.reason, response.getheaders(), data)

    def _close_upstream(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.close()

    def _respond_error(self, status: int, *, retry_after: str | None = None) -> None:
        body = s3_error_body(status)
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        self._respond(status, HTTPStatus(status).phrase, headers, body, None)

    def _reset_connection(self) -> None:
        """Close the client connection with an RST, sending nothing; end this handler's loop."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        # The socket is really closed only once its reader (which holds a reference) is closed.
        # The server's own shutdown_request() would send a FIN first; closing here avoids that,
        # and its later shutdown and close of the already closed socket are harmless.
        self.rfile.close()
        self.connection.close()

    def _respond(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        keep_bytes: int | None,
    ) -> None:
        proxy = self.server.proxy
        delay_s = proxy.delay_s
        if delay_s > 0:
            self.server.closing.wait(delay_s)
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if keep_bytes is not None:
            body = body[:keep_bytes]
            self.close_connection = True
        self._write_paced(body, proxy.bandwidth_bytes_per_s)

    def _write_paced(self, body: bytes, bandwidth_bytes_per_s: float | None) -> None:
        if bandwidth_bytes_per_s is None:
            self.wfile.write(body)
            return
        # Like a link of that bandwidth, release each chunk only once all of its bytes could
        # have been transmitted, so the last byte arrives no earlier than len(body) / bandwidth.
        start = time.monotonic()
        for offset in range(0, len(body), _CHUNK_BYTES):
            chunk = body[offset : offset + _CHUNK_BYTES]
            wait_s = start + (offset + len(chunk)) / bandwidth_bytes_per_s - time.monotonic()
            if wait_s > 0 and self.server.closing.wait(wait_s):
                return
            self.wfile.write(chunk)
