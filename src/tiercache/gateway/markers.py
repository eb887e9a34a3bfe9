"""HEAD and GET of keys that end in ``/`` (directory markers): exactly that key, from the origin.

The chain names objects by fsspec path, and fsspec drops a trailing ``/``: through the chain,
``dir/`` would be read as ``dir``, another object or a "directory". Measured before this module:
``HEAD dir/`` of an existing zero-byte marker answered 404 (S3 answers 200), and ``GET x/`` with
both ``x`` and ``x/`` stored answered 503 until the client gave up (the chain's info was ``x``'s,
its bytes ``x/``'s). Clients do send these: pyarrow's ``S3FileSystem`` probes ``HEAD dir/`` to
tell an empty directory, and tools (pyarrow's ``create_dir``, the S3 console, Hadoop) write
zero-byte ``dir/`` markers.

So such keys skip the tiers: a HEAD is passed to the origin for exactly that key, the
conditional headers and the ``Range`` are decided here as for any object
(:mod:`tiercache.gateway.httpsemantics`), and a GET fetches just the bytes answered, pinned to
the ETag the HEAD saw (``If-Match``: a marker overwritten in between is a 503 the client
retries). Markers are empty or tiny by convention; a body is read whole, as the range asks.

Everything here blocks; the app runs it on worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tiercache.gateway.httpsemantics import (
    Condition,
    check_conditions,
    content_range,
    http_date,
    parse_range,
    quote_etag,
)
from tiercache.gateway.objects import Answer
from tiercache.gateway.s3errors import S3Error, no_such_key
from tiercache.gateway.upstream import OriginCalls


class Markers:
    """HEAD and GET of ``bucket``/``key`` where ``key`` ends in ``/``, through ``upstream``."""

    def __init__(self, upstream: OriginCalls) -> None:
        self.upstream = upstream

    def head(self, bucket: str, key: str, headers: Mapping[str, str]) -> Answer:
        """Answer a HeadObject of a marker: its headers, 304 / 412 on conditions, no body."""
        return self._answer(bucket, key, headers, "HEAD")

    def get(self, bucket: str, key: str, headers: Mapping[str, str]) -> Answer:
        """Answer a GetObject of a marker, the body whole.

        Raises:
            S3Error: No such key (404), a condition failed (412), an unsatisfiable range (416),
                the origin failed or the marker changed during the read (503).
        """
        return self._answer(bucket, key, headers, "GET")

    def _answer(self, bucket: str, key: str, headers: Mapping[str, str], method: str) -> Answer:
        try:
            meta = self.upstream.call("head_object", Bucket=bucket, Key=key)
        except S3Error as exc:
            if exc.status == 404:
                raise no_such_key(key) from exc
            raise
        size = int(meta.get("ContentLength") or 0)
        etag = quote_etag(str(meta.get("ETag") or ""))
        modified = _utc(meta.get("LastModified"))
        validators = [("etag", etag), ("last-modified", http_date(modified))]
        if check_conditions(headers, etag=etag, last_modified=modified, method=method) is (
            Condition.NOT_MODIFIED
        ):
            return Answer(304, validators)
        byte_range = parse_range(headers.get("range"), size)
        lo, hi = (0, size) if byte_range is None else (byte_range.start, byte_range.end)
        answer = Answer(
            200 if byte_range is None else 206,
            [
                *validators,
                ("content-length", str(hi - lo)),
                ("content-type", str(meta.get("ContentType") or "binary/octet-stream")),
                ("accept-ranges", "bytes"),
            ],
        )
        if byte_range is not None:
            answer.headers.append(("content-range", content_range(byte_range, size)))
        if method == "GET" and lo < hi:
            answer.first = self._bytes(bucket, key, etag, lo, hi)
        return answer

    def _bytes(self, bucket: str, key: str, etag: str, lo: int, hi: int) -> bytes:
        try:
            got = self.upstream.call(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi - 1}", IfMatch=etag
            )
        except S3Error as exc:
            if exc.status not in (404, 412):
                raise
            raise _changed() from exc
        body = got.get("Body")
        if not isinstance(body, bytes) or len(body) != hi - lo:
            raise _changed()
        return body


def _changed() -> S3Error:
    return S3Error("ServiceUnavailable", 503, "the object changed during the read; retry")


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(1970, 1, 1, tzinfo=UTC)
