"""The serving side of :class:`~tiercache.testing.HttpFaultProxy`: one thread per client connection.

:class:`ProxyServer` accepts connections and keeps track of them, so that closing the proxy can
cut them off; its handler reads each request whole, asks the proxy's :class:`FaultPlan` what to
do with it, and then resets the connection, answers with an injected S3 error, or forwards the
request upstream (on a kept-alive connection of its own) and relays the answer, cut short when
the plan says so, after the proxy's first-byte delay and at its bandwidth.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlsplit

from tiercache.testing.faults._plan import FaultPlan, Reset
from tiercache.testing.faults._proxy import rst_on_close
from tiercache.testing.faults.s3_errors import s3_error_body
from tiercache.testing.servers.ports import LOOPBACK

_log = logging.getLogger(__name__)

_CHUNK_BYTES = 64 * 1024
_IDLE_TIMEOUT_S = 60.0
# How often a first-byte delay looks whether the client is still there.
_POLL_S = 0.05


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


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where and how requests are forwarded."""

    host: str
    port: int
    prefix: str
    timeout_s: float

    @classmethod
    def parse(cls, url: str, timeout_s: float) -> Upstream:
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


class Pacing(Protocol):
    """The proxy's controls that shape every answer, read afresh for each one."""

    @property
    def delay_s(self) -> float: ...

    @property
    def bandwidth_bytes_per_s(self) -> float | None: ...


class ProxyServer(ThreadingHTTPServer):
    """The listening socket, plus the open client connections so :meth:`close` can end them."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        proxy: Pacing,
        faults: FaultPlan,
        upstream: Upstream,
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
    server: ProxyServer

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
        rst_on_close(self.connection)
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
        delay_s = proxy.delay_s + self.server.faults.take_delay(self.command)
        if delay_s > 0 and not self._wait_for_client(delay_s):
            self.server.faults.abandon()  # the client closed its connection: nobody to answer
            self.close_connection = True
            return
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

    def _wait_for_client(self, delay_s: float) -> bool:
        """Wait ``delay_s`` (less if the proxy closes); False if the client hung up meanwhile."""
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0 and not self.server.closing.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(left, _POLL_S))
            if not readable:
                continue
            try:
                pending = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                return False
            if not pending:
                return False
            # A pipelined request, not a hang-up: wait out the rest.
            self.server.closing.wait(max(0.0, deadline - time.monotonic()))
            break
        return True

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
