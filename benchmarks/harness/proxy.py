"""The latency proxy in front of the S3 server, as the benchmark programs use it.

:class:`CountingProxy` is what the measurement functions need of a proxy: its URL, and the
requests it saw. Both :class:`tiercache.testing.HttpFaultProxy` (in this process, as the
single-purpose programs run it) and :class:`ProxyProcess` (the same proxy in a child process, as
``run.py`` runs it) provide it.

Why a child process: the proxy is Python code (a thread per connection, pacing the bodies in
64 KiB chunks). In the measuring process it competes for the GIL with the code being measured,
which is unlike a real object store and worst exactly where it matters most, with many reader
threads. In its own process it has its own interpreter, as the S3 server (moto) already has.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Protocol, Self


class CountingProxy(Protocol):
    """An HTTP proxy clients reach at :attr:`url`, counting the requests it forwards."""

    @property
    def url(self) -> str: ...

    def requests(self, method: str | None = None) -> int: ...

    def reset_counters(self) -> None: ...


def _serve(
    conn: Connection, upstream_url: str, delay_s: float, bandwidth_bytes_per_s: float | None
) -> None:
    """The child: run an HttpFaultProxy and answer the parent's commands until told to close."""
    from tiercache.testing import HttpFaultProxy

    with HttpFaultProxy(
        upstream_url, delay_s=delay_s, bandwidth_bytes_per_s=bandwidth_bytes_per_s
    ) as proxy:
        conn.send(proxy.url)
        while True:
            try:
                command, argument = conn.recv()
            except EOFError:  # the parent went away
                return
            if command == "requests":
                conn.send(proxy.requests(argument))
            elif command == "reset":
                proxy.reset_counters()
                conn.send(None)
            elif command == "delay_s":
                proxy.delay_s = argument
                conn.send(None)
            elif command == "delay_probability":
                p, extra_s, seed = argument
                proxy.delay_probability(p, extra_s, seed=seed)
                conn.send(None)
            elif command == "close":
                conn.send(None)
                return


class ProxyProcess:
    """An :class:`~tiercache.testing.HttpFaultProxy` running in a child process.

    Args:
        upstream_url: The S3 server's URL.
        delay_s: Seconds before the first byte of every response.
        bandwidth_bytes_per_s: The pace of each response body (per stream), or ``None``.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        delay_s: float = 0.0,
        bandwidth_bytes_per_s: float | None = None,
    ) -> None:
        self.upstream_url = upstream_url
        self.delay_s = delay_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self._conn: Connection | None = None
        self._process: Any = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the proxy process is not running")
        return self._url

    def start(self) -> None:
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child, self.upstream_url, self.delay_s, self.bandwidth_bytes_per_s),
            name="tiercache-bench-proxy",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(60):
            process.kill()
            raise RuntimeError("the proxy process did not start within 60 s")
        self._url = str(parent.recv())
        self._conn, self._process = parent, process

    def _ask(self, command: str, argument: Any = None) -> Any:
        if self._conn is None:
            raise RuntimeError("the proxy process is not running")
        self._conn.send((command, argument))
        return self._conn.recv()

    def requests(self, method: str | None = None) -> int:
        """Requests the proxy received since the last :meth:`reset_counters` (of ``method``)."""
        return int(self._ask("requests", method))

    def reset_counters(self) -> None:
        self._ask("reset")

    def set_delay(self, delay_s: float) -> None:
        """Seconds before the first byte of every response (the proxy's ``delay_s``)."""
        self._ask("delay_s", delay_s)

    def delay_probability(self, p: float, extra_s: float, seed: int | None) -> None:
        """A random share ``p`` of GETs waits ``extra_s`` more (seeded; ``p=0``: none)."""
        self._ask("delay_probability", (p, extra_s, seed))

    def close(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = self._url = None
        if conn is None or process is None:
            return
        try:
            self._conn = conn
            self._ask("close")
        except (OSError, EOFError):
            pass
        finally:
            self._conn = None
            conn.close()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
