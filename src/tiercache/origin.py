"""The origin: the wrapped fsspec filesystem, with retries, a deadline, a concurrency limit
and version pinning.

Every origin request goes through :meth:`FsspecOrigin._call`: transient errors are retried with
full-jitter exponential backoff (tenacity) under one deadline; not-found, permission and
changed-version errors are not. A response of the wrong length is an error (retried), never
returned. S3 and Azure reads carry ``If-Match: <ETag seen in info>``, so an object overwritten
between two block reads yields a 412 (:class:`~tiercache.errors.ObjectChangedError`), never
mixed bytes.

S3 reads call the client's ``get_object`` directly, not through s3fs's own retry loop, so retries
are not stacked three deep (ours, s3fs's, botocore's). botocore's retries (the user's client
configuration) still run inside one of our attempts; :mod:`tiercache.attempts` watches them, so
they are counted and the final error names the last answer and the number of requests.
Completed reads feed :class:`~tiercache.lateness.Pace`, from which the chain decides when a
block fetch is late (:meth:`FsspecOrigin.expected_s`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fsspec import AbstractFileSystem
from fsspec.asyn import sync
from fsspec.implementations.local import LocalFileSystem
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from .attempts import Attempts, failure_message, recording, retries_among
from .context import ReadContext
from .errors import ObjectChangedError, OriginError, OriginTimeoutError, ShortReadError
from .hedging import Hedging
from .lateness import Pace
from .localversion import local_version
from .origin_info import info_from_raw, target_identity
from .origin_pins import pinned_reads_for
from .origin_s3 import RangeNotSatisfiableError, S3Reads, is_s3
from .protocol import ObjectInfo
from .stats import Histogram, OriginCounters

T = TypeVar("T")
logger = logging.getLogger(__name__)


# Errors that say something true about the object (or the caller): retrying cannot help.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    RangeNotSatisfiableError,
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
# Backoff: full jitter, uniform in [0, min(max, multiplier * 2**attempt)] seconds.
_BACKOFF_MULTIPLIER_S = 0.05
_BACKOFF_MAX_S = 2.0


def is_transient(exc: BaseException) -> bool:
    """Return whether an origin error is worth retrying."""
    return isinstance(exc, Exception) and not isinstance(exc, PERMANENT_ERRORS)


class FsspecOrigin:
    """Any fsspec filesystem as the origin of a tier chain.

    Args:
        fs: The target filesystem (s3fs, gcsfs, adlfs, file, memory, ...).
        retries: Retries of a failed request (``TIERCACHE_ORIGIN_RETRIES``).
        timeout_s: Deadline of one read, retries and backoff included
            (``TIERCACHE_ORIGIN_TIMEOUT``).
        concurrency: Requests in flight at once in this process (``TIERCACHE_ORIGIN_CONCURRENCY``).
        sleep: Sleep function used between retries; injected by tests.
        hedge: Send a read late to its first byte again (``TIERCACHE_ORIGIN_HEDGE``).
        hedge_budget: The share of reads that may be hedged (``TIERCACHE_ORIGIN_HEDGE_BUDGET``).
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        *,
        retries: int,
        timeout_s: float,
        concurrency: int,
        sleep: Callable[[float], None] = time.sleep,
        hedge: bool = True,
        hedge_budget: float = 0.05,
    ) -> None:
        self.fs = fs
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._protocol: str = protocol
        self._target = target_identity(protocol, fs.storage_options)
        # s3fs exposes its async client call; through it reads carry If-Match and tell us the
        # object's ETag and size from the same response.
        self._s3 = is_s3(fs, protocol)
        self.retries = retries
        self.timeout_s = timeout_s
        self.counters = OriginCounters()
        #: Latency of each origin request (attempt), per purpose and block class.
        self.latency = Histogram()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._sleep = sleep
        self._degraded = False
        #: First-byte latency and throughput of completed reads (see :meth:`expected_s`).
        #: When a read late to its first byte is sent again (:mod:`tiercache.hedging`).
        self.hedging = Hedging(enabled=hedge and hedge_budget > 0, budget=hedge_budget)
        self.pace = Pace(self.hedging.observe)
        self._s3_reads = S3Reads(fs, self.pace, self.hedging) if self._s3 else None
        #: Reads pinned to the version an info names (None: the target's cat_file, unpinned).
        self._pinned = pinned_reads_for(fs, protocol, self.pace, self.hedging)
        self._local = isinstance(fs, LocalFileSystem)

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

    def expected_s(self, nbytes: int, /) -> float | None:
        """Return how long a read of ``nbytes`` should take, from the reads observed so far.

        None while nothing (or nothing long enough) has been observed.
        """
        return self.pace.expected_s(nbytes)

    def forget(self, path: str, /) -> None:
        """Drop what the target filesystem itself caches for ``path`` (s3fs's listing cache).

        Called when a pinned read found the object changed: the next info must come from the
        store, not from a listing the target cached before the change.
        """
        try:
            self.fs.invalidate_cache(path)
        except Exception:  # a target without a cache, or a broken one: nothing to drop
            logger.debug("invalidate_cache(%r) failed on the target", path, exc_info=True)

    def info(self, path: str, /, *, deadline: float | None = None, ctx: ReadContext) -> ObjectInfo:
        """Return the object's info (one metadata request, retried).

        Args:
            path: The object.
            deadline: Absolute :func:`time.monotonic` time to finish by; default now plus
                :attr:`timeout_s`.
            ctx: What the requests are counted as.
        """
        what = f"info of {path!r}"
        raw = self._call(
            self._info_attempt(path), what, deadline_arg=True, deadline=deadline, ctx=ctx
        )
        info = info_from_raw(path, raw)
        if self._local and raw.get("type") == "file":
            version = local_version(path, raw)
            if version is not None:
                info = dataclasses.replace(info, version=version)
        return info

    def _info_attempt(self, path: str) -> Callable[[float], Mapping[str, Any]]:
        """One info request, bounded by the seconds left: an async target (s3fs, gcsfs, adlfs)
        is awaited on its loop with that timeout, so a HEAD that hangs ends at the deadline,
        not at the client's own socket timeouts; a sync target is called as it is."""
        fs: Any = self.fs
        # A wrapper (fsspec's DirFileSystem) says async_impl whatever it wraps: ask the inner one.
        inner = getattr(fs, "fs", fs)
        if getattr(fs, "async_impl", False) and getattr(inner, "async_impl", False):

            def bounded(remaining_s: float) -> Mapping[str, Any]:
                raw: Mapping[str, Any] = sync(fs.loop, fs._info, path, timeout=remaining_s)
                return raw

            return bounded
        return lambda _remaining_s: fs.info(path)

    def read_object(
        self, path: str, start: int | None, end: int | None, /, *, ctx: ReadContext
    ) -> bytes:
        """Return ``[start, end)`` of whatever ``path`` is, as the target reads it, unpinned.

        For paths that are not files (a directory, say): whatever the target does, tiercache
        does, with the same retries, deadline and error mapping as every other request.
        """
        what = f"read of {path!r} [{start}, {end})"
        return self._call(
            lambda: bytes(self.fs.cat_file(path, start=start, end=end)), what, ctx=ctx
        )

    def read(
        self,
        info: ObjectInfo,
        start: int,
        end: int,
        /,
        *,
        deadline: float | None = None,
        ctx: ReadContext,
    ) -> bytes:
        """Return exactly ``[start, end)`` of the version of the object described by ``info``.

        Args:
            info: The object version to read (S3: pinned with If-Match on its ETag).
            start: First byte.
            end: End of the range (exclusive).
            deadline: Absolute :func:`time.monotonic` time by which the read, retries included,
                must end; default now plus :attr:`timeout_s`. A reader that narrows a late
                block fetch passes the deadline its read started with.
            ctx: What the requests are counted as.

        Raises:
            ObjectChangedError: The object is no longer at that version (S3 412).
            ShortReadError: The origin kept answering with the wrong length.
            OriginError: The origin kept failing until the retries or the deadline ran out.
        """
        expected = end - start
        pinned = self._pinned

        def attempt(remaining_s: float) -> bytes:
            if pinned is not None and pinned.can_pin(info):
                data = pinned.read(info, start, end, remaining_s)
            else:
                began = time.perf_counter()
                data = self.fs.cat_file(info.path, start=start, end=end)
                self.pace.observe(len(data), time.perf_counter() - began)
            if len(data) != expected:
                raise ShortReadError(
                    f"{info.path!r} [{start}, {end}): origin returned {len(data)} bytes, "
                    f"expected {expected}"
                )
            return bytes(data)

        return self._call(
            attempt,
            f"read of {info.path!r} [{start}, {end})",
            deadline_arg=True,
            deadline=deadline,
            ctx=ctx,
        )

    def read_discover(
        self,
        path: str,
        start: int,
        end: int,
        /,
        *,
        deadline: float | None = None,
        ctx: ReadContext,
    ) -> tuple[bytes, ObjectInfo]:
        """Read ``[start, end)`` (clipped at EOF) and learn the object's info from the response.

        Only for S3 (:attr:`can_discover`). A range that starts past EOF costs a second request
        (the store answers 416; the info then comes from a HEAD) and returns ``b""``.
        ``deadline`` and ``ctx`` are as for :meth:`read`.
        """
        s3 = self._s3_reads
        if s3 is None:
            raise NotImplementedError(f"{self._protocol} cannot learn info from a ranged read")

        def attempt(remaining_s: float) -> tuple[bytes, ObjectInfo]:
            data, resp, size = s3.get_discovering(path, start, end, remaining_s)
            raw = {"name": path, "size": size, "type": "file"}
            for name in ("ETag", "LastModified", "VersionId", "ContentType"):
                if resp.get(name) is not None:
                    raw[name] = resp[name]
            return bytes(data), info_from_raw(path, raw)

        what = f"read of {path!r} [{start}, {end})"
        try:
            return self._call(attempt, what, deadline_arg=True, deadline=deadline, ctx=ctx)
        except RangeNotSatisfiableError:
            pass
        return b"", self.info(path, deadline=deadline, ctx=ctx)

    def _call(
        self,
        fn: Callable[..., T],
        what: str,
        *,
        deadline_arg: bool = False,
        deadline: float | None = None,
        ctx: ReadContext,
    ) -> T:
        """Run ``fn`` with retries, backoff, the deadline and the concurrency limit.

        Args:
            fn: One attempt; called with the seconds left when ``deadline_arg`` is true.
            what: What is being done, for errors and logs ("read of 'b/k' [0, 10)").
            deadline_arg: Pass the seconds left to ``fn``.
            deadline: Absolute :func:`time.monotonic` time to finish by; default now plus
                :attr:`timeout_s`.
            ctx: What the requests are counted as.
        """
        began = time.monotonic()
        if deadline is None:
            deadline = began + self.timeout_s
        end_by = deadline
        budget_s = end_by - began
        attempts = Attempts()  # the requests the S3 client sent, over every attempt

        def attempt() -> T:
            return self._attempt(fn, what, end_by, attempts, deadline_arg=deadline_arg, ctx=ctx)

        def count_retry(state: RetryCallState) -> None:
            self.counters.add("retries", ctx=ctx)
            if not self._degraded:  # one WARNING per episode of origin errors
                self._degraded = True
                error = state.outcome.exception() if state.outcome else None
                logger.warning("origin errors, retrying: %s: %s", what, error)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1) | stop_before_delay(max(0.0, budget_s)),
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
            tries = int(retrying.statistics.get("attempt_number", 1))
            # A deadline (ours, or the client's, asyncio's FSTimeoutError alike) stays a
            # TimeoutError for the caller: `except TimeoutError` catches an origin deadline.
            error = OriginTimeoutError if isinstance(exc, TimeoutError) else OriginError
            raise error(failure_message(what, exc, tries, attempts, budget_s)) from exc
        if self._degraded and retrying.statistics.get("attempt_number", 1) == 1:
            self._degraded = False  # a first attempt succeeded: the episode is over
            logger.info("origin answering again")
        return result

    def _attempt(
        self,
        fn: Callable[..., T],
        what: str,
        end_by: float,
        attempts: Attempts,
        *,
        deadline_arg: bool,
        ctx: ReadContext,
    ) -> T:
        """One attempt of :meth:`_call`: a concurrency slot, the request, its counters."""
        remaining_s = end_by - time.monotonic()
        if remaining_s <= 0:
            raise TimeoutError(f"{what}: the deadline passed before an attempt could start")
        if not self._slots.acquire(timeout=remaining_s):
            raise TimeoutError(f"{what}: origin concurrency limit busy until the deadline")
        began = time.perf_counter()
        seen = (len(attempts.answers), attempts.hedges, attempts.hedges_won, attempts.unanswered)
        raised = True
        try:
            self.counters.add("requests", ctx=ctx)
            with recording(attempts):
                result = fn(remaining_s) if deadline_arg else fn()
            raised = False
        except FileNotFoundError:
            # An answer, not a failure: pyarrow and pandas probe for optional files
            # (_common_metadata, _metadata) on every dataset, and operators watch "errors".
            self.counters.add("not_found", ctx=ctx)
            raise
        except RangeNotSatisfiableError:
            raise  # an answer too: the range starts past the end (read_discover)
        except BaseException:
            self.counters.add("errors", ctx=ctx)
            raise
        finally:
            self._slots.release()
            self.latency.observe(time.perf_counter() - began, ctx=ctx)
            self._count_client_requests(attempts, seen, raised, ctx)
        if isinstance(result, bytes):
            self.counters.add("bytes", len(result), ctx=ctx)
        elif isinstance(result, tuple) and isinstance(result[0], bytes):
            self.counters.add("bytes", len(result[0]), ctx=ctx)
        return result

    def _count_client_requests(
        self, attempts: Attempts, seen: tuple[int, int, int, int], raised: bool, ctx: ReadContext
    ) -> None:
        """Count the requests the client sent in one attempt beyond the first.

        The attempt itself is counted as one request (and one error if it raised); here come
        the client's other requests (its retries, and s3fs's listing after a HEAD answered
        404), a hedge (:mod:`tiercache.hedging`), the retries among them, and its failed
        requests other than the one the attempt raised from. ``seen``: the recording's answers,
        hedges, hedges won and unanswered requests before the attempt.
        """
        answers = attempts.answers[seen[0] :]
        hedges, won = attempts.hedges - seen[1], attempts.hedges_won - seen[2]
        if hedges:
            self.counters.add("hedges", hedges, ctx=ctx)
        if won:
            self.counters.add("hedges_won", won, ctx=ctx)
        # A watched client records an answer per request; a hedged loser cancelled before its
        # answer came records none. An unwatched one (GCS, Azure) records nothing at all.
        extra = max(hedges, len(answers) + attempts.unanswered - seen[3] - 1)
        if extra > 0:
            self.counters.add("requests", extra, ctx=ctx)
        retries = retries_among(answers)
        if retries:
            self.counters.add("retries", retries, ctx=ctx)
        failed = sum(answer.failed for answer in answers)
        if raised and answers and answers[-1].failed:
            failed -= 1  # the attempt's own error, counted already
        if failed > 0:
            self.counters.add("errors", failed, ctx=ctx)
