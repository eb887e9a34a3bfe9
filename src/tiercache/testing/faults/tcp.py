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

All sockets are served by one thread with a selector (:mod:`._tcp_loop`), so the controls never
race with I/O.

Example::

    with RedisServer() as server, TcpFaultProxy(server.host, server.port) as proxy:
        client = redis.Redis.from_url(proxy.url_for(), socket_timeout=0.2)
        proxy.blackhole = True  # client.ping() now times out
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tiercache.testing.faults._proxy import (
    STOP_JOIN_TIMEOUT_S,
    ListeningProxy,
    bandwidth_control,
    seconds_control,
)
from tiercache.testing.faults._tcp_controls import Controls
from tiercache.testing.faults._tcp_loop import Loop
from tiercache.testing.servers.ports import LOOPBACK

_log = logging.getLogger(__name__)

_RESET_WAIT_S = 5.0


class TcpFaultProxy(ListeningProxy):
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
        super().__init__(port)
        self._upstream = (upstream_host, upstream_port)
        self._controls = Controls()
        self._loop: Loop | None = None
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
        return self._controls.settings().latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self._change(latency_s=seconds_control("latency_s", value))

    @property
    def jitter_s(self) -> float:
        """Up to this many more seconds, uniformly random, added to each chunk's latency.

        Default 0. Chunks never overtake each other. Raises ``ValueError`` when set below 0.
        """
        return self._controls.settings().jitter_s

    @jitter_s.setter
    def jitter_s(self, value: float) -> None:
        self._change(jitter_s=seconds_control("jitter_s", value))

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        """The pace of each direction of each connection; ``None`` (the default) is unlimited.

        Bytes are released in 16 KiB slices, each once all of its bytes could have crossed a
        link of this bandwidth. Raises ``ValueError`` when set to a value that is not above 0.
        """
        return self._controls.settings().bandwidth_bytes_per_s

    @bandwidth_bytes_per_s.setter
    def bandwidth_bytes_per_s(self, value: float | None) -> None:
        self._change(bandwidth_bytes_per_s=bandwidth_control(value))

    @property
    def blackhole(self) -> bool:
        """Whether the proxy forwards nothing in either direction. Default ``False``.

        Connections are still accepted and read; bytes read, and bytes queued when it is set,
        are dropped. See the module documentation for what happens after it is cleared.
        """
        return self._controls.settings().blackhole

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        self._change(blackhole=bool(value))

    @property
    def reset_new(self) -> bool:
        """Whether each new connection is aborted with RST as soon as it is accepted.

        Default ``False``. Clients see their connect succeed, then the connection reset.
        """
        return self._controls.settings().reset_new

    @reset_new.setter
    def reset_new(self, value: bool) -> None:
        self._controls.change(reset_new=bool(value))  # Read at the next accept: no wake-up.

    @property
    def limit_data(self) -> int | None:
        """Close a connection once it carried this many bytes from the upstream to the client.

        Default ``None``: no limit. Counts from the start of each connection, so setting it
        can cut existing connections at their next reply. The client receives exactly this
        many bytes, then an orderly close (FIN), so a reply in flight arrives truncated. Raises
        ``ValueError`` when set below 0.
        """
        return self._controls.settings().limit_data

    @limit_data.setter
    def limit_data(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"limit_data must be >= 0 or None, got {value!r}")
        self._change(limit_data=value)

    def connections(self) -> int:
        """Return how many connections were accepted since the last :meth:`reset_counters`."""
        return self._controls.connections()

    def open_connections(self) -> int:
        """Return how many client connections are open right now."""
        return self._controls.open_connections()

    def bytes_forwarded(self) -> int:
        """Return how many bytes were forwarded, both directions, since :meth:`reset_counters`."""
        return self._controls.bytes_forwarded()

    def reset_counters(self) -> None:
        """Set :meth:`connections` and :meth:`bytes_forwarded` to zero."""
        self._controls.reset_counters()

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
            loop = Loop(self._controls, self._upstream, (LOOPBACK, self._port))
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
        thread.join(STOP_JOIN_TIMEOUT_S)
        if thread.is_alive():
            _log.warning(
                "TcpFaultProxy: the proxy thread did not end within %s s", STOP_JOIN_TIMEOUT_S
            )

    def _change(self, **changes: Any) -> None:
        """Set controls (validated) and wake the loop, so that they apply from its next round."""
        self._controls.change(**changes)
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.wake()
