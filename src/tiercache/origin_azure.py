"""Azure Blob Storage reads (adlfs), each pinned with ``If-Match`` to the ETag of the info.

A ranged read goes through adlfs's own async service client (so the user's credentials,
endpoint, transport and the SDK's retry policy apply) as one ``download_blob`` with
``etag=<ETag>, match_condition=IfNotModified``: an overwritten blob answers 412
(:class:`~tiercache.errors.ObjectChangedError`), and the ETag of the answer is checked too.

adlfs's ``info`` gives the ETag quoted (``"0x8D..."``), and so does every answer of the SDK;
:func:`quoted_etag` makes any spelling the quoted one before it is sent or compared. The SDK
splits a download longer than its ``max_single_get_size`` (32 MiB by default) into 4 MiB chunk
requests, each carrying ``If-Match`` on the first answer's ETag; a read here raises that limit
on its own copy of the client configuration, so one read is one request.

Only this module knows Azure; the SDK is imported lazily, so ``import tiercache`` needs neither
adlfs nor azure-storage-blob.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import os
import time
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from .errors import ObjectChangedError
from .hedging import Hedging, race
from .lateness import Pace
from .origin_s3 import RangeNotSatisfiableError
from .protocol import ObjectInfo

#: The protocols adlfs registers for Azure Blob Storage / ADLS Gen2.
AZURE_PROTOCOLS = ("abfs", "az", "abfss")
#: The connection string's keys that name where a target is, never its secrets.
_ENDPOINT_KEYS = (
    "accountname",
    "blobendpoint",
    "defaultendpointsprotocol",
    "endpointsuffix",
)


def is_azure(fs: AbstractFileSystem, protocol: str) -> bool:
    """Whether ``fs`` is adlfs's ``AzureBlobFileSystem`` (its async service client, its loop)."""
    return protocol in AZURE_PROTOCOLS and all(
        hasattr(fs, name) for name in ("service_client", "split_path", "loop")
    )


def quoted_etag(value: object) -> str | None:
    """Return an ETag in the quoted form Azure answers with (``"0x8D..."``); None if empty."""
    if not isinstance(value, str):
        return None
    bare = value.strip().strip('"')
    return f'"{bare}"' if bare else None


def etag_of(info: ObjectInfo) -> str | None:
    """The quoted ETag ``info`` names: its ``etag``, else the target's raw ``etag``."""
    return quoted_etag(info.etag) or quoted_etag(info.raw.get("etag"))


def connection_string_endpoint(connection_string: str) -> dict[str, str]:
    """Return where an Azure connection string points: account name, blob endpoint, protocol
    and suffix (keys lower-cased), never the key or SAS.

    ``"AccountName=a;AccountKey=k;BlobEndpoint=http://h/a"`` gives
    ``{"accountname": "a", "blobendpoint": "http://h/a"}``. Parts without ``=`` are ignored.
    """
    endpoint: dict[str, str] = {}
    for part in connection_string.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if sep and name in _ENDPOINT_KEYS:
            value = value.strip()
            endpoint[name] = value.rstrip("/") if name == "blobendpoint" else value
    return endpoint


class AzureReads:
    """Ranged reads of one adlfs filesystem, each one ``download_blob`` pinned to an ETag.

    Args:
        fs: The adlfs ``AzureBlobFileSystem``.
        pace: Where completed reads report their first-byte time and throughput.
        hedging: When a read late to its first byte is sent again (:mod:`tiercache.hedging`);
            None: never.
    """

    def __init__(self, fs: AbstractFileSystem, pace: Pace, hedging: Hedging | None = None) -> None:
        self.fs = fs
        self.pace = pace
        self.hedging = hedging

    def can_pin(self, info: ObjectInfo, /) -> bool:
        return etag_of(info) is not None

    def read(self, info: ObjectInfo, start: int, end: int, timeout_s: float, /) -> bytes:
        """Return ``[start, end)`` of the blob version ``info`` names (If-Match its ETag).

        Raises:
            ObjectChangedError: The blob has another ETag now (412, or an answer naming it).
            FileNotFoundError: No such blob (or container).
            PermissionError: The store refused the credentials.
            TimeoutError: ``timeout_s`` passed (the SDK's retries included).
        """
        etag = etag_of(info)
        if etag is None:
            raise ValueError(f"{info.path!r}: no ETag to pin the read to")
        if end <= start:
            return b""
        fs: Any = self.fs
        container, blob, version_id = fs.split_path(info.path)
        path = info.path

        async def get(headers_in: asyncio.Event) -> bytes:
            from azure.core import MatchConditions

            began = time.perf_counter()
            first_byte: list[float] = []

            def on_response(_: object) -> None:  # headers in, body not read yet
                if not first_byte:
                    first_byte.append(time.perf_counter() - began)
                headers_in.set()

            async with fs.service_client.get_blob_client(container=container, blob=blob) as bc:
                _one_request(bc, end - start)
                stream = await bc.download_blob(
                    offset=start,
                    length=end - start,
                    version_id=version_id,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    max_concurrency=1,
                    raw_response_hook=on_response,
                    **getattr(fs, "_timeout_kwargs", {}),
                )
                answered = quoted_etag(stream.properties.etag)
                if answered != etag:
                    raise ObjectChangedError(f"{path!r} changed: ETag {answered}, not {etag}")
                data = bytes(await stream.readall())
            total_s = time.perf_counter() - began
            self.pace.observe(len(data), total_s, first_byte[0] if first_byte else None)
            return data

        try:
            result: bytes = sync(fs.loop, race, get, self.hedging, timeout_s, timeout=timeout_s)
        except ObjectChangedError:
            raise
        except Exception as exc:
            translated = translate_error(exc, path, etag)
            if translated is exc:
                raise
            raise translated from exc
        return result


def translate_error(exc: Exception, path: str, etag: str) -> Exception:
    """Map an Azure SDK error to what the origin understands (by HTTP status); else ``exc``."""
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    if status == 412:
        return ObjectChangedError(f"{path!r} changed: it no longer has ETag {etag}")
    if status == 404:
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if status == 416:
        return RangeNotSatisfiableError(f"{path!r}: {exc}")
    if status == 403:
        return PermissionError(errno.EACCES, f"{path!r}: {exc}")
    return exc


def _one_request(client: Any, length: int) -> None:
    """Let ``client`` download ``length`` bytes in one request (its own copy of the config)."""
    config: Any = getattr(client, "_config", None)
    single = getattr(config, "max_single_get_size", None)
    if not isinstance(single, int) or single >= length:
        return
    own = copy.copy(config)  # the service client's config is shared by every blob client
    own.max_single_get_size = length
    client._config = own


def endpoint_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The endpoint an Azure filesystem's options name inside a connection string (empty when
    there is none): for :func:`tiercache.origin.target_identity`."""
    text = options.get("connection_string")
    if not isinstance(text, str):
        return {}
    return {f"connection_string.{k}": v for k, v in connection_string_endpoint(text).items()}
