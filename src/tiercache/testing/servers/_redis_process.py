"""The harness's handle on one ``redis-server`` process: run it, wait for it, signal it, end it.

A :class:`RedisProcess` builds the server's command line (loopback only, nothing persisted, TLS
and a password when asked), starts it in its own process group with its output in a log file in
its working directory, and waits until it answers PING. A port found free can be taken before
the server binds it: at the first start on a port of its own choosing, it tries a new one. It
ends the server with its whole group, and talks to it without redis-py: RESP on a new connection
(:mod:`._resp`), or ``redis-cli``.

Not thread-safe: :class:`~tiercache.testing.RedisServer` calls it with its own lock held.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tiercache.testing.servers._process import signal_group, stop_process_group
from tiercache.testing.servers._resp import ping, ping_reply, query
from tiercache.testing.servers._service import LOG_TAIL_BYTES, log_tail
from tiercache.testing.servers.ports import LOOPBACK, free_port
from tiercache.testing.servers.redis_tls import TlsFiles

#: How often the harness asks a starting or loading server whether it is ready.
POLL_INTERVAL_S = 0.02
_CLI_TIMEOUT_S = 30.0
_SAVE_TIMEOUT_S = 60.0
_PORT_ATTEMPTS = 3  # A port found free can be taken before the server binds it; try a new one.


class RedisProcess:
    """One ``redis-server`` process at a time, on one port, and its working directory.

    Args:
        binaries: ``(redis_server_path, redis_cli_path)``.
        port: The port; ``None``: a free port chosen now (and another one if that is taken
            before the server binds it, at the first start only).
        password: Require this password (``requirepass``), or ``None``.
        tls: Serve only TLS on the port, with these files, or ``None``.
        extra_args: More ``redis-server`` arguments, last on the command line.
        data_dir: The working directory (kept), or ``None``: a new temporary one per start,
            removed when the process ends unless ``keep_dir``.
        startup_timeout_s: How long a start waits for the server to answer.
        at_exit: Registered with :mod:`atexit` while a process runs (the owner's ``close``).
        on_data_lost: Called when a process ends without keeping its directory: what was
            written into the server is gone.
    """

    def __init__(
        self,
        binaries: tuple[str, str],
        *,
        port: int | None,
        password: str | None,
        tls: TlsFiles | None,
        extra_args: tuple[str, ...],
        data_dir: Path | None,
        startup_timeout_s: float,
        at_exit: Callable[[], None],
        on_data_lost: Callable[[], None],
    ) -> None:
        self.server_path, self.cli_path = binaries
        self.port_fixed = port is not None
        self.port = free_port() if port is None else port
        self.password = password
        self.tls = tls
        self._extra_args = extra_args
        self._data_dir = data_dir
        self.startup_timeout_s = startup_timeout_s
        self._at_exit = at_exit
        self._on_data_lost = on_data_lost
        self.process: subprocess.Popen[bytes] | None = None
        self.work_dir: Path | None = None
        self.log_path: Path | None = None
        self._started_once = False
        #: Whether the process is frozen with SIGSTOP.
        self.stopped = False

    def is_running(self) -> bool:
        """Return whether the process exists and has not exited (stopped counts)."""
        process = self.process
        return process is not None and process.poll() is None

    def start(
        self,
        *,
        work_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        until_loading: bool = False,
    ) -> None:
        """Start the process if it is not running.

        ``work_dir`` reuses a kept working directory; ``extra_args`` come after the server's
        own for this start only; ``until_loading`` returns once it answers ``-LOADING``.

        Raises:
            RuntimeError: The server exited, or did not answer within ``startup_timeout_s``.
                The message carries the tail of its log; nothing is left running.
            OSError: The binary could not be run.
        """
        if self.is_running():
            return
        self.end(signal.SIGKILL)
        attempts = 1 if self.port_fixed or self._started_once else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                failure = self._launch(work_dir, extra_args, until_loading)
            except BaseException:  # E.g. no such binary, or an interrupt while waiting.
                self.end(signal.SIGKILL)
                raise
            if failure is None:
                self._started_once = True
                return
            tail = log_tail(self.log_path)
            self.end(signal.SIGKILL)
            if attempt < attempts and "Address already in use" in tail:
                self.port = free_port()
                continue
            raise RuntimeError(
                f"redis-server ({self.server_path}) on port {self.port} {failure}; "
                f"log tail:\n{tail}"
            )

    def restart_in_place(
        self, *, extra_args: Sequence[str] = (), until_loading: bool = False
    ) -> None:
        """End the process and start it again in the same working directory, with its data.

        Raises:
            RuntimeError: As :meth:`start`.
        """
        work_dir = self.work_dir
        self.end(signal.SIGTERM, keep_dir=True)
        self.start(work_dir=work_dir, extra_args=extra_args, until_loading=until_loading)

    def end(self, first_signal: signal.Signals, *, keep_dir: bool = False) -> None:
        """End the process group and remove the temporary directory unless ``keep_dir``."""
        process, self.process = self.process, None
        work_dir, self.work_dir = self.work_dir, None
        self.log_path = None
        self.stopped = False
        if not keep_dir and (process is not None or work_dir is not None):
            self._on_data_lost()
        if process is not None:
            atexit.unregister(self._at_exit)
            stop_process_group(process, first_signal)
        if work_dir is not None and self._data_dir is None and not keep_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    def stop(self) -> None:
        """Freeze the process with SIGSTOP.

        Raises:
            RuntimeError: The server is not running.
        """
        signal_group(self.require_running(), signal.SIGSTOP)
        self.stopped = True

    def cont(self) -> None:
        """Let a frozen process go on, with SIGCONT; do nothing if it is not running."""
        process = self.process
        if process is not None and process.poll() is None:
            signal_group(process, signal.SIGCONT)
        self.stopped = False

    def ping_reply(self) -> bytes | None:
        """PING's reply (``b"+PONG"``, ``b"-LOADING ..."``, ...), ``None`` if unreachable."""
        return ping_reply(self.port, self.password, self.tls)

    def answers(self) -> bool:
        """Whether the server answers PING with PONG."""
        return ping(self.port, self.password, self.tls)

    def command(self, commands: Sequence[Sequence[str]], what: str) -> list[bytes]:
        """Send commands on a new connection; every reply must not be an error.

        Raises:
            RuntimeError: The server cannot be reached, or a reply is an error.
        """
        replies = query(self.port, commands, self.password, self.tls, _SAVE_TIMEOUT_S)
        if replies is None or any(reply.startswith(b"-") for reply in replies):
            raise RuntimeError(
                f"redis-server on port {self.port}: {what} failed: {replies!r}"[:LOG_TAIL_BYTES]
            )
        return replies

    def save(self) -> None:
        """Save the dataset (``SAVE``), so that a restart in place loads it.

        Raises:
            RuntimeError: The server does not answer, or ``SAVE`` failed.
        """
        self.require_answering()
        self.command([("SAVE",)], "SAVE")

    def cli(self, *args: str) -> str:
        """Run ``redis-cli`` against the server and return its standard output.

        Raises:
            RuntimeError: ``redis-cli`` exited with a non-zero code (the message has its output).
            subprocess.TimeoutExpired: It did not finish within 30 s.
        """
        command = [self.cli_path, "-e", "-h", LOOPBACK, "-p", str(self.port)]
        if self.tls is not None:
            command += ["--tls", "--cacert", str(self.tls.ca_cert)]
        environment = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if self.password is not None:
            environment["REDISCLI_AUTH"] = self.password
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
                f"redis-cli {' '.join(args)} on port {self.port} failed with exit code "
                f"{result.returncode}: {(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def config_get(self, name: str) -> str | None:
        """The value of one setting (hidden ones too), ``None`` if this server has no such."""
        output = self.cli("config", "get", name).splitlines()
        return output[1] if len(output) >= 2 and output[0] == name else None

    def require_answering(self) -> None:
        """Raise ``RuntimeError`` unless the server runs, is not stopped and answers PING."""
        self.require_running()
        if self.stopped or not self.answers():
            raise RuntimeError(f"redis-server on port {self.port} does not answer PING")

    def require_running(self) -> subprocess.Popen[bytes]:
        """Return the running process; raise ``RuntimeError`` if there is none."""
        process = self.process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return process

    def _launch(
        self, work_dir: Path | None, extra_args: Sequence[str], until_loading: bool
    ) -> str | None:
        """Start the process; return why it did not become ready, or ``None``."""
        if work_dir is None and self._data_dir is None:
            work_dir = Path(tempfile.mkdtemp(prefix="tiercache-redis-"))
        elif work_dir is None:
            work_dir = self._data_dir
            assert work_dir is not None
            work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        self.log_path = work_dir / f"redis-{self.port}.log"
        with self.log_path.open("wb") as log:
            # A file, not a pipe, so a chatty server can never block on a pipe nobody reads.
            process = subprocess.Popen(
                [*self._command_line(work_dir), *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work_dir,
                start_new_session=True,
            )
        self.process = process
        self.stopped = False
        atexit.register(self._at_exit)
        ready = (b"+PONG", b"-LOADING") if until_loading else (b"+PONG",)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = process.poll()
            if code is not None:
                return f"exited with code {code} during startup"
            reply = self.ping_reply()
            if reply is not None and reply.startswith(ready):
                return None
            if time.monotonic() >= deadline:
                return f"did not answer PING within {self.startup_timeout_s:g} s"
            time.sleep(POLL_INTERVAL_S)

    def _command_line(self, work_dir: Path) -> list[str]:
        command = [self.server_path, "--bind", LOOPBACK, "--daemonize", "no"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(work_dir), "--logfile", ""]
        if self.tls is None:
            command += ["--port", str(self.port)]
        else:
            command += ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(self.tls.server_cert)]
            command += ["--tls-key-file", str(self.tls.server_key)]
            command += ["--tls-ca-cert-file", str(self.tls.ca_cert), "--tls-auth-clients", "no"]
        if self.password is not None:
            command += ["--requirepass", self.password]
        return [*command, *self._extra_args]
