"""One connection through :class:`~tiercache.testing.TcpFaultProxy`: its two directions, each a
queue of chunks that fall due after the proxy's latency and leave at its bandwidth.

Plain state, changed by the proxy's loop thread only (:mod:`._tcp_loop`), which owns the sockets
and the decisions; a :class:`Flow` only keeps the books of one direction: what is queued, when the
next paced slice may leave, and whether bytes were lost to the blackhole.
"""

from __future__ import annotations

import collections
import socket

_PACED_SLICE_BYTES = 16 * 1024  # With a bandwidth limit, bytes are released in slices this size.
_MAX_BUFFERED_BYTES = 8 * 1024 * 1024  # Per direction; beyond it the source is not read.


class Flow:
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


class Connection:
    """The two sockets of one proxied connection and its two directions."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connecting = True
        self.draining = False  # Truncated by limit_data: read and discard until the client goes.
        self.up = Flow(client, upstream, downstream=False)
        self.down = Flow(upstream, client, downstream=True)
        self.registered: dict[socket.socket, int] = {}
