"""The origin: the wrapped fsspec filesystem, with retries, a deadline, a concurrency limit
and version pinning.

Every origin request goes through :meth:`FsspecOrigin._call`: transient errors are retried with
full-jitter exponential backoff (tenacity) under one deadline; not-found, permission and
changed-version errors are not. A response of the wrong length is an error (retried), never
returned. S3 reads carry ``If-Match: <ETag seen in info>``, so an object overwritten between two
block reads yields a 412 (:class:`~tiercache.errors.ObjectChangedError`), never mixed bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fsspec import AbstractFileSystem
from fsspec.asyn import sync
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from .errors import ObjectChangedError, OriginError, ShortReadError
from .protocol import ObjectInfo
from .stats import Histogram, OriginCounters

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Errors that say something true about the object (or the caller): retrying cannot help.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    ObjectChangedError,
    ValueError,
    TypeError,
    NotImplementedError,
)
# Options that name the endpoint a filesystem talks to: part of the target identity.
_ENDPOINT_OPTIONS = ("endpoint_url", "host", "port", "account_name", "account_url", "project")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# Backoff: full jitter, uniform in [0, min(max, multiplier * 2**attempt)] seconds.
_BACKOFF_MULTIPLIER_S = 0.05
_BACKOFF_MAX_S = 2.0


def is_transient(exc: BaseException) -> bool:
    """Return whether an origin error is worth retrying."""
    return isinstance(exc, Exception) and not isinstance(exc, PERMANENT_ERRORS)


def target_identity(protocol: str, options: Mapping[str, Any]) -> str:
    """Return a digest naming a target store: its protocol and endpoint, never its credentials.

    Two filesystems with the same protocol and endpoint read the same objects, whatever
    credentials they use, so they share cache entries; different endpoints never do.
    """
    endpoint = {k: str(options[k]) for k in _ENDPOINT_OPTIONS if k in options}
    client_kwargs = options.get("client_kwargs")
    if isinstance(client_kwargs, Mapping) and "endpoint_url" in client_kwargs:
        endpoint["client_kwargs.endpoint_url"] = str(client_kwargs["endpoint_url"])
    text = json.dumps({"protocol": protocol, "endpoint": endpoint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def info_from_raw(path: str, raw: Mapping[str, Any]) -> ObjectInfo:
    """Build :class:`ObjectInfo` from a target's ``info`` dict.

    The version is the ETag, generation or version id where the store has one, else
    ``size:mtime``.
    """
    size = int(raw["size"])
    etag = raw.get("ETag") or raw.get("etag")
    for name in ("ETag", "etag", "generation", "VersionId", "version_id"):
        value = raw.get(name)
        if value not in (None, ""):
            version = f"{name}={value}"
            break
    else:
        mtime = next(
            (
                raw[k]
                for k in ("mtime", "LastModified", "last_modified", "updated", "created")
                if raw.get(k) is not None
            ),
            "",
        )
        version = f"{size}:{mtime}"
    return ObjectInfo(path=path, size=size, version=version, etag=etag, raw=dict(raw))


def _is_precondition_failed(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an exception it wraps) is an HTTP 412 from the store."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        response = getattr(seen, "response", None)
        if isinstance(response, Mapping):
            code = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_range_not_satisfiable(exc: BaseException) -> bool:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    return isinstance(response, Mapping) and (
        response.get("Error", {}).get("Code") == "InvalidRange"
        or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416
    )


class FsspecOrigin:
    """Any fsspec filesystem as the origin of a tier chain.

    Args:
        fs: The target filesystem (s3fs, gcsfs, adlfs, file, memory, ...).
        retries: Retries of a failed request (``TIERCACHE_ORIGIN_RETRIES``).
        timeout_s: Deadline of one read, retries and backoff included
            (``TIERCACHE_ORIGIN_TIMEOUT``).
        concurrency: Requests in flight at once in this process (``TIERCACHE_ORIGIN_CONCURRENCY``).
        sleep: Sleep function used between retries; injected by tests.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        *,
        retries: int,
        timeout_s: float,
        concurrency: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fs = fs
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._protocol: str = protocol
        self._target = target_identity(protocol, fs.storage_options)
        # s3fs exposes its async client call; through it reads carry If-Match and tell us the
        # object's ETag and size from the same response.
        self._s3 = protocol in ("s3", "s3a") and hasattr(fs, "_call_s3")
        self.retries = retries
        self.timeout_s = timeout_s
        self.counters = OriginCounters()
        #: Latency of each origin request (attempt), per purpose and block class.
        self.latency = Histogram()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._sleep = sleep
        self._degraded = False

    @property
    def target(self) -> str:
        """Digest of the target identity."""
        return self._target

    @property
    def protocol(self) -> str:
        """The target's protocol."""
        return self._protocol

    @property
    def can_discover(self) -> bool:
        """True for S3: a ranged GET reports the object's ETag and size."""
        return self._s3

    def forget(self, path: str, /) -> None:
        """Drop what the target filesystem itself caches for ``path`` (s3fs's listing cache).

        Called when a pinned read found the object changed: the next info must come from the
        store, not from a listing the target cached before the change.
        """
        try:
            self.fs.invalidate_cache(path)
        except Exception:  # a target without a cache, or a broken one: nothing to drop
            logger.debug("invalidate_cache(%r) failed on the target", path, exc_info=True)

    def info(self, path: str, /) -> ObjectInfo:
        """Return the object's info (one metadata request, retried)."""
        raw = self._call(lambda: self.fs.info(path), f"info of {path!r}")
        return info_from_raw(path, raw)

    def read(self, info: ObjectInfo, start: int, end: int, /) -> bytes:
        """Return exactly ``[start, end)`` of the version of the object described by ``info``.

        Raises:
            ObjectChangedError: The object is no longer at that version (S3 412).
            ShortReadError: The origin kept answering with the wrong length.
            OriginError: The origin kept failing until the retries or the deadline ran out.
        """
        expected = end - start

        def attempt(remaining_s: float) -> bytes:
            if self._s3 and info.etag:
                data, _ = self._s3_get(info.path, start, end, info.etag, remaining_s)
            else:
                data = self.fs.cat_file(info.path, start=start, end=end)
            if len(data) != expected:
                raise ShortReadError(
                    f"{info.path!r} [{start}, {end}): origin returned {len(data)} bytes, "
                    f"expected {expected}"
                )
            return bytes(data)

        return self._call(attempt, f"read of {info.path!r} [{start}, {end})", deadline_arg=True)

    def read_discover(self, path: str, start: int, end: int, /) -> tuple[bytes, ObjectInfo]:
        """Read ``[start, end)`` (clipped at EOF) and learn the object's info from the response.

        Only for S3 (:attr:`can_discover`). A range that starts past EOF costs a second request
        (the store answers 416; the info then comes from a HEAD) and returns ``b""``.
        """

        def attempt(remaining_s: float) -> tuple[bytes, ObjectInfo]:
            data, resp = self._s3_get(path, start, end, None, remaining_s)
            match = _CONTENT_RANGE.match(str(resp.get("ContentRange", "")))
            if match is None:
                raise ShortReadError(f"{path!r}: ranged GET answered without a Content-Range")
            first, last, size = (int(g) for g in match.groups())
            if first != start or len(data) != last - first + 1 or last >= min(end, size):
                raise ShortReadError(
                    f"{path!r} [{start}, {end}): got bytes {first}-{last} of {size} "
                    f"in {len(data)} bytes"
                )
            raw = {"name": path, "size": size, "type": "file"}
            for name in ("ETag", "LastModified", "VersionId", "ContentType"):
                if resp.get(name) is not None:
                    raw[name] = resp[name]
            return bytes(data), info_from_raw(path, raw)

        try:
            return self._call(attempt, f"read of {path!r} [{start}, {end})", deadline_arg=True)
        except OSError as exc:
            if not _is_range_not_satisfiable(exc):
                raise
        return b"", self.info(path)

    def _s3_get(
        self, path: str, start: int, end: int, etag: str | None, timeout_s: float
    ) -> tuple[bytes, Mapping[str, Any]]:
        fs: Any = self.fs
        bucket, key, version_id = fs.split_path(path)
        kwargs: dict[str, Any] = {"Range": f"bytes={start}-{end - 1}"}
        if etag:
            kwargs["IfMatch"] = etag
        if version_id:
            kwargs["VersionId"] = version_id

        async def get() -> tuple[bytes, Mapping[str, Any]]:
            resp = await fs._call_s3("get_object", Bucket=bucket, Key=key, **kwargs)
            try:
                body: bytes = await resp["Body"].read()
            finally:
                resp["Body"].close()
            return body, resp

        try:
            result: tuple[bytes, Mapping[str, Any]] = sync(fs.loop, get, timeout=timeout_s)
        except OSError as exc:
            if _is_precondition_failed(exc):
                raise ObjectChangedError(f"{path!r} changed: it no longer has ETag {etag}") from exc
            raise
        return result

    def _call(self, fn: Callable[..., T], what: str, *, deadline_arg: bool = False) -> T:
        """Run ``fn`` with retries, backoff, the deadline and the concurrency limit."""
        deadline = time.monotonic() + self.timeout_s

        def attempt() -> T:
            remaining_s = deadline - time.monotonic()
            if not self._slots.acquire(timeout=max(0.0, remaining_s)):
                raise TimeoutError(f"{what}: origin concurrency limit busy until the deadline")
            began = time.perf_counter()
            try:
                self.counters.add("requests")
                result = fn(remaining_s) if deadline_arg else fn()
            except FileNotFoundError:
                # An answer, not a failure: pyarrow and pandas probe for optional files
                # (_common_metadata, _metadata) on every dataset, and operators watch "errors".
                self.counters.add("not_found")
                raise
            except BaseException:
                self.counters.add("errors")
                raise
            finally:
                self._slots.release()
                self.latency.observe(time.perf_counter() - began)
            if isinstance(result, bytes):
                self.counters.add("bytes", len(result))
            elif isinstance(result, tuple) and isinstance(result[0], bytes):
                self.counters.add("bytes", len(result[0]))
            return result

        def count_retry(state: RetryCallState) -> None:
            self.counters.add("retries")
            if not self._degraded:  # one WARNING per episode of origin errors
                self._degraded = True
                error = state.outcome.exception() if state.outcome else None
                logger.warning("origin errors, retrying: %s: %s", what, error)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1) | stop_before_delay(self.timeout_s),
            wait=wait_random_exponential(multiplier=_BACKOFF_MULTIPLIER_S, max=_BACKOFF_MAX_S),
            retry=retry_if_exception(is_transient),
            before_sleep=count_retry,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            result = retrying(attempt)
        except PERMANENT_ERRORS:
            raise
        except OriginError:
            raise
        except Exception as exc:
            raise OriginError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        if self._degraded and retrying.statistics.get("attempt_number", 1) == 1:
            self._degraded = False  # a first attempt succeeded: the episode is over
            logger.info("origin answering again")
        return result
