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

import json
import os
import sys
from typing import Any
from urllib.parse import quote

from tiercache.testing.servers._http_process import ProcessServer
from tiercache.testing.servers.ports import LOOPBACK

PROJECT = "tiercache-test"
"""The project :meth:`GcsServer.storage_options` hands to gcsfs (the emulator accepts any)."""

GCSFS_ENVIRONMENT = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
"""Environment to set before gcsfs is imported, so it does not probe buckets over gRPC."""


class GcsServer(ProcessServer):
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

    _display_name = "GCS emulator"
    _log_prefix = "tiercache-gcs-"
    _ready_status = 200  # the emulator's health check

    def _prepare(self) -> list[str]:
        command = [sys.executable, "-m", "gcp_storage_emulator", "start"]
        return [*command, "--host", LOOPBACK, "--port", str(self._port), "--in-memory", "--quiet"]

    def _environment(self) -> dict[str, str]:
        return _server_environment()

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
        return self._send(method, path, body, {"Content-Type": content_type})


def _server_environment() -> dict[str, str]:
    """Return the caller's environment without GCS settings, with unbuffered output."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GOOGLE_") and name != "STORAGE_EMULATOR_HOST"
    }
    environment["PYTHONUNBUFFERED"] = "1"
    return environment
