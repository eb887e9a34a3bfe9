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
  20 ms to first byte and 100 MB/s per stream;
- delay the first byte of a random share of responses more (a long latency tail,
  :meth:`HttpFaultProxy.delay_probability`); a client that hangs up during a delay is counted
  (:meth:`HttpFaultProxy.abandoned`).

:meth:`HttpFaultProxy.clear_faults` cancels all of that at once. Count-mode faults take precedence
over probabilistic ones, and probabilistic ones are seeded for reproducible runs (see
:mod:`tiercache.testing.faults._plan` for the exact order of decisions). The proxy counts requests
by method and the faults it injected. Requests and responses are buffered whole, so it is meant
for test-sized objects. Only plain ``http://`` upstreams are supported. This module holds the
controls; the serving side is :mod:`._http_server`, the error documents :mod:`.s3_errors`.

Example::

    with S3Server() as server, HttpFaultProxy(server.endpoint_url) as proxy:
        fs = s3fs.S3FileSystem(**server.storage_options(proxy.url))
        proxy.fail_next(2)  # the next two GETs get 503 SlowDown
        proxy.reset_probability(0.1, seed=42)  # then one GET in ten, reproducibly, is reset
        ...
        proxy.clear_faults()  # plain forwarding again
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from http import HTTPStatus

from tiercache.testing.faults._http_server import ProxyServer, Upstream
from tiercache.testing.faults._plan import FAULT_KINDS, Failure, FaultKind, FaultPlan
from tiercache.testing.faults._proxy import (
    STOP_JOIN_TIMEOUT_S,
    ListeningProxy,
    bandwidth_control,
    seconds_control,
)
from tiercache.testing.faults.s3_errors import s3_error_body
from tiercache.testing.servers.ports import LOOPBACK


class HttpFaultProxy(ListeningProxy):
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
        super().__init__(port)
        self._upstream = Upstream.parse(upstream_url, upstream_timeout_s)
        self._upstream_url = upstream_url
        self._faults = FaultPlan()
        self._lock = threading.Lock()
        self._delay_s = 0.0
        self._bandwidth_bytes_per_s: float | None = None
        self.delay_s = delay_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self._server: ProxyServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        running = self._server is not None
        return f"HttpFaultProxy(upstream_url={self._upstream_url!r}, running={running})"

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
        delay_s = seconds_control("delay_s", value)
        with self._lock:
            self._delay_s = delay_s

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
        bandwidth = bandwidth_control(value)
        with self._lock:
            self._bandwidth_bytes_per_s = bandwidth

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

    def delay_probability(
        self,
        p: float,
        delay_s: float,
        *,
        methods: Iterable[str] = ("GET",),
        seed: int | None = None,
    ) -> None:
        """Delay the first byte of each matching answer by ``delay_s`` more with probability ``p``.

        Added to :attr:`delay_s`; injected error answers draw too, resets do not. Each answer
        sent draws one number (after the other decisions), so with a ``seed`` the pattern is
        reproducible; replacing and ``p=0`` work as for :meth:`fail_probability`. During a
        delay the proxy watches the client: one that closes its connection gets no answer, and
        is counted by :meth:`abandoned`.

        Args:
            p: The probability, from 0 (never) to 1 (always).
            delay_s: The extra seconds before the first byte (>= 0).
            methods: The request methods that match, case-insensitive. Default GET only.
            seed: Seed of the generator. Default ``None``: seeded from the operating system.

        Raises:
            ValueError: ``p`` is not within [0, 1] or ``delay_s`` is negative.
        """
        _check_probability(p)
        extra_s = seconds_control("delay_s", delay_s)
        self._faults.delay_randomly(p, extra_s, _methods(methods), seed)

    def abandoned(self) -> int:
        """Return how many answers the proxy dropped since the last :meth:`reset_counters`
        because the client closed its connection during their first-byte delay."""
        return self._faults.abandoned()

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
            kind: Count only this kind: ``"fail"`` (error answers), ``"truncate"`` (cut bodies),
                ``"reset"`` (reset connections) or ``"delay"`` (answers delayed by
                :meth:`delay_probability`). Default ``None``: every kind.

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
            server = ProxyServer((LOOPBACK, self._port), self, self._faults, self._upstream)
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
        server.close_connections(timeout_s=STOP_JOIN_TIMEOUT_S)


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


__all__ = ["HttpFaultProxy", "s3_error_body"]
