"""A moto S3 server in a subprocess, for integration and chaos tests.

The server runs as ``python -m moto.server`` in its own process group on a loopback port. It is
never run in-process: moto's ``ThreadedMotoServer`` deadlocks with clients that hold the GIL while
they wait on HTTP (deltalake does). Only ``moto[s3]``, ``flask`` and ``flask-cors`` need to be
installed; the helper methods sign their requests with botocore (a dependency of moto), imported
when first used.

Example::

    with S3Server() as server:
        server.create_bucket("data")
        server.put_object("data", "a.bin", b"hello")
        fs = s3fs.S3FileSystem(**server.storage_options())
        assert fs.cat_file("data/a.bin") == b"hello"
"""

from __future__ import annotations

import atexit
import http.client
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

ACCESS_KEY = "testing"
"""The access key id that :meth:`S3Server.storage_options` hands to clients (moto accepts any)."""

SECRET_KEY = "testing"
"""The secret access key that :meth:`S3Server.storage_options` hands to clients."""

REGION = "us-east-1"
"""The region clients are configured with; moto creates buckets there."""

_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 1.0
_REQUEST_TIMEOUT_S = 30.0


class S3Server(Service):
    """A moto S3 server in a subprocess on ``127.0.0.1``.

    Use it as a context manager, or call :meth:`start` and :meth:`close` (both idempotent). A
    closed server can be started again on the same port, with empty storage, which emulates an
    object store that restarted. A running server is also closed at interpreter exit, so a
    crashed test run leaves no orphan process.

    The subprocess inherits the environment minus every ``AWS_*`` variable, so nothing in the
    caller's environment can point it elsewhere; clients get their credentials and endpoint
    explicitly from :meth:`storage_options`.

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
        return f"S3Server(endpoint_url={self.endpoint_url!r}, pid={self.pid!r})"

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
            fd, log_name = tempfile.mkstemp(prefix="tiercache-moto-", suffix=".log")
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self._port)],
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
                # The child holds its own copy of the descriptor; a file is used rather than a
                # pipe so a chatty server can never block on a full pipe nobody reads.
                os.close(fd)
            self._process = process
            self._log_path = Path(log_name)
            atexit.register(self.close)
        failure = self._wait_until_ready(process)
        if failure is not None:
            tail = log_tail(self._log_path)
            self.close()
            raise RuntimeError(
                f"moto S3 server on {self.endpoint_url} {failure}; log tail:\n{tail}"
            )

    def close(self) -> None:
        """End the server and its process group, and remove its log. Do nothing if closed.

        The group gets SIGTERM, then SIGKILL if it has not exited within 5 s.
        """
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
        """Return s3fs ``S3FileSystem`` keyword arguments that reach this server.

        Args:
            endpoint_url: The URL clients connect to. Default ``None``: this server's
                :attr:`endpoint_url`; pass a proxy's URL to go through the proxy.

        Returns:
            ``key``, ``secret`` and ``client_kwargs`` (endpoint and region), with fixed dummy
            credentials, so nothing is taken from the environment. A fresh dict on every call.
        """
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {
                "endpoint_url": self.endpoint_url if endpoint_url is None else endpoint_url,
                "region_name": REGION,
            },
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket.

        Args:
            name: The bucket name; moto applies S3's naming rules.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        self._request("PUT", f"/{quote(name, safe='')}")

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Store ``data`` under ``bucket``/``key``, replacing any object there.

        Args:
            bucket: An existing bucket.
            key: The object key; ``/`` separates "directories" as usual.
            data: The object's bytes.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        self._request("PUT", f"/{quote(bucket, safe='')}/{quote(key, safe='/')}", data)

    def reset(self) -> None:
        """Delete every bucket and object, through moto's ``/moto-api/reset`` endpoint.

        Raises:
            RuntimeError: The server refused.
            OSError: The server could not be reached.
        """
        self._request("POST", "/moto-api/reset")

    def _request(self, method: str, path: str, body: bytes = b"") -> None:
        # Signed, because moto treats unsigned requests as anonymous and refuses those on
        # existing (private) objects, e.g. an overwrite.
        headers = _signed_headers(method, self.endpoint_url + path, body)
        connection = http.client.HTTPConnection(LOOPBACK, self._port, timeout=_REQUEST_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(
                f"{method} {path} on {self.endpoint_url} failed with HTTP {response.status}: "
                f"{payload[:1000].decode('utf-8', 'replace')}"
            )

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
    """Return the caller's environment without ``AWS_*`` variables, with unbuffered output."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _signed_headers(method: str, url: str, body: bytes) -> dict[str, str]:
    """Return the headers of an AWS SigV4-signed S3 request with the dummy credentials."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def _answers_http(port: int) -> bool:
    """Return whether an HTTP server on the loopback ``port`` answers a request at all."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=_PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True
