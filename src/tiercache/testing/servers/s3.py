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

import os
import sys
from typing import Any
from urllib.parse import quote

from tiercache.testing.servers._http_process import ProcessServer
from tiercache.testing.servers.ports import LOOPBACK

ACCESS_KEY = "testing"
"""The access key id that :meth:`S3Server.storage_options` hands to clients (moto accepts any)."""

SECRET_KEY = "testing"
"""The secret access key that :meth:`S3Server.storage_options` hands to clients."""

REGION = "us-east-1"
"""The region clients are configured with; moto creates buckets there."""


class S3Server(ProcessServer):
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

    _display_name = "moto S3 server"
    _log_prefix = "tiercache-moto-"

    def _prepare(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self._port)]

    def _environment(self) -> dict[str, str]:
        return _server_environment()

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
        self._send(method, path, body, headers)


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
