"""The lifecycle the object-store servers share (moto S3, the GCS emulator, Azurite): an HTTP
server in a subprocess, the leader of its own process group, on a loopback port.

:class:`ProcessServer` starts the process with its output in a log file, waits until it answers
HTTP, and on :meth:`~ProcessServer.close` ends its process group and removes the log. A
subclass names its command (:meth:`~ProcessServer._prepare`), environment, readiness probe and
log location, and adds its client helpers.
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

from tiercache.testing.servers._process import stop_process_group
from tiercache.testing.servers._service import Service, log_tail
from tiercache.testing.servers.ports import LOOPBACK, free_port

_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 1.0
_REQUEST_TIMEOUT_S = 30.0


class ProcessServer(Service):
    """An HTTP server in a subprocess on ``127.0.0.1``, in a process group of its own.

    :meth:`start` and :meth:`close` are idempotent and thread-safe; a closed server can be
    started again on the same port. A running server is also closed at interpreter exit, so a
    crashed test run leaves no orphan process.

    Subclasses set :attr:`_display_name` (for error messages) and :attr:`_log_prefix`, and
    implement :meth:`_prepare` (the command line) and :meth:`_environment`; they may override
    :meth:`_create_log`, :attr:`_ready_path` and :attr:`_ready_status`.

    Args:
        port: The port to listen on. Default ``None``: a free port chosen now.
        startup_timeout_s: How long :meth:`start` waits for the server to answer HTTP before it
            gives up.
    """

    #: What error messages call the server, e.g. ``"moto S3 server"``.
    _display_name: ClassVar[str]
    #: The prefix of the temporary log file (or work directory) name.
    _log_prefix: ClassVar[str]
    #: The path the readiness probe GETs.
    _ready_path: ClassVar[str] = "/"
    #: The status the probe must get for the server to count as ready; ``None``: any answer.
    _ready_status: ClassVar[int | None] = None

    def __init__(self, port: int | None = None, *, startup_timeout_s: float = 20.0) -> None:
        self._port = free_port() if port is None else port
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._workdir: Path | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint_url={self.endpoint_url!r}, pid={self.pid!r})"

    @property
    def port(self) -> int:
        """The loopback port the server listens on."""
        return self._port

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The process id of the running server (also its process group id), else ``None``."""
        process = self._process
        return None if process is None else process.pid

    @property
    def log_path(self) -> Path | None:
        """The file that collects the running server's stdout and stderr, else ``None``."""
        return self._log_path

    def start(self) -> None:
        """Start the server and wait until it answers HTTP. Do nothing if it is running.

        Raises:
            RuntimeError: The server exited, or did not answer within ``startup_timeout_s``. The
                message carries the tail of its log; the process is ended.
        """
        with self._lock:
            if self._process is not None:
                return
            command = self._prepare()
            log_path, workdir = self._create_log()
            try:
                # A file rather than a pipe, so a chatty server can never block on a full pipe
                # nobody reads; the child holds its own copy of the descriptor.
                with log_path.open("wb") as log:
                    process = subprocess.Popen(
                        command,
                        cwd=workdir,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=self._environment(),
                        start_new_session=True,  # the server and its children: one group
                    )
            except BaseException:
                _remove_log(log_path, workdir)
                raise
            self._process, self._log_path, self._workdir = process, log_path, workdir
            atexit.register(self.close)
        failure = self._wait_until_ready(process)
        if failure is not None:
            tail = log_tail(self._log_path)
            self.close()
            raise RuntimeError(
                f"{self._display_name} on {self.endpoint_url} {failure}; log tail:\n{tail}"
            )

    def close(self) -> None:
        """End the server and its process group, and remove its log (with its work directory,
        if it has one). Do nothing if closed.

        The group gets SIGTERM, then SIGKILL if it has not exited within 5 s.
        """
        with self._lock:
            process, self._process = self._process, None
            log_path, self._log_path = self._log_path, None
            workdir, self._workdir = self._workdir, None
            if process is None:
                return
            atexit.unregister(self.close)
            stop_process_group(process)
            if log_path is not None:
                _remove_log(log_path, workdir)

    def _prepare(self) -> list[str]:
        """Return the server's command line; called by :meth:`start`, before the log exists."""
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        """Return the environment the server runs with."""
        raise NotImplementedError

    def _create_log(self) -> tuple[Path, Path | None]:
        """Create the log file; return it and the server's work directory (its ``cwd``, removed
        whole by :meth:`close`), or ``None`` for none: here a temporary file, no directory."""
        fd, name = tempfile.mkstemp(prefix=self._log_prefix, suffix=".log")
        os.close(fd)
        return Path(name), None

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> str | None:
        """Poll until the server answers HTTP; return why it failed, or ``None``."""
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            code = process.poll()
            if code is not None:
                return f"exited with code {code} during startup"
            if self._answers_http():
                return None
            if time.monotonic() >= deadline:
                return f"did not answer HTTP within {self._startup_timeout_s:g} s"
            time.sleep(_POLL_INTERVAL_S)

    def _answers_http(self) -> bool:
        """Return whether the server answers ``GET`` :attr:`_ready_path` (with the status
        :attr:`_ready_status`, if one is set)."""
        connection = http.client.HTTPConnection(LOOPBACK, self._port, timeout=_PROBE_TIMEOUT_S)
        try:
            connection.request("GET", self._ready_path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return self._ready_status is None or response.status == self._ready_status

    def _send(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        """Send one request to the server and return the answer's body.

        Raises:
            RuntimeError: The answer's status is 300 or more (the message has the status and
                the start of the body).
            OSError: The server could not be reached.
        """
        connection = http.client.HTTPConnection(LOOPBACK, self._port, timeout=_REQUEST_TIMEOUT_S)
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(
                f"{method} {target} on {self.endpoint_url} failed with HTTP {response.status}: "
                f"{payload[:1000].decode('utf-8', 'replace')}"
            )
        return payload


def _remove_log(log_path: Path, workdir: Path | None) -> None:
    """Remove a server's work directory if it has one, else its log file."""
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log_path.unlink(missing_ok=True)
