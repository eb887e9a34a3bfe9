"""The disk tier: an ephemeral, crash-safe block cache on the pod's ``emptyDir``.

The only module that imports diskcache. Every open passes the size limit, the eviction policy and
the lock timeout explicitly (diskcache otherwise reuses the settings stored in the directory and
waits 60 s on a locked database). Values are framed (:mod:`tiercache.tiers.framing`): a block is
served only after its header matches the key it was asked for and its checksum matches its bytes; a
mismatch, a short value or an unreadable file is a miss, and the entry is deleted and counted.

The tier never raises out of its constructor. A directory that cannot be used (read-only,
unwritable, not a directory, full, or not private to this user: see :mod:`.safedir`) leaves the
tier *unavailable*: calls raise
:class:`~tiercache.errors.TierUnavailableError` (the chain reports the tier ``disabled``) and the
tier tries to open again, at most once per ``retry_after_s``, when the guard lets a probe through.

The directory (its layout, the checks that it is private to this user, the shared lock that
guards clearing it, and whether it is still the directory that was checked) is
:mod:`.diskdir`. Value files are created ``O_EXCL | O_NOFOLLOW`` and read ``O_NOFOLLOW`` by
:class:`_PrivateDisk`, which also refuses a value file that is not private and every value
diskcache would unpickle.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import diskcache

from tiercache.errors import IntegrityError, TierTimeoutError, TierUnavailableError
from tiercache.protocol import BlockKey, BlockKind
from tiercache.tiers import safedir
from tiercache.tiers.diskdir import CacheDirectory, is_full, out_of_space
from tiercache.tiers.framing import HEADER_BYTES, frame, parse_header, verify

logger = logging.getLogger(__name__)

# The default of TIERCACHE_DISK_EVICTION; measured in docs/benchmarks.md, "Disk tier".
EVICTION_POLICY = "least-recently-stored"


class _PrivateDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache is untyped
    """diskcache's file storage, private to this user and never led astray by a symlink.

    diskcache creates subdirectories with ``os.makedirs`` (``0777`` less the umask: group-writable
    under ``umask 002``), and creates and reads value files with ``open()``, which follows a
    symlink. Here subdirectories are created ``0700``, value files ``O_EXCL | O_NOFOLLOW`` and
    ``0600``, and a value file is read only if it is a regular file of ours that nobody else may
    write, opened ``O_NOFOLLOW``: anything else is an :class:`IntegrityError` (a miss; the entry
    is deleted). The path above the file (the tier's directory and the two levels of
    subdirectories) lies in a ``0700`` directory checked to be ours: only this user (or root)
    can put anything there.
    """

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_RAW:
            return super().fetch(mode, filename, value, read)
        if mode != diskcache.core.MODE_BINARY or filename is None:
            # tiercache stores bytes only: a row that says pickle or text was not written by it,
            # and what is on disk is never unpickled.
            raise IntegrityError(f"disk tier: refusing a value stored in diskcache mode {mode}")
        path = os.path.join(self._directory, filename)
        try:
            fd = safedir.open_private_reader(path, euid=os.geteuid())
        except safedir.UnsafePathError as exc:
            # Not an OSError for diskcache, which takes one for "deleted meanwhile": a miss that
            # would leave the entry in place.
            raise IntegrityError(f"disk tier: {exc}") from exc
        reader = open(fd, "rb")  # noqa: SIM115  # returned open when read=True
        if read:
            return reader
        with reader:
            return reader.read()

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None) -> int:
        relative = os.path.relpath(os.path.dirname(full_path), self._directory)
        for count in range(1, 11):  # as diskcache: a cull may remove an empty subdirectory
            safedir.make_private_subdirs(self._directory, relative)
            try:
                fd = safedir.create_private_file(full_path)
            except OSError:
                if count == 10:
                    raise
                continue
            with open(fd, mode.replace("x", "w"), encoding=encoding) as writer:
                size = 0
                for chunk in iterator:
                    size += len(chunk)
                    writer.write(chunk)
                return size
        raise AssertionError("unreachable")  # pragma: no cover


class DiskTier:
    """A block cache in a local directory, shared safely by the processes of one pod.

    Args:
        directory: The emptyDir mount (``TIERCACHE_DISK_DIR``); the tier works in a subdirectory.
        capacity_bytes: Size limit (``TIERCACHE_DISK_BYTES``).
        lock_timeout_s: How long one operation may wait for the database lock
            (``TIERCACHE_DISK_TIMEOUT``); past it, the operation fails as a timeout.
        clear_on_start: Wipe the cache on open when no other live process uses it
            (``TIERCACHE_DISK_CLEAR_ON_START``).
        retry_after_s: Wait between attempts to open an unavailable directory, and between
            write attempts after the disk was found full.
        eviction_policy: diskcache eviction policy.
        clock: Monotonic clock; injected by tests.
    """

    name = "disk"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        capacity_bytes: int,
        lock_timeout_s: float = 0.05,
        clear_on_start: bool = False,
        retry_after_s: float = 5.0,
        eviction_policy: str = EVICTION_POLICY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self._dir = CacheDirectory(self.directory)
        self.root = self._dir.root
        self.capacity_bytes = capacity_bytes
        self.lock_timeout_s = lock_timeout_s
        self.retry_after_s = retry_after_s
        self.eviction_policy = eviction_policy
        self._clear_on_start = clear_on_start
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._cache: diskcache.Cache | None = None
        self._retired: list[diskcache.Cache] = []
        self._next_open = 0.0
        self._full_until = 0.0
        self._full = False
        self._volume = 0
        self.last_error: str | None = None
        # Tier-specific counters (the chain counts hits, misses, errors, timeouts, corrupt).
        self.full_skips = 0
        self.reopens = 0
        self.open_failures = 0
        self._open(first=True)

    # -- state ---------------------------------------------------------------------------------

    @property
    def directory_warning(self) -> str | None:
        """Who else could rename entries of ``directory`` (see :func:`safedir.parent_warning`)."""
        return self._dir.warning

    @property
    def warnings(self) -> list[str]:
        """What works but is unsafe: who else could swap the directory (``directory_warning``)."""
        return [self.directory_warning] if self.directory_warning else []

    @property
    def timeout_s(self) -> float:
        """The time budget of one call (``TIERCACHE_DISK_TIMEOUT``, also the lock timeout)."""
        return self.lock_timeout_s

    @property
    def ready(self) -> bool:
        """Whether the directory is open and usable now."""
        return self._cache is not None

    def stats(self) -> dict[str, object]:
        """Tier-specific figures, merged into ``stats()["tiers"]["disk"]``."""
        # No database access here: stats() runs on the caller's thread, outside the guard, and
        # must not hang on a hung disk. The volume is refreshed by writes, on the guard's threads.
        return {
            "directory": str(self.root),
            "used_bytes": self._volume,
            "capacity_bytes": self.capacity_bytes,
            "full_skips": self.full_skips,
            "reopens": self.reopens,
            "open_failures": self.open_failures,
            "last_error": self.last_error,
            "directory_warning": self.directory_warning,
        }

    # -- the Tier protocol ---------------------------------------------------------------------

    def accepts(self, kind: BlockKind, /) -> bool:
        """Take every class of block."""
        return True

    def get(self, key: BlockKey, /) -> bytes | None:
        """Return the verified block stored under ``key``, or ``None``.

        Raises:
            IntegrityError: The stored value failed its checks (it has been deleted).
            TierTimeoutError: The database stayed locked past the lock timeout.
            TierUnavailableError: The directory cannot be used.
        """
        cache = self._usable()
        digest = key.digest()
        try:
            with self._lock_timeouts():
                value = cache.get(digest, default=None, read=True, retry=False)
        except IntegrityError:  # a value file refused by _PrivateDisk
            with contextlib.suppress(Exception):
                cache.delete(digest, retry=False)
            raise
        except sqlite3.OperationalError as exc:
            if self._dir.moved():
                self._reopen_later()  # the directory went away under us: a miss, not a failure
                return None
            if out_of_space(self.root):
                # No inode left for this thread's connection (SQLite creates the WAL and shared
                # memory files again once every connection closed): the disk is full, a miss.
                self._disk_full(exc)
                return None
            raise
        if value is None:
            return None
        try:
            return self._unframe(key, value)
        except (IntegrityError, OSError) as exc:
            with contextlib.suppress(Exception):
                cache.delete(digest, retry=False)
            if isinstance(exc, IntegrityError):
                raise
            raise IntegrityError(f"disk tier: unreadable value: {exc}") from exc

    def put(self, key: BlockKey, data: bytes, /) -> None:
        """Store a framed block. A full disk skips the write (counted) instead of failing.

        Raises:
            TierTimeoutError: The database stayed locked past the lock timeout.
            TierUnavailableError: The directory cannot be used.
            TierError: The write failed otherwise.
        """
        if self._clock() < self._full_until:
            with self._lock:
                self.full_skips += 1
            return
        cache = self._usable(check_root=True)
        try:
            with self._lock_timeouts():
                framed = frame(key, data)
                value: bytes | io.BytesIO = framed
                if len(framed) >= cache.disk.min_file_size:
                    # As a file object: diskcache writes bytes values by iterating a BytesIO,
                    # i.e. line by line (thousands of small writes per MiB of binary data);
                    # a reader is copied in 4 MiB chunks. Small values stay in SQLite.
                    value = io.BytesIO(framed)
                cache.set(
                    key.digest(),
                    value,
                    read=value is not framed,
                    tag=_object_tag(key.target, key.path),
                )
                self._volume = int(cache.volume())
            if self._full:
                self._full = False
                logger.info("disk tier: %s has space again; writes resumed", self.root)
        except (OSError, sqlite3.OperationalError) as exc:
            if is_full(exc) or out_of_space(self.root):
                self._disk_full(exc)
                return
            raise

    def delete_object(self, target: str, path: str, /) -> None:
        """Forget every block (all versions) of one object."""
        cache = self._usable()
        with self._lock_timeouts():
            cache.evict(_object_tag(target, path), retry=False)

    def release_thread(self) -> None:
        """Close the calling thread's database connection (diskcache keeps one per thread).

        The guard calls it on each of its worker threads as the thread ends, so that closing
        the tier leaves no SQLite connection (and no file descriptor) behind.
        """
        for cache in [self._cache, *self._retired]:
            if cache is not None:
                cache.close()

    def close(self) -> None:
        """Close the database and release the directory lock; the tier stays closed."""
        with self._lock:
            self._closed = True
            self._close_locked()
            for cache in self._retired:  # this thread's connections to databases replaced
                with contextlib.suppress(Exception):
                    cache.close()
            self._dir.release()

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock_timeouts(self) -> Iterator[None]:
        """Turn diskcache's lock timeout into the tier's typed timeout."""
        try:
            yield
        except diskcache.Timeout as exc:
            raise TierTimeoutError(
                f"disk tier: database locked for more than {self.lock_timeout_s}s"
            ) from exc

    def _unframe(self, key: BlockKey, value: bytes | IO[bytes]) -> bytes:
        if isinstance(value, bytes):  # small values live in the database row
            view = memoryview(value)
            algorithm, length, checksum = parse_header(key, view[:HEADER_BYTES])
            payload: bytes | memoryview = view[HEADER_BYTES:]
            verify(algorithm, length, checksum, payload)
            return bytes(payload)
        with value:  # larger values are files: read the header, then the payload, one copy
            algorithm, length, checksum = parse_header(key, value.read(HEADER_BYTES))
            data = value.read(length + 1)  # one byte more: a long file is as wrong as a short one
            verify(algorithm, length, checksum, data)
            return data

    def _usable(self, *, check_root: bool = False) -> diskcache.Cache:
        """Return the open cache, reopening it if it is gone or due for another attempt."""
        if self._closed:  # a call still running when the tier was closed must not reopen it
            raise TierUnavailableError("disk tier is closed")
        for old in self._retired:  # this thread's connection to a replaced database, if any:
            old.close()  # closed now, so deleted files do not stay open (cheap when none)
        cache = self._cache
        if cache is not None and check_root and self._dir.moved():
            self._reopen_later()
            cache = None
        if cache is None:
            if self._clock() < self._next_open:
                raise TierUnavailableError(f"disk tier unavailable: {self.last_error}")
            cache = self._open(first=False)
            if cache is None:
                raise TierUnavailableError(f"disk tier unavailable: {self.last_error}")
        return cache

    def _reopen_later(self) -> None:
        """Drop the database whose directory was removed or replaced; the next call reopens."""
        with self._lock:
            if self._cache is None:
                return  # another thread got here first
            self._close_locked()
        logger.warning("disk tier: %s was removed or replaced; reopening it", self.root)

    def _open(self, *, first: bool) -> diskcache.Cache | None:
        with self._lock:
            if self._cache is not None or self._closed:
                return self._cache
            try:
                cache = self._dir.open(self._new_cache, clear=first and self._clear_on_start)
            except Exception as exc:  # OSError, sqlite3.Error, diskcache.Timeout, and anything
                # else a library rejects: the tier never raises out of its constructor.
                self.open_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._next_open = self._clock() + self.retry_after_s
                if first or self.open_failures == 1:  # the guard logs the episode at WARNING
                    logger.info(
                        "disk tier: cannot use %s (%s); retrying every %.0f s",
                        self.directory,
                        self.last_error,
                        self.retry_after_s,
                    )
                return None
            if not first:
                self.reopens += 1
                logger.info("disk tier: %s is usable again", self.root)
            self._volume = int(cache.volume())
            # The opening thread (the constructor's, at start) may never call again: it keeps
            # no connection; a thread that does reconnects lazily.
            cache.close()
            self._cache = cache
            self.last_error = None
            return cache

    def _new_cache(self) -> diskcache.Cache:
        """Open diskcache in the checked directory, every setting passed explicitly."""
        return diskcache.Cache(
            str(self.root),
            timeout=self.lock_timeout_s,
            disk=_PrivateDisk,
            size_limit=self.capacity_bytes,
            eviction_policy=self.eviction_policy,
            tag_index=True,
            statistics=False,
        )

    def _close_locked(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):
                cache.close()
            # Other threads close their connections to it at their next call (_usable) or when
            # they end (release_thread). The last few are kept; older ones are left to GC.
            self._retired = [*self._retired[-7:], cache]

    def _disk_full(self, exc: BaseException) -> None:
        with self._lock:
            self.full_skips += 1
            first = not self._full
            self._full = True
        self._full_until = self._clock() + self.retry_after_s
        self.last_error = f"disk full: {exc}"
        # One WARNING per episode: later attempts that find the disk still full log at DEBUG.
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "disk tier: %s is full (%s); skipping writes, retrying every %.0f s",
            self.root,
            exc,
            self.retry_after_s,
        )


def _object_tag(target: str, path: str) -> str:
    """The diskcache tag shared by every block of one object, for :meth:`DiskTier.delete_object`."""
    return BlockKey(target, path, "", 0, 0).digest()


__all__ = ["EVICTION_POLICY", "DiskTier"]
