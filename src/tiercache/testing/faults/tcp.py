"""A TCP fault proxy in front of a Redis server (or any TCP service), for chaos tests.

:class:`TcpFaultProxy` listens on ``127.0.0.1`` and forwards every connection to an upstream
``(host, port)``, byte for byte. Its controls can be switched while connections are open:

- :attr:`~TcpFaultProxy.latency_s` (plus up to :attr:`~TcpFaultProxy.jitter_s`) delays every
  chunk on its way from the upstream to the client, like a slow link: chunks keep their order
  and a large reply is delayed once, not once per chunk;
- :attr:`~TcpFaultProxy.bandwidth_bytes_per_s` paces both directions;
- :attr:`~TcpFaultProxy.blackhole` accepts and reads but forwards nothing, on new and existing
  connections, like a network that drops every packet;
- :meth:`~TcpFaultProxy.reset` aborts every open connection with a TCP RST, and
  :attr:`~TcpFaultProxy.reset_new` aborts each new connection as soon as it is accepted;
- :attr:`~TcpFaultProxy.limit_data` closes a connection after that many bytes from the upstream,
  so the reply in flight arrives truncated.

A connection that lost bytes to the blackhole no longer forwards anything in that direction,
even after the blackhole is cleared: the byte stream has a hole in it, and forwarding the rest
would hand the client a corrupt protocol stream instead of the silence a lost network gives.
Clients recover on a new connection, which is what they do after a timeout anyway.

All sockets are served by one thread with a selector, so the controls never race with I/O.

Example::

    with RedisServer() as server, TcpFaultProxy(server.host, server.port) as proxy:
        client = redis.Redis.from_url(proxy.url_for(), socket_timeout=0.2)
        proxy.blackhole = True  # client.ping() now times out
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable

from tiercache.testing.servers._service import Service
from tiercache.testing.servers.ports import LOOPBACK

_log = logging.getLogger(__name__)

_RECV_BYTES = 64 * 1024
_PACED_SLICE_BYTES = 16 * 1024  # With a bandwidth limit, bytes are released in slices this size.
_MAX_BUFFERED_BYTES = 8 * 1024 * 1024  # Per direction; beyond it the source is not read.
_STOP_JOIN_TIMEOUT_S = 5.0
_RESET_WAIT_S = 5.0
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN.


class _Flow:
    """One direction of a connection: bytes read from ``src``, queued, written to ``dst``."""

    def __init__(self, src: socket.socket, dst: socket.socket, *, downstream: bool) -> None:
        self.src = src
        self.dst = dst
        self.downstream = downstream  # upstream -> client: latency and limit_data apply.
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()  # (due, data)
        self.buffered = 0
        self.last_due = 0.0
        self.link_free = 0.0  # When a paced link finishes sending what it released so far.
        self.release_at: float | None = None  # When the paced next slice may be sent.
        self.pending_slice = 0  # The size of that slice.
        self.allowance = 0  # Bytes released by the pacing and not sent yet.
        self.src_eof = False
        self.dst_shut = False
        self.blocked = False  # The last send hit a full buffer: wait for the socket to drain.
        self.poisoned = False  # Bytes were dropped: forward nothing more.
        self.forwarded = 0

    def drop(self) -> None:
        if self.queue:
            self.poisoned = True
        self.queue.clear()
        self.buffered = 0
        self.release_at = None
        self.allowance = 0

    def wants_read(self) -> bool:
        return not self.src_eof and self.buffered < _MAX_BUFFERED_BYTES

    def paced(self, size: int, due: float, now: float, rate: float | None) -> int:
        """Return how many of the next ``size`` bytes (due at ``due``) may be sent now."""
        if rate is None:
            self.release_at, self.allowance = None, 0
            return size
        if self.allowance == 0:
            if self.release_at is None:
                # Like a link of that bandwidth: a slice is released once all of its bytes
                # could have been transmitted.
                self.pending_slice = min(size, _PACED_SLICE_BYTES)
                self.release_at = max(due, self.link_free) + self.pending_slice / rate
                self.link_free = self.release_at
            if self.release_at > now:
                return 0
            self.allowance, self.release_at = self.pending_slice, None
        return min(size, self.allowance)

    def sent(self, sent: int, attempted: int) -> None:
        """Account for ``sent`` of the ``attempted`` head bytes having been sent."""
        due, data = self.queue[0]
        self.forwarded += sent
        self.buffered -= sent
        self.allowance = max(0, self.allowance - sent)
        if sent == len(data):
            self.queue.popleft()
        else:
            self.queue[0] = (due, data[sent:])
            self.blocked = sent < attempted


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connecting = True
        self.draining = False  # Truncated by limit_data: read and discard until the client goes.
        self.up = _Flow(client, upstream, downstream=False)
        self.down = _Flow(upstream, client, downstream=True)
        self.registered: dict[socket.socket, int] = {}


class TcpFaultProxy(Service):
    """A TCP proxy on ``127.0.0.1`` that injects latency, silence, resets and truncation.

    Every control is thread-safe and may be changed while connections are open. Use it as a
    context manager, or call :meth:`start` and :meth:`close` (both idempotent). A closed proxy
    can be started again; it listens on the same port, so clients keep their URL.

    Args:
        upstream_host: The host connections are forwarded to.
        upstream_port: The port connections are forwarded to.
        port: The port to listen on. Default 0: a free port chosen by the operating system at the
            first :meth:`start`.
        latency_s: Initial :attr:`latency_s`. Default 0.
        jitter_s: Initial :attr:`jitter_s`. Default 0.
        bandwidth_bytes_per_s: Initial :attr:`bandwidth_bytes_per_s`. Default ``None``.

    Raises:
        ValueError: A control value is out of range.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        bandwidth_bytes_per_s: float | None = None,
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._port = port
        self._lock = threading.Lock()
        self._latency_s = 0.0
        self._jitter_s = 0.0
        self._bandwidth_bytes_per_s: float | None = None
        self._blackhole = False
        self._reset_new = False
        self._limit_data: int | None = None
        self._connections_total = 0
        self._bytes_forwarded = 0
        self._open = 0
        self._random = random.Random()
        self._loop: _Loop | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s

    def __repr__(self) -> str:
        host, port = self._upstream
        return f"TcpFaultProxy(upstream={host}:{port}, running={self._loop is not None})"

    @property
    def host(self) -> str:
        """The address the proxy listens on, always ``127.0.0.1``."""
        return LOOPBACK

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
    def upstream(self) -> tuple[str, int]:
        """The ``(host, port)`` connections are forwarded to."""
        return self._upstream

    def url_for(self, scheme: str = "redis") -> str:
        """Return ``SCHEME://127.0.0.1:PORT``, the proxy's address as a client URL.

        Args:
            scheme: The URL scheme. Default ``"redis"``.

        Raises:
            RuntimeError: The proxy was created with port 0 and has never been started.
        """
        return f"{scheme}://{LOOPBACK}:{self.port}"

    @property
    def latency_s(self) -> float:
        """Seconds added to every chunk from the upstream to the client. Default 0.

        Applies to bytes read after it is set. Raises ``ValueError`` when set below 0.
        """
        with self._lock:
            return self._latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"latency_s must be >= 0, got {value!r}")
        with self._lock:
            self._latency_s = float(value)
        self._wake()

    @property
    def jitter_s(self) -> float:
        """Up to this many more seconds, uniformly random, added to each chunk's latency.

        Default 0. Chunks never overtake each other. Raises ``ValueError`` when set below 0.
        """
        with self._lock:
            return self._jitter_s

    @jitter_s.setter
    def jitter_s(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"jitter_s must be >= 0, got {value!r}")
        with self._lock:
            self._jitter_s = float(value)
        self._wake()

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        """The pace of each direction of each connection; ``None`` (the default) is unlimited.

        Bytes are released in 16 KiB slices, each once all of its bytes could have crossed a
        link of this bandwidth. Raises ``ValueError`` when set to a value that is not above 0.
        """
        with self._lock:
            return self._bandwidth_bytes_per_s

    @bandwidth_bytes_per_s.setter
    def bandwidth_bytes_per_s(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"bandwidth_bytes_per_s must be > 0 or None, got {value!r}")
        with self._lock:
            self._bandwidth_bytes_per_s = None if value is None else float(value)
        self._wake()

    @property
    def blackhole(self) -> bool:
        """Whether the proxy forwards nothing in either direction. Default ``False``.

        Connections are still accepted and read; bytes read, and bytes queued when it is set,
        are dropped. See the module documentation for what happens after it is cleared.
        """
        with self._lock:
            return self._blackhole

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        with self._lock:
            self._blackhole = bool(value)
        self._wake()

    @property
    def reset_new(self) -> bool:
        """Whether each new connection is aborted with RST as soon as it is accepted.

        Default ``False``. Clients see their connect succeed, then the connection reset.
        """
        with self._lock:
            return self._reset_new

    @reset_new.setter
    def reset_new(self, value: bool) -> None:
        with self._lock:
            self._reset_new = bool(value)

    @property
    def limit_data(self) -> int | None:
        """Close a connection once it carried this many bytes from the upstream to the client.

        Default ``None``: no limit. Counts from the start of each connection, so setting it
        can cut existing connections at their next reply. The client receives exactly this
        many bytes, then an orderly close (FIN), so a reply in flight arrives truncated. Raises
        ``ValueError`` when set below 0.
        """
        with self._lock:
            return self._limit_data

    @limit_data.setter
    def limit_data(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"limit_data must be >= 0 or None, got {value!r}")
        with self._lock:
            self._limit_data = value
        self._wake()

    def connections(self) -> int:
        """Return how many connections were accepted since the last :meth:`reset_counters`."""
        with self._lock:
            return self._connections_total

    def open_connections(self) -> int:
        """Return how many client connections are open right now."""
        with self._lock:
            return self._open

    def bytes_forwarded(self) -> int:
        """Return how many bytes were forwarded, both directions, since :meth:`reset_counters`."""
        with self._lock:
            return self._bytes_forwarded

    def reset_counters(self) -> None:
        """Set :meth:`connections` and :meth:`bytes_forwarded` to zero."""
        with self._lock:
            self._connections_total = 0
            self._bytes_forwarded = 0

    def reset(self) -> None:
        """Abort every open connection with a TCP RST now; return when that is done.

        Clients see ``ECONNRESET`` (or EOF) on their next read or write. New connections are
        served as usual. Do nothing if the proxy is not running. Note that connection pools
        (redis-py's among them) test an idle connection when they hand it out and quietly replace
        a broken one, so only connections in use, or held by a single-connection client, fail.
        """
        loop = self._loop
        if loop is not None:
            loop.call(loop.reset_all, timeout_s=_RESET_WAIT_S)

    def start(self) -> None:
        """Start listening and forwarding in a background thread. Do nothing if running.

        Raises:
            OSError: The port cannot be bound.
        """
        with self._lifecycle:
            if self._loop is not None:
                return
            loop = _Loop(self, (LOOPBACK, self._port))
            self._port = loop.port
            thread = threading.Thread(
                target=loop.run, name=f"TcpFaultProxy:{self._port}", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread

    def close(self) -> None:
        """Stop listening, close every connection and join the thread. Do nothing if closed."""
        with self._lifecycle:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None or thread is None:
            return
        loop.request_stop()
        thread.join(_STOP_JOIN_TIMEOUT_S)
        if thread.is_alive():
            _log.warning(
                "TcpFaultProxy: the proxy thread did not end within %s s", _STOP_JOIN_TIMEOUT_S
            )

    # Called by the loop thread.

    def _snapshot(self) -> _Settings:
        with self._lock:
            return _Settings(
                latency_s=self._latency_s,
                jitter_s=self._jitter_s,
                bandwidth_bytes_per_s=self._bandwidth_bytes_per_s,
                blackhole=self._blackhole,
                limit_data=self._limit_data,
            )

    def _jitter(self, jitter_s: float) -> float:
        return self._random.uniform(0.0, jitter_s) if jitter_s > 0 else 0.0

    def _accepted(self) -> bool:
        """Count a new connection; return whether it is to be reset at once."""
        with self._lock:
            self._connections_total += 1
            return self._reset_new

    def _count(self, sent: int) -> None:
        with self._lock:
            self._bytes_forwarded += sent

    def _set_open(self, count: int) -> None:
        with self._lock:
            self._open = count

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.wake()


class _Settings:
    __slots__ = ("bandwidth_bytes_per_s", "blackhole", "jitter_s", "latency_s", "limit_data")

    def __init__(
        self,
        *,
        latency_s: float,
        jitter_s: float,
        bandwidth_bytes_per_s: float | None,
        blackhole: bool,
        limit_data: int | None,
    ) -> None:
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.blackhole = blackhole
        self.limit_data = limit_data


class _Loop:
    """The proxy's one I/O thread: a selector over the listener and every connection."""

    def __init__(self, proxy: TcpFaultProxy, address: tuple[str, int]) -> None:
        self._proxy = proxy
        host, port = proxy.upstream
        # Resolved once, here, so a failure shows in start() and no lookup ever blocks the loop.
        address_info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        family, kind, proto, _, sockaddr = address_info
        self._upstream_family, self._upstream_kind, self._upstream_proto = family, kind, proto
        self._upstream_address = sockaddr
        self._selector = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(128)
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.setblocking(False)
            self._selector.register(self._listener, selectors.EVENT_READ, None)
            self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        except BaseException:
            self._close_own_sockets()
            raise
        self.port: int = self._listener.getsockname()[1]
        self._connections: set[_Connection] = set()
        self._calls: collections.deque[tuple[Callable[[], None], threading.Event]] = (
            collections.deque()
        )
        self._calls_lock = threading.Lock()
        self._stopping = threading.Event()
        self._finished = False
        self._settings = proxy._snapshot()

    # Called from other threads.

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # Full (a wake-up is pending anyway) or closed.
            self._wake_w.send(b"\0")

    def request_stop(self) -> None:
        self._stopping.set()
        self.wake()

    def call(self, function: Callable[[], None], *, timeout_s: float) -> None:
        """Run ``function`` on the loop thread and wait (bounded) until it has run."""
        done = threading.Event()
        with self._calls_lock:
            if self._finished:
                return
            self._calls.append((function, done))
        self.wake()
        done.wait(timeout_s)

    # The loop thread.

    def run(self) -> None:
        try:
            timeout: float | None = None
            while not self._stopping.is_set():
                events = self._selector.select(timeout)
                self._settings = self._proxy._snapshot()
                for key, mask in events:
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        connection, side = key.data
                        self._on_event(connection, side, mask)
                self._run_calls()
                timeout = self._pump_all()
        except Exception:
            _log.exception("TcpFaultProxy: the proxy loop failed; closing every connection")
        finally:
            for connection in list(self._connections):
                self._discard(connection, rst=False)
            self._proxy._set_open(0)
            with self._calls_lock:
                self._finished = True
                calls, self._calls = list(self._calls), collections.deque()
            for _, done in calls:
                done.set()
            self._close_own_sockets()

    def reset_all(self) -> None:
        for connection in list(self._connections):
            self._discard(connection, rst=True)

    def _close_own_sockets(self) -> None:
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = list(self._calls), collections.deque()
        for function, done in calls:
            try:
                function()
            finally:
                done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # E.g. EMFILE: leave the rest in the backlog for now.
                _log.debug("TcpFaultProxy: accept failed: %s", exc)
                return
            if self._proxy._accepted():
                _close(client, rst=True)
                continue
            upstream = socket.socket(
                self._upstream_family, self._upstream_kind, self._upstream_proto
            )
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(client, upstream)
            self._connections.add(connection)
            code = upstream.connect_ex(self._upstream_address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                _log.debug("TcpFaultProxy: upstream connect failed: %s", os.strerror(code))
                self._discard(connection, rst=True)
                continue
            self._update_interest(connection)

    def _on_event(self, connection: _Connection, side: str, mask: int) -> None:
        if connection not in self._connections:
            return  # Closed earlier in this round.
        if side == "upstream" and connection.connecting:
            code = connection.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                # The upstream refused or is unreachable: the client sees its connection reset.
                _log.debug("TcpFaultProxy: upstream connect failed: %s", os.strerror(code))
                self._discard(connection, rst=True)
            else:
                connection.connecting = False
            return
        if mask & selectors.EVENT_WRITE:
            (connection.down if side == "client" else connection.up).blocked = False
        if mask & selectors.EVENT_READ:
            self._read(connection, side)

    def _read(self, connection: _Connection, side: str) -> None:
        flow = connection.up if side == "client" else connection.down
        try:
            data = flow.src.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._discard(connection, rst=True)  # A reset travels on as a reset.
            return
        if connection.draining:
            if not data:
                self._discard(connection, rst=False)
            return
        if not data:
            flow.src_eof = True
            if side == "client" and (connection.up.poisoned or connection.down.poisoned):
                # The client left a connection that can carry nothing anymore: end it.
                self._discard(connection, rst=False)
            return
        settings = self._settings
        if settings.blackhole or flow.poisoned:
            flow.poisoned = True
            return
        due = time.monotonic()
        if flow.downstream:
            due += settings.latency_s + self._proxy._jitter(settings.jitter_s)
        due = max(due, flow.last_due)  # Jitter never reorders chunks.
        flow.last_due = due
        flow.queue.append((due, data))
        flow.buffered += len(data)

    def _pump_all(self) -> float | None:
        """Send what is due everywhere; return the seconds until something else falls due."""
        now = time.monotonic()
        earliest: float | None = None
        for connection in list(self._connections):
            if not connection.draining:
                for flow in (connection.up, connection.down):
                    if flow is connection.up and connection.connecting:
                        continue
                    if not self._pump(connection, flow, now):
                        break
                    if flow.queue and not flow.blocked:
                        due = flow.release_at if flow.release_at is not None else flow.queue[0][0]
                        earliest = due if earliest is None else min(earliest, due)
            if connection in self._connections:
                self._update_interest(connection)
        self._proxy._set_open(len(self._connections))
        return None if earliest is None else max(0.0, earliest - now)

    def _pump(self, connection: _Connection, flow: _Flow, now: float) -> bool:
        """Send ``flow``'s due bytes; return ``False`` if that closed the connection."""
        settings = self._settings
        if settings.blackhole or flow.poisoned:
            flow.drop()
            return True
        limit = settings.limit_data if flow.downstream else None
        rate = settings.bandwidth_bytes_per_s
        while flow.queue and not flow.blocked:
            due, data = flow.queue[0]
            if due > now:
                break
            if limit is not None and flow.forwarded >= limit:
                self._truncate(connection)
                return False
            size = len(data) if limit is None else min(len(data), limit - flow.forwarded)
            size = flow.paced(size, due, now, rate)
            if size == 0:
                break
            try:
                sent = flow.dst.send(data[:size])
            except (BlockingIOError, InterruptedError):
                flow.blocked = True
                break
            except OSError:
                self._discard(connection, rst=True)
                return False
            flow.sent(sent, size)
            self._proxy._count(sent)
            if limit is not None and flow.forwarded >= limit:
                self._truncate(connection)
                return False
        if flow.src_eof and not flow.queue and not flow.dst_shut:
            # Pass the end of the stream on, after everything before it.
            flow.dst_shut = True
            with contextlib.suppress(OSError):
                flow.dst.shutdown(socket.SHUT_WR)
            if connection.up.dst_shut and connection.down.dst_shut:
                self._discard(connection, rst=False)
                return False
        return True

    def _truncate(self, connection: _Connection) -> None:
        """End the connection after what the client got so far (``limit_data`` was reached)."""
        connection.draining = True
        with contextlib.suppress(OSError):
            connection.client.shutdown(socket.SHUT_WR)  # FIN right after the bytes sent.
        self._unregister(connection, connection.upstream)
        connection.upstream.close()
        for flow in (connection.up, connection.down):
            flow.queue.clear()
            flow.buffered = 0
        # The client socket stays open, read and discarded, until the client closes it: closing
        # it with unread bytes would send RST, which can destroy the truncated reply in flight.
        self._update_interest(connection)

    def _update_interest(self, connection: _Connection) -> None:
        read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
        if connection.draining:
            self._register(connection, connection.client, read, "client")
            return
        up, down = connection.up, connection.down
        client_events = (read if up.wants_read() else 0) | (write if down.blocked else 0)
        if connection.connecting:
            upstream_events = write
        else:
            upstream_events = (read if down.wants_read() else 0) | (write if up.blocked else 0)
        self._register(connection, connection.client, client_events, "client")
        self._register(connection, connection.upstream, upstream_events, "upstream")

    def _register(
        self, connection: _Connection, sock: socket.socket, events: int, side: str
    ) -> None:
        old = connection.registered.get(sock, 0)
        if events == old:
            return
        if events == 0:
            self._unregister(connection, sock)
            return
        if old == 0:
            self._selector.register(sock, events, (connection, side))
        else:
            self._selector.modify(sock, events, (connection, side))
        connection.registered[sock] = events

    def _unregister(self, connection: _Connection, sock: socket.socket) -> None:
        if connection.registered.pop(sock, 0):
            self._selector.unregister(sock)

    def _discard(self, connection: _Connection, *, rst: bool) -> None:
        """Close both sockets of a connection, with RST if ``rst``, and forget it."""
        for sock in (connection.client, connection.upstream):
            self._unregister(connection, sock)
            _close(sock, rst=rst)
        self._connections.discard(connection)


def _close(sock: socket.socket, *, rst: bool) -> None:
    if rst and sock.fileno() != -1:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()
