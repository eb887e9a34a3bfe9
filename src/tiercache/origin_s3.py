"""S3 reads without s3fs's retry loop: ``get_object`` through the client, pinned by ETag.

:class:`~tiercache.origin.FsspecOrigin` retries under one deadline; s3fs would retry again
inside, and botocore inside that. Here one ``get_object`` goes to the client directly (with the
request-wide keyword arguments s3fs would add: requester pays, SSE...), botocore's own retries
watched by :mod:`tiercache.attempts`. A 412 becomes :class:`~tiercache.errors.ObjectChangedError`
and a 416 :class:`RangeNotSatisfiableError`; other botocore errors become the builtins s3fs would
raise (NoSuchKey: FileNotFoundError). Timing feeds the origin's :class:`~tiercache.lateness.Pace`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from .attempts import answer_of_error, watch
from .errors import ObjectChangedError, ShortReadError
from .hedging import Hedging, race
from .lateness import Pace

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class RangeNotSatisfiableError(OSError):
    """The store answered 416: the range starts at or past the end of the object."""


def _is_precondition_failed(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an exception it wraps) is an HTTP 412 from the store."""
    answer = answer_of_error(exc)
    return answer is not None and (answer.status == 412 or "PreconditionFailed" in answer.label)


def is_s3(fs: AbstractFileSystem, protocol: str) -> bool:
    """Whether ``fs`` is s3fs: its async client call gives ETag and size with the bytes."""
    return protocol in ("s3", "s3a") and hasattr(fs, "_call_s3")


class S3Reads:
    """Ranged GETs of one s3fs filesystem, each one request of the client (its retries aside).

    Args:
        fs: The s3fs filesystem.
        pace: Where completed reads report their first-byte time and throughput.
        hedging: When a read late to its first byte is sent again (:mod:`tiercache.hedging`);
            None: never.
    """

    def __init__(self, fs: AbstractFileSystem, pace: Pace, hedging: Hedging | None = None) -> None:
        self.fs = fs
        self.pace = pace
        self.hedging = hedging
        # The pieces of s3fs's _call_s3 without its retry loop: the session, the (per-region)
        # client and the request-wide keyword arguments (requester pays, SSE, ...).
        self._direct = all(
            hasattr(fs, name) for name in ("set_session", "get_s3", "_get_s3_method_kwargs")
        )

    def get(
        self, path: str, start: int, end: int, etag: str | None, timeout_s: float
    ) -> tuple[bytes, Mapping[str, Any]]:
        """GET ``[start, end)`` of ``path`` (If-Match ``etag`` when given): the body and the
        response."""
        fs: Any = self.fs
        bucket, key, version_id = fs.split_path(path)
        kwargs: dict[str, Any] = {"Range": f"bytes={start}-{end - 1}"}
        if etag:
            kwargs["IfMatch"] = etag
        if version_id:
            kwargs["VersionId"] = version_id

        async def get(answered: asyncio.Event) -> tuple[bytes, Mapping[str, Any]]:
            began = time.perf_counter()
            resp = await self._get_object(bucket, key, kwargs)
            answered.set()
            first_byte_s = time.perf_counter() - began
            try:
                body: bytes = await resp["Body"].read()
            finally:
                resp["Body"].close()
            self.pace.observe(len(body), time.perf_counter() - began, first_byte_s)
            return body, resp

        try:
            result: tuple[bytes, Mapping[str, Any]] = sync(
                fs.loop, race, get, self.hedging, timeout_s, timeout=timeout_s
            )
        except OSError as exc:
            if _is_precondition_failed(exc):
                raise ObjectChangedError(f"{path!r} changed: it no longer has ETag {etag}") from exc
            answer = answer_of_error(exc)
            if answer is not None and answer.status == 416:
                raise RangeNotSatisfiableError(f"{path!r}: {answer.label}") from exc
            raise
        return result

    async def _get_object(
        self, bucket: str, key: str, kwargs: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """One ``get_object`` through the client: botocore's retries, not s3fs's on top."""
        fs: Any = self.fs
        if not self._direct:
            if getattr(fs, "_s3", None) is not None:
                watch(fs._s3)
            response: Mapping[str, Any] = await fs._call_s3(
                "get_object", Bucket=bucket, Key=key, **kwargs
            )
            return response
        await fs.set_session()
        client = await fs.get_s3(bucket)
        watch(client)
        method = client.get_object
        params = fs._get_s3_method_kwargs(method, Bucket=bucket, Key=key, **kwargs)
        try:
            response = await method(**params)
        except Exception as exc:
            translated = _translate_s3_error(exc)
            if translated is exc:
                raise
            raise translated from exc
        return response

    def get_discovering(
        self, path: str, start: int, end: int, timeout_s: float
    ) -> tuple[bytes, Mapping[str, Any], int]:
        """GET ``[start, end)`` of an object not known yet: the body, the response, the size.

        Raises:
            ShortReadError: The answer's Content-Range is missing or does not match the body.
        """
        data, resp = self.get(path, start, end, None, timeout_s)
        match = _CONTENT_RANGE.match(str(resp.get("ContentRange", "")))
        if match is None:
            raise ShortReadError(f"{path!r}: ranged GET answered without a Content-Range")
        first, last, size = (int(g) for g in match.groups())
        if first != start or len(data) != last - first + 1 or last >= min(end, size):
            raise ShortReadError(
                f"{path!r} [{start}, {end}): got bytes {first}-{last} of {size} "
                f"in {len(data)} bytes"
            )
        return data, resp, size


def _translate_s3_error(exc: Exception) -> BaseException:
    """Map a botocore error to the builtin s3fs would raise (NoSuchKey: FileNotFoundError...)."""
    try:
        from s3fs.errors import translate_boto_error
    except ImportError:  # pragma: no cover - s3fs is what gave us the client
        return exc
    translated: BaseException = translate_boto_error(exc)
    return translated
