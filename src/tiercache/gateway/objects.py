"""Reads of object bytes for the gateway: HEAD and GET through the chain, block by block.

A GET is answered from the chain's blocks (RAM, disk, Redis, then the origin), never as a whole
object: the body is read in windows of :data:`WINDOW` bytes (each window one origin request at
most, for the blocks it misses) and sent as it comes, so memory stays bounded whatever the
object's size. A cold GET of an object the chain does not know costs one origin request, as a
direct client's does: the first window is a ranged read that learns the object's info from the
same response. Object info is trusted as the fsspec door trusts it: immutable paths (Delta
commits, checkpoints, UUID-named data files, :func:`tiercache.blocks.is_immutable`) while cached,
others for ``TIERCACHE_INFO_TTL``; ``_delta_log/_last_checkpoint``, which tells a reader where the
table's newest checkpoint is, is checked with the origin on every request (never served stale),
unless ``TIERCACHE_DELTA_LOG_TTL`` lets the log's listing be that old: then its answer (found or
not) is kept as long, so that a reader's snapshot is never newer in one part than the other.

Everything here blocks; the app runs it on worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tiercache.chain import TierChain
from tiercache.chain.resident import resident_parts
from tiercache.errors import ObjectChangedError, OriginError
from tiercache.gateway.httpsemantics import (
    ByteRange,
    Condition,
    check_conditions,
    content_range,
    http_date,
    parse_range,
    quote_etag,
)
from tiercache.gateway.s3errors import S3Error, no_such_key
from tiercache.gateway.seeds import parse_seeds
from tiercache.origin_info import info_from_raw
from tiercache.protocol import ObjectInfo

_LAST_CHECKPOINT = "_delta_log/_last_checkpoint"
#: ``_last_checkpoint`` answers kept at most (one per table read through the gateway).
MAX_POINTERS = 4096
#: Bytes read from the chain at once for a response body (whole blocks: a multiple of the
#: block size, at least one block).
WINDOW = 8 << 20


@dataclass
class Answer:
    """What a HEAD or GET answers: status, headers, and for a GET the body in pieces."""

    status: int
    headers: list[tuple[str, str]]
    first: bytes = b""
    #: The rest of the body, window by window (each call blocks on the chain).
    rest: Iterator[bytes] = field(default_factory=lambda: iter(()))
    #: Bytes of the body still to come after ``first`` (0: ``rest`` is empty).
    remaining: int = 0
    #: The whole body as buffers already in memory (RAM-resident blocks, none copied), sent
    #: one after another; when given, ``first`` and ``rest`` are empty.
    parts: list[bytes | memoryview] = field(default_factory=list)


class Objects:
    """HEAD and GET of objects through ``chain`` (the origin path of a key is ``bucket/key``)."""

    def __init__(self, chain: TierChain, *, log_ttl_s: float = 0.0) -> None:
        self.chain = chain
        self.window = max(chain.block_size, WINDOW // chain.block_size * chain.block_size)
        #: ``TIERCACHE_DELTA_LOG_TTL``: how long an answer about ``_last_checkpoint`` is kept.
        self.log_ttl_s = log_ttl_s
        # path -> (its info, or None: missing; when learnt, monotonic)
        self._pointers: dict[str, tuple[ObjectInfo | None, float]] = {}
        # info -> its ETag and Last-Modified headers (formatting a date costs more than the rest
        # of a RAM-resident answer); equal infos name the same version of the same object
        self._validator_cache: dict[ObjectInfo, list[tuple[str, str]]] = {}

    def resident(self, path: str, headers: Mapping[str, str], method: str) -> Answer | None:
        """Answer a HEAD or a GET at once, when the object's info is known and every byte asked
        is in RAM; None when anything would have to wait (the caller then takes :meth:`head`
        / :meth:`get` to a worker thread). Never blocks: for the event loop.

        Raises:
            S3Error: A condition failed (412) or the range is unsatisfiable (416).
        """
        pointer = path.endswith(_LAST_CHECKPOINT)  # its rules are _known's
        info = None if pointer else self.chain.info_table.peek(path)
        if info is None:
            return None
        answer = self._conditions(info, headers, method)
        if answer is not None:
            return answer
        byte_range = parse_range(headers.get("range"), info.size)
        status, length = self._extent(info, byte_range)
        if method == "HEAD":
            return Answer(status, self._headers(info, byte_range, length))
        lo, hi = (0, info.size) if byte_range is None else (byte_range.start, byte_range.end)
        if hi - lo > self.window:
            return None
        parts = resident_parts(self.chain, info, lo, hi) if lo < hi else []
        if parts is None:
            return None
        return Answer(status, self._headers(info, byte_range, length), parts=parts)

    def seed(self, body: bytes) -> dict[str, int]:
        """Take the object info of a seed request (:mod:`tiercache.gateway.seeds`); return how
        many objects were seeded and how many skipped (mutable paths).

        Raises:
            S3Error: A malformed seed document (400).
        """
        infos, skipped = parse_seeds(body)
        for info in infos:
            self.chain.seed_info(info)
        return {"seeded": len(infos), "skipped": skipped}

    def prefetch(self, path: str, headers: Mapping[str, str]) -> Answer:
        """Answer a GET marked ``x-tiercache-purpose: prefetch`` (``tiercache.warm`` through the
        gateway): the same bytes, every read it causes counted as prefetch, not demand.

        Raises:
            S3Error: No ``Range: bytes=a-b`` (400), no such key (404), the origin failed (503).
        """
        requested = headers.get("range")
        explicit = _explicit_range(requested) if requested else None
        if explicit is None or explicit[1] is None:
            raise S3Error("InvalidArgument", 400, "a prefetch needs a Range of bytes=a-b")
        try:
            data = self.chain.prefetch(path, *explicit)
        except FileNotFoundError as exc:
            raise no_such_key(path.partition("/")[2]) from exc
        except OriginError as exc:
            raise _unavailable(exc) from exc
        info = self.chain.info_table.peek(path) or self._info(path)
        byte_range = parse_range(requested, info.size)
        status, length = self._extent(info, byte_range)
        return Answer(status, self._headers(info, byte_range, length), data[:length])

    def head(self, path: str, headers: Mapping[str, str]) -> Answer:
        """Answer a HeadObject: the object's headers, 304 / 412 on conditions, no body."""
        info = self._info(path)
        answer = self._conditions(info, headers, "HEAD")
        if answer is not None:
            return answer
        byte_range = parse_range(headers.get("range"), info.size)
        status, length = self._extent(info, byte_range)
        return Answer(status, self._headers(info, byte_range, length))

    def get(self, path: str, headers: Mapping[str, str]) -> Answer:
        """Answer a GetObject: the first window read, the rest to come.

        Raises:
            S3Error: No such key (404), a condition failed (412), an unsatisfiable range (416),
                the origin failed (503).
        """
        requested = headers.get("range")
        first: bytes | None = None
        info = self._known(path)
        explicit = _explicit_range(requested)
        if info is None:
            try:
                if explicit is not None:  # cold: one ranged GET learns the info and the bytes
                    first = self._read_cold(path, *explicit)
                    info = self.chain.info_table.peek(path)
                if info is None:
                    info = self._info(path)
                    first = None  # the bytes above may be of another version than this info
            except S3Error as exc:
                if exc.status == 404:
                    self._keep_pointer(path, None)
                raise
            self._keep_pointer(path, info)
        answer = self._conditions(info, headers, "GET")
        if answer is not None:
            return answer
        byte_range = parse_range(requested, info.size)
        status, length = self._extent(info, byte_range)
        lo, hi = (0, info.size) if byte_range is None else (byte_range.start, byte_range.end)
        if first is not None and explicit is not None and lo == explicit[0]:
            first = first[: min(len(first), hi - lo)]
        else:
            first = self._read(info, lo, min(hi, self._window_end(lo))) if lo < hi else b""
        return Answer(
            status,
            self._headers(info, byte_range, length),
            first,
            self._windows(info, lo + len(first), hi),
            hi - lo - len(first),
        )

    # -- info ----------------------------------------------------------------------------------

    def _known(self, path: str) -> ObjectInfo | None:
        """The info the chain holds for ``path``, if it may be used without asking the origin.

        Raises:
            S3Error: ``path`` is a ``_last_checkpoint`` found missing less than
                ``log_ttl_s`` ago (404).
        """
        if path.endswith(_LAST_CHECKPOINT):
            kept = self._pointers.get(path)
            if kept is None or time.monotonic() - kept[1] > self.log_ttl_s:
                kept = self._listed_pointer(path)
            if kept is not None:
                if kept[0] is None:
                    raise no_such_key(path.partition("/")[2])
                return kept[0]
            self.chain.info_table.discard(path)  # the origin is asked
            return None
        return self.chain.info_table.peek(path)

    def _listed_pointer(self, path: str) -> tuple[ObjectInfo | None, float] | None:
        """``_last_checkpoint`` as a kept listing of its log shows it (``TIERCACHE_DELTA_LOG_TTL``:
        the listing another process shared through Redis serves here too), or None when no
        listing is kept: the pointer and the log then come from the same moment."""
        if self.log_ttl_s <= 0:
            return None
        entries = self.chain.cached_listing(path.rsplit("/", 1)[0], self.log_ttl_s)
        if entries is None:
            return None
        found: ObjectInfo | None = None
        for entry in entries:
            if str(entry.get("name", "")).strip("/") == path:
                try:
                    found = info_from_raw(path, entry)
                except (KeyError, TypeError, ValueError):
                    return None
                if found.etag is None:
                    return None
        self._keep_pointer(path, found)
        return found, time.monotonic()

    def _keep_pointer(self, path: str, info: ObjectInfo | None) -> None:
        """Keep the answer about a ``_last_checkpoint`` for ``log_ttl_s`` (when above 0)."""
        if self.log_ttl_s <= 0 or not path.endswith(_LAST_CHECKPOINT):
            return
        if len(self._pointers) >= MAX_POINTERS:
            self._pointers.clear()
        self._pointers[path] = (info, time.monotonic())

    def _info(self, path: str) -> ObjectInfo:
        try:
            info = self.chain.info(path)
        except FileNotFoundError as exc:
            raise no_such_key(path.partition("/")[2]) from exc
        except OriginError as exc:
            raise _unavailable(exc) from exc
        if info.raw.get("type", "file") != "file":
            raise no_such_key(path.partition("/")[2])
        return info

    # -- bytes ---------------------------------------------------------------------------------

    def _read_cold(self, path: str, start: int, end: int | None) -> bytes:
        """Read ``[start, end)`` of an object not known yet (at most one window)."""
        stop = self._window_end(start) if end is None else min(end, self._window_end(start))
        try:
            return self.chain.read_range(path, start, stop)
        except FileNotFoundError as exc:
            raise no_such_key(path.partition("/")[2]) from exc
        except OriginError as exc:
            raise _unavailable(exc) from exc

    def _read(self, info: ObjectInfo, lo: int, hi: int) -> bytes:
        try:
            return self.chain.read_pinned(info, lo, hi)
        except ObjectChangedError as exc:  # overwritten between its info and its bytes: retry
            self._pointers.pop(info.path, None)
            raise S3Error("ServiceUnavailable", 503, "the object changed during the read") from exc
        except OriginError as exc:
            raise _unavailable(exc) from exc

    def _windows(self, info: ObjectInfo, lo: int, hi: int) -> Iterator[bytes]:
        while lo < hi:
            end = min(hi, self._window_end(lo))
            yield self._read(info, lo, end)
            lo = end

    def _window_end(self, lo: int) -> int:
        """The end of the window starting at ``lo``: at a block border, ``window`` bytes on."""
        bs = self.chain.block_size
        return (lo // bs) * bs + self.window

    # -- headers -------------------------------------------------------------------------------

    def _conditions(
        self, info: ObjectInfo, headers: Mapping[str, str], method: str
    ) -> Answer | None:
        if _CONDITIONAL.isdisjoint(map(str.lower, headers)):
            return None  # the usual request: nothing to decide
        condition = check_conditions(
            headers, etag=_etag(info), last_modified=_last_modified(info), method=method
        )
        if condition is Condition.NOT_MODIFIED:
            return Answer(304, self._validators(info))
        return None

    @staticmethod
    def _extent(info: ObjectInfo, byte_range: ByteRange | None) -> tuple[int, int]:
        if byte_range is None:
            return 200, info.size
        return 206, byte_range.end - byte_range.start

    def _headers(
        self, info: ObjectInfo, byte_range: ByteRange | None, length: int
    ) -> list[tuple[str, str]]:
        headers = [
            *self._validators(info),
            ("content-length", str(length)),
            ("content-type", str(info.raw.get("ContentType") or "binary/octet-stream")),
            ("accept-ranges", "bytes"),
        ]
        if byte_range is not None:
            headers.append(("content-range", content_range(byte_range, info.size)))
        return headers

    def _validators(self, info: ObjectInfo) -> list[tuple[str, str]]:
        validators = self._validator_cache.get(info)
        if validators is None:
            if len(self._validator_cache) >= _VALIDATORS_KEPT:
                self._validator_cache.clear()
            validators = [("etag", _etag(info)), ("last-modified", http_date(_last_modified(info)))]
            self._validator_cache[info] = validators
        return list(validators)


#: The conditional request headers (any of them: :func:`check_conditions` decides).
_CONDITIONAL = frozenset(("if-match", "if-none-match", "if-modified-since", "if-unmodified-since"))
#: Objects whose validator headers are kept (the cache is emptied when full).
_VALIDATORS_KEPT = 4096


def _explicit_range(header: str | None) -> tuple[int, int | None] | None:
    """``(start, end)`` of a plain ``bytes=a-b`` (end ``b + 1``) or ``bytes=a-`` (end None)
    range, ``(0, None)`` without a header; None for a suffix range or anything else (which needs
    the object's size first)."""
    if header is None:
        return 0, None
    spec = header.strip()
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first, _, last = spec[len("bytes=") :].partition("-")
    first, last = first.strip(), last.strip()
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None  # S3 ignores such a range: the whole object, once the size is known
    return start, (int(last) + 1 if last else None)


def _etag(info: ObjectInfo) -> str:
    return quote_etag(str(info.etag or info.raw.get("ETag") or info.version))


def _last_modified(info: ObjectInfo) -> datetime:
    value: Any = info.raw.get("LastModified") or info.raw.get("last_modified")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime(1970, 1, 1, tzinfo=UTC)


def _unavailable(exc: OriginError) -> S3Error:
    code = "SlowDown" if isinstance(exc, TimeoutError) else "ServiceUnavailable"
    return S3Error(code, 503, f"the origin failed: {exc}; retry")
