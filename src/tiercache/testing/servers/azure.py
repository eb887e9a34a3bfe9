"""An Azurite Blob Storage server in a subprocess, for integration and chaos tests.

``azurite-blob`` (Microsoft's Azure Storage emulator, Node.js) runs in its own process group on
a loopback port, its data in memory. The binary comes from ``PATH``, else from a cache directory
where the pinned version is installed with npm on first use
(:mod:`tiercache.testing.servers.azurite_install`). Clients use Azurite's well-known
development account (``devstoreaccount1``), path-style: the blob endpoint is
``http://127.0.0.1:PORT/devstoreaccount1``. The helper methods sign their requests with that
account's key (SharedKey) using only the standard library.

What Azurite (3.35.0) does that tiercache's Azure tests rest on: it honours ``If-Match`` on
ranged and whole downloads, with the ETag quoted or bare, answering 412 ``ConditionNotMet`` once
the blob was overwritten; every download answer carries the blob's (quoted) ETag; each write
makes a new ETag (the time in ms times a random factor, not a hash of the bytes, so rewriting
the same bytes changes it too). ``--inMemoryPersistence`` refuses ``--location``.

Example::

    with AzuriteServer() as server:
        server.create_container("data")
        server.put_object("data", "a.bin", b"hello")
        fs = adlfs.AzureBlobFileSystem(**server.storage_options())
        assert fs.cat_file("data/a.bin") == b"hello"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
import xml.etree.ElementTree as ET
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tiercache.integrations.store_options import AZURITE_ACCOUNT, AZURITE_KEY
from tiercache.testing.servers._http_process import ProcessServer
from tiercache.testing.servers.azurite_install import find_azurite
from tiercache.testing.servers.ports import LOOPBACK

#: Azurite's development storage account, and its well-known key (public, the same in every
#: Azurite); defined beside the Delta option mapping that also knows them.
ACCOUNT_NAME = AZURITE_ACCOUNT
ACCOUNT_KEY = AZURITE_KEY

API_VERSION = "2021-08-06"
"""The ``x-ms-version`` the helper methods send."""


class AzuriteServer(ProcessServer):
    """An Azurite Blob service in a subprocess on ``127.0.0.1``, data in memory.

    Use it as a context manager, or call :meth:`start` and :meth:`close` (both idempotent). A
    closed server can be started again on the same port, with empty storage. A running server
    is also closed at interpreter exit.

    Args:
        port: The port to listen on. Default ``None``: a free port chosen now.
        binary: The ``azurite-blob`` command. Default ``None``: found or installed by
            :func:`~tiercache.testing.servers.azurite_install.find_azurite` at :meth:`start`.
        startup_timeout_s: How long :meth:`start` waits for the server to answer HTTP (the
            install, if any, comes before and is not counted). Default 30 s.
    """

    _display_name = "Azurite"
    _log_prefix = "tiercache-azurite-"
    _ready_path = f"/{ACCOUNT_NAME}?comp=list"

    def __init__(
        self, port: int | None = None, *, binary: str | None = None, startup_timeout_s: float = 30.0
    ) -> None:
        super().__init__(port, startup_timeout_s=startup_timeout_s)
        self._binary = binary

    @property
    def endpoint_url(self) -> str:
        """The blob endpoint, ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://{LOOPBACK}:{self._port}/{ACCOUNT_NAME}"

    def start(self) -> None:
        """Start the server (installing Azurite first if needed) and wait until it answers HTTP.
        Do nothing if it is running.

        Raises:
            RuntimeError: Azurite could not be installed (the message names npm and its
                command), or the server exited or did not answer within ``startup_timeout_s``
                (the message carries the tail of its log; the process is ended).
        """
        super().start()

    def close(self) -> None:
        """End the server and its process group, and remove its directory. Do nothing if closed.

        The group gets SIGTERM, then SIGKILL if it has not exited within 5 s.
        """
        super().close()

    def _prepare(self) -> list[str]:
        return [
            self._binary or find_azurite(),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(self._port),
            "--inMemoryPersistence",  # excludes --location; nothing is written to disk
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]

    def _environment(self) -> dict[str, str]:
        return _server_environment()

    def _create_log(self) -> tuple[Path, Path | None]:
        workdir = Path(tempfile.mkdtemp(prefix=self._log_prefix))
        return workdir / "azurite.log", workdir

    def connection_string(self, endpoint_url: str | None = None) -> str:
        """Return a connection string for the development account.

        Args:
            endpoint_url: The blob endpoint clients connect to, account path included. Default
                ``None``: :attr:`endpoint_url`; pass a proxy's ``url + "/devstoreaccount1"`` to
                go through the proxy.
        """
        endpoint = self.endpoint_url if endpoint_url is None else endpoint_url
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
        )

    def storage_options(self, endpoint_url: str | None = None) -> dict[str, Any]:
        """Return adlfs ``AzureBlobFileSystem`` keyword arguments that reach this server.

        Args:
            endpoint_url: As for :meth:`connection_string`.

        Returns:
            ``connection_string`` and ``account_name``; a fresh dict on every call.
        """
        return {
            "connection_string": self.connection_string(endpoint_url),
            "account_name": ACCOUNT_NAME,
        }

    def create_container(self, name: str) -> None:
        """Create a container.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        self._request("PUT", f"/{quote(name, safe='')}", query={"restype": "container"})

    def put_object(self, container: str, key: str, data: bytes) -> None:
        """Store ``data`` as the block blob ``container``/``key``, replacing any blob there.

        Raises:
            RuntimeError: The server refused (the message has its status and error body).
            OSError: The server could not be reached.
        """
        path = f"/{quote(container, safe='')}/{quote(key, safe='/')}"
        self._request("PUT", path, data, headers={"x-ms-blob-type": "BlockBlob"})

    def reset(self) -> None:
        """Delete every container (and so every blob).

        Raises:
            RuntimeError: The server refused.
            OSError: The server could not be reached.
        """
        listing = self._request("GET", "/", query={"comp": "list"})
        for element in ET.fromstring(listing).iter("Name"):
            name = element.text or ""
            self._request("DELETE", f"/{quote(name, safe='')}", query={"restype": "container"})

    def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Send one SharedKey-signed request; ``path`` is below the account. Return the body."""
        query = query or {}
        all_headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            "Content-Length": str(len(body)),
            **(headers or {}),
        }
        resource = f"/{ACCOUNT_NAME}/{ACCOUNT_NAME}{path}"
        all_headers["Authorization"] = shared_key_authorization(
            method, resource, query, all_headers
        )
        target = f"/{ACCOUNT_NAME}{path}"
        if query:
            target += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return self._send(method, target, body, all_headers)


def shared_key_authorization(
    method: str, resource: str, query: dict[str, str], headers: dict[str, str]
) -> str:
    """Return the ``Authorization`` header of a Blob request signed with the account key.

    Args:
        method: The HTTP verb.
        resource: ``/<account>/<uri path>`` (path-style: the account appears twice).
        query: The query parameters.
        headers: The request's headers (``x-ms-*`` ones are signed).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    length = lower.get("content-length", "")
    standard = [
        lower.get(name, "")
        for name in (
            "content-encoding",
            "content-language",
            "content-length",
            "content-md5",
            "content-type",
            "date",
            "if-modified-since",
            "if-match",
            "if-none-match",
            "if-unmodified-since",
            "range",
        )
    ]
    standard[2] = "" if length == "0" else length
    ms_headers = "".join(f"{k}:{v.strip()}\n" for k, v in sorted(lower.items()) if k[:5] == "x-ms-")
    canonical = resource + "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    text = "\n".join([method.upper(), *standard]) + "\n" + ms_headers + canonical
    key = base64.b64decode(ACCOUNT_KEY)
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {ACCOUNT_NAME}:{base64.b64encode(digest).decode()}"


def _server_environment() -> dict[str, str]:
    """Return the caller's environment without ``AZURITE_*`` variables (``AZURITE_ACCOUNTS``
    would replace the development account the clients are given)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AZURITE_")}
