"""The disk tier's directory: its layout, the checked open, and whether it is still the one checked.

Layout: ``<TIERCACHE_DISK_DIR>/tiercache-v1/`` holds the diskcache database and value files
(directories ``0700``, files ``0600``); ``<TIERCACHE_DISK_DIR>/tiercache-v1.lock`` is held with a
shared ``flock`` by every process using the cache, so that ``clear_on_start`` wipes the cache only
when no live process shares it.

Directory safety (docs/disk-tier.md, "Directory safety"): every open checks that the directory,
the lock file and the database files belong to this user, are not writable by others and are no
symlinks (:mod:`.safedir`), and that the path diskcache and SQLite open leads to the directory
that was checked (its device and inode, checked again before every write: :meth:`moved`).

The database itself is opened by a function the tier passes in, so that :mod:`.disk` stays the
only importer of diskcache. Also here: whether a failure means that the filesystem is full.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from tiercache.tiers import safedir

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock, no clearing guard
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

SUBDIR = "tiercache-v1"
LOCK_NAME = f"{SUBDIR}.lock"
#: The SQLite database and the files SQLite keeps beside it (write-ahead log, shared memory).
DATABASE_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = ("database or disk is full",)


class _Database(Protocol):
    def close(self) -> None: ...


_D = TypeVar("_D", bound=_Database)


class CacheDirectory:
    """The directory one disk tier works in, opened only once checked to be private to this user.

    Not thread-safe: the tier calls :meth:`open` and :meth:`release` under its own lock.

    Args:
        directory: The emptyDir mount (``TIERCACHE_DISK_DIR``); the cache lives in
            :data:`SUBDIR` below it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = directory / SUBDIR
        #: Who else could rename entries of ``directory`` (see :func:`safedir.parent_warning`).
        self.warning: str | None = None
        self._lock_fd: int | None = None
        # The (st_dev, st_ino) of the directory checked at open and of its database.
        self._root_id: tuple[int, int] | None = None
        self._db_id: tuple[int, int] | None = None

    def open(self, open_database: Callable[[], _D], *, clear: bool) -> _D:
        """Check the directory, take the shared lock, and open the database there.

        Args:
            open_database: Opens the database in :attr:`root` (called once the directory and
                the database files passed their checks).
            clear: Empty the directory first if no other live process holds its lock
                (``TIERCACHE_DISK_CLEAR_ON_START``, at the tier's first open).

        Raises:
            UnsafePathError: The directory, the lock file or a database file is not private, or
                the directory was replaced while it was being opened.
            OSError: A path cannot be created or opened.
            sqlite3.Error: The database cannot be opened.
        """
        euid = os.geteuid()
        safedir.make_dirs(str(self.directory))
        parent_fd = safedir.open_parent(str(self.directory))
        warning = safedir.parent_warning(str(self.directory), os.fstat(parent_fd), euid=euid)
        if warning is not None and warning != self.warning:
            logger.info("disk tier: %s", warning)  # doctor and stats() show it too
        self.warning = warning
        lock_fd: int | None = None
        try:
            if self._lock_fd is None and fcntl is not None:
                lock_fd = safedir.open_private_file(
                    parent_fd, LOCK_NAME, shown=str(self.directory / LOCK_NAME), euid=euid
                )
            root_fd = safedir.open_private_dir(parent_fd, SUBDIR, shown=str(self.root), euid=euid)
            try:
                if lock_fd is not None:
                    assert fcntl is not None
                    if clear:
                        self._clear_if_alone(lock_fd, root_fd)
                    fcntl.flock(lock_fd, fcntl.LOCK_SH)
                    self._lock_fd, lock_fd = lock_fd, None
                if not os.access(self.root, os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable", str(self.root))
                with contextlib.suppress(FileExistsError):
                    # Created here, 0600: SQLite gives its WAL and shared-memory files the mode
                    # of the database.
                    os.close(
                        safedir.create_private_file(
                            "cache.db", dir_fd=root_fd, shown=str(self.root / "cache.db")
                        )
                    )
                self._check_database(root_fd, euid)
                database = open_database()
                try:
                    # What diskcache and SQLite opened by name is what was checked: the path
                    # leads to the same directory, and the files SQLite made are private too.
                    root = os.fstat(root_fd)
                    by_name = os.lstat(self.root)
                    if (by_name.st_dev, by_name.st_ino) != (root.st_dev, root.st_ino):
                        raise safedir.UnsafePathError(
                            f"{self.root} was replaced while it was being opened"
                        )
                    database_st = self._check_database(root_fd, euid)
                except BaseException:
                    database.close()
                    raise
            finally:
                os.close(root_fd)
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
            os.close(parent_fd)
        self._root_id = (root.st_dev, root.st_ino)
        self._db_id = (database_st.st_dev, database_st.st_ino)
        return database

    def moved(self) -> bool:
        """Whether the directory (or its database) is not the one last opened and checked.

        Checked before every write, so that nothing is written into an unlinked database, nor
        through a directory put in the place of the one checked. Neither is followed if it is a
        symlink: a symlink is not the directory we opened.
        """
        try:
            root = os.lstat(self.root)
            database = os.lstat(self.root / "cache.db")
        except OSError:
            return True
        return (root.st_dev, root.st_ino) != self._root_id or (
            database.st_dev,
            database.st_ino,
        ) != self._db_id

    def release(self) -> None:
        """Release the directory lock (the tier is closing)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_database(self, root_fd: int, euid: int) -> os.stat_result:
        """Check the database files in the directory ``root_fd``; return the database's stat."""
        found = [
            safedir.check_private_file(root_fd, name, shown=str(self.root / name), euid=euid)
            for name in DATABASE_FILES
        ]
        if found[0] is None:
            raise FileNotFoundError(errno.ENOENT, "no database", str(self.root / "cache.db"))
        return found[0]

    def _clear_if_alone(self, lock_fd: int, root_fd: int) -> None:
        """Empty the (checked) directory if no other live process holds the directory lock."""
        assert fcntl is not None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            logger.info("disk tier: %s is in use by another process; not clearing it", self.root)
            return
        safedir.clear(root_fd)
        logger.info("disk tier: cleared %s (TIERCACHE_DISK_CLEAR_ON_START)", self.root)


def out_of_space(root: Path) -> bool:
    """Whether the filesystem holding ``root`` has no free blocks or no free inodes.

    diskcache hides ENOSPC when it cannot create a value's subdirectory (no inodes left): what
    surfaces is a FileNotFoundError for the file. The filesystem's own figures tell the truth.
    """
    try:
        st = os.statvfs(root)
    except OSError:
        return False
    return st.f_bavail == 0 or (st.f_files > 0 and st.f_favail == 0)


def is_full(exc: BaseException) -> bool:
    """Whether a failed write says the disk (or the user's quota) is full."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    return isinstance(exc, sqlite3.OperationalError) and any(m in str(exc) for m in _SQLITE_FULL)
