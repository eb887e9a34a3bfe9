"""The one I/O thread of :class:`~tiercache.testing.TcpFaultProxy`: a selector over every socket.

Each round of :meth:`Loop.run` waits for a socket event, a wake-up (a control changed, a call
queued) or the next chunk falling due; takes one copy of the controls; accepts connections,
reads what the sockets have, queues it with its due time, and sends what is due. As one thread
does all the I/O, the controls never race with it: a change takes effect at the next round.
A call from another thread (:meth:`Loop.call`, e.g. a reset of every connection) runs between
two rounds.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from tiercache.testing.faults._proxy import rst_on_close
from tiercache.testing.faults._tcp_controls import Controls
from tiercache.testing.faults._tcp_flow import Connection, Flow

_log = logging.getLogger(__name__)

_RECV_BYTES = 64 * 1024


class Loop:
    """The proxy's one I/O thread: a selector over the listener and every connection."""

    def __init__(
        self, controls: Controls, upstream: tuple[str, int], address: tuple[str, int]
    ) -> None:
        self._controls = controls
        host, port = upstream
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
        self._connections: set[Connection] = set()
        self._calls: collections.deque[tuple[Callable[[], None], threading.Event]] = (
            collections.deque()
        )
        self._calls_lock = threading.Lock()
        self._stopping = threading.Event()
        self._finished = False
        self._settings = controls.settings()

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
                self._settings = self._controls.settings()
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
            self._controls.set_open(0)
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
            if self._controls.accepted():
                _close(client, rst=True)
                continue
            upstream = socket.socket(
                self._upstream_family, self._upstream_kind, self._upstream_proto
            )
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(client, upstream)
            self._connections.add(connection)
            code = upstream.connect_ex(self._upstream_address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                _log.debug("TcpFaultProxy: upstream connect failed: %s", os.strerror(code))
                self._discard(connection, rst=True)
                continue
            self._update_interest(connection)

    def _on_event(self, connection: Connection, side: str, mask: int) -> None:
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

    def _read(self, connection: Connection, side: str) -> None:
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
            due += settings.latency_s + self._controls.jitter(settings.jitter_s)
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
        self._controls.set_open(len(self._connections))
        return None if earliest is None else max(0.0, earliest - now)

    def _pump(self, connection: Connection, flow: Flow, now: float) -> bool:
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
            self._controls.count(sent)
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

    def _truncate(self, connection: Connection) -> None:
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

    def _update_interest(self, connection: Connection) -> None:
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
        self, connection: Connection, sock: socket.socket, events: int, side: str
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

    def _unregister(self, connection: Connection, sock: socket.socket) -> None:
        if connection.registered.pop(sock, 0):
            self._selector.unregister(sock)

    def _discard(self, connection: Connection, *, rst: bool) -> None:
        """Close both sockets of a connection, with RST if ``rst``, and forget it."""
        for sock in (connection.client, connection.upstream):
            self._unregister(connection, sock)
            _close(sock, rst=rst)
        self._connections.discard(connection)


def _close(sock: socket.socket, *, rst: bool) -> None:
    if rst:
        rst_on_close(sock)
    sock.close()
