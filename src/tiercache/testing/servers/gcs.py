"""A Google Cloud Storage emulator (``gcp-storage-emulator``) in a subprocess, for tests.

The emulator runs as ``python -m gcp_storage_emulator start --in-memory`` in its own process
group on a loopback port; it speaks GCS's JSON API (``/storage/v1``, ``/upload/storage/v1``,
``/download/storage/v1``) over plain HTTP, which is what gcsfs uses.

gcsfs 2026.10 replaces ``gcsfs.GCSFileSystem`` with its experimental ``ExtendedGcsFileSystem``
unless ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` is false when gcsfs is first imported. That class
first asks every bucket for its storage layout over gRPC, which an HTTP emulator never answers:
each first operation on a bucket then waits up to 60 s before gcsfs falls back to JSON. No
constructor option turns the probe off (``retry_timeout=...`` only shortens it, and it is repeated
on every operation, with a WARNING each time), so set the variable before gcsfs is imported
(:data:`GCSFS_ENVIRONMENT`; the test suite's plugin does), or use ``gcsfs.core.GCSFileSystem``.

What the emulator does not do (2026.7.19), so what tests against it cannot show: downloads
ignore ``generation=`` and ``ifGenerationMatch=`` (a wrong value still answers 200/206 with the
live object), and answers carry no ``x-goog-generation`` header. See :mod:`tiercache.origin_gcs`.

Example::

    with GcsServer() as server:
        server.create_bucket("data")
        server.put_object("data", "a.bin", b"hello")
        fs = gcsfs.GCSFileSystem(**server.storage_options())
        assert fs.cat_file("data/a.bin") == b"hello"
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tiercache.testing.servers._process import stop_process_group
from tiercache.testing.servers._service import Service, log_tail
from tiercache.testing.servers.ports import LOOPBACK, free_port

PROJECT = "tiercache-test"
"""The project :meth:`GcsServer.storage_options` hands to gcsfs (the emulator accepts any)."""

GCSFS_ENVIRONMENT = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
"""Environment to set before gcsfs is imported, so it does not probe buckets over gRPC."""

_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 1.0
_REQUEST_TIMEOUT_S = 30.0


class GcsServer(Service):
    """A ``gcp-storage-emulator`` in a subprocess on ``127.0.0.1``, storage in memory.

    Use it as a context manager, or call :meth:`start` and :meth:`close` (both idempotent). A
    closed server can be started again on the same port, empty. A running server is also closed
    at interpreter exit. The subprocess inherits the environment minus ``STORAGE_EMULATOR_HOST``
    and ``GOOGLE_*`` variables; clients get the endpoint from :meth:`storage_options`.

    Args:
        port: The port to listen on. Default ``None``: a free port chosen now.
        startup_timeout_s: How long :meth:`start` waits for the server to answer HTTP before it
            gives up. Default 20 s.
    """

    def __init__(self, port: int | None = None, *, startup_timeout_s: float = 20.0) -> None:
        self._port = free_port() if port is None else port
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def __repr__(self) -> str:
        return f"GcsServer(endpoint_url={self.endpoint_url!r}, pid={self.pid!r})"

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
            fd, log_name = tempfile.mkstemp(prefix="tiercache-gcs-", suffix=".log")
            command = [sys.executable, "-m", "gcp_storage_emulator", "start"]
            command += ["--host", LOOPBACK, "--port", str(self._port), "--in-memory", "--quiet"]
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=fd,
                    stderr=subprocess.STDOUT,
                    env=_server_environment(),
                    start_new_session=True,
                )
            except BaseException:
                os.unlink(log_name)
                raise
            finally:
                os.close(fd)  # the child has its own copy; a file never blocks a chatty server
            self._process = process
            self._log_path = Path(log_name)
            atexit.register(self.close)
        failure = self._wait_until_ready(process)
        if failure is not None:
            tail = log_tail(self._log_path)
            self.close()
            raise RuntimeError(f"GCS emulator on {self.endpoint_url} {failure}; log tail:\n{tail}")

    def close(self) -> None:
        """End the server and its process group, and remove its log. Do nothing if closed."""
        with self._lock:
            process, self._process = self._process, None
            log_path, self._log_path = self._log_path, None
            if process is None:
                return
            atexit.unregister(self.close)
            stop_process_group(process)
            if log_path is not None:
                log_path.unlink(missing_ok=True)

    def storage_options(self, endpoint_url: str | None = None) -> dict[str, Any]:
        """Return gcsfs ``GCSFileSystem`` keyword arguments that reach this server.

        Args:
            endpoint_url: The URL clients connect to. Default ``None``: this server's
                :attr:`endpoint_url`; pass a proxy's URL to go through the proxy.

        Returns:
            ``endpoint_url``, ``token="anon"`` (no credential lookup) and ``project``. A fresh
            dict on every call. gcsfs must not probe buckets over gRPC: see the module
            docstring (:data:`GCSFS_ENVIRONMENT`).
        """
        return {
            "endpoint_url": self.endpoint_url if endpoint_url is None else endpoint_url,
            "token": "anon",
            "project": PROJECT,
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        body = json.dumps({"name": name}).encode()
        self._request("POST", f"/storage/v1/b?project={quote(PROJECT)}", body, "application/json")

    def put_object(self, bucket: str, key: str, data: bytes) -> str:
        """Store ``data`` under ``bucket``/``key`` as a new generation, replacing any object there.

        Returns:
            The new object's generation.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        path = f"/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        answer = self._request("POST", f"{path}?uploadType=media&name={quote(key, safe='')}", data)
        return str(json.loads(answer)["generation"])

    def reset(self) -> None:
        """Delete every bucket and object (the emulator's ``/wipe``).

        Raises:
            RuntimeError: The server refused.
            OSError: The server could not be reached.
        """
        self._request("GET", "/wipe")

    def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/octet-stream",
    ) -> bytes:
        connection = http.client.HTTPConnection(LOOPBACK, self._port, timeout=_REQUEST_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(
                f"{method} {path} on {self.endpoint_url} failed with HTTP {response.status}: "
                f"{payload[:1000].decode('utf-8', 'replace')}"
            )
        return payload

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> str | None:
        """Poll until the server answers HTTP; return why it failed, or ``None``."""
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            code = process.poll()
            if code is not None:
                return f"exited with code {code} during startup"
            if _answers_http(self._port):
                return None
            if time.monotonic() >= deadline:
                return f"did not answer HTTP within {self._startup_timeout_s:g} s"
            time.sleep(_POLL_INTERVAL_S)


def _server_environment() -> dict[str, str]:
    """Return the caller's environment without GCS settings, with unbuffered output."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GOOGLE_") and name != "STORAGE_EMULATOR_HOST"
    }
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _answers_http(port: int) -> bool:
    """Return whether the emulator's health check (``GET /``) answers 200."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=_PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return response.status == 200
