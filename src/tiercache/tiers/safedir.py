"""Directory safety for the disk tier: use only what belongs to this process's user.

Like OpenSSH's ``StrictModes``. The disk tier's directory (``<TIERCACHE_DISK_DIR>/tiercache-v1``),
its lock file beside it, and every file it opens in it must be owned by the process's effective
uid, must not be writable by group or others, and are never reached through a symlink (opened
with ``O_NOFOLLOW``, or checked with ``lstat``). The parent, ``TIERCACHE_DISK_DIR`` itself, may
be a symlink (operators mount volumes that way). Who else may rename entries in the parent (its
owner, or anyone who may write to it when its sticky bit is not set) is reported as a warning
(:func:`parent_warning`), not refused: a Kubernetes ``emptyDir`` is ``0777``. A path that breaks a
rule raises :class:`UnsafePathError`, whose
message names the path and the problem; nothing here changes a path it did not create.

The checks themselves (:func:`private_problem`, :func:`parent_problem`, :func:`parent_warning`)
are pure functions of a ``stat`` result; the rest opens paths in the order that makes the checks
hold for what is used: a directory is opened ``O_NOFOLLOW``, its descriptor checked with
``fstat``, and what is checked in it is reached relative to that descriptor. Errors name the full
path (``shown``), not the name relative to a descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator

#: The group/other write bits.
_GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH
# POSIX flags, looked up so that importing works where one is missing (the tier then reports the
# failed open as its reason instead).
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
#: A descriptor that only names a directory (Linux); it needs no read permission on it.
_PATH: int = getattr(os, "O_PATH", os.O_RDONLY)
#: Create a new file, never through a symlink, never an existing one.
_CREATE = os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
#: ``O_NOFOLLOW`` refuses a symlink with ELOOP (Linux, macOS) or EMLINK (FreeBSD); with
#: ``O_DIRECTORY``, something that is not a directory gives ENOTDIR.
_SYMLINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


class UnsafePathError(PermissionError):
    """A path the disk tier would use is not private to this user; the message says why."""


def private_problem(path: str, st: os.stat_result, *, euid: int, directory: bool) -> str | None:
    """Say why ``path`` is not private to ``euid``, or return ``None`` if it is.

    Args:
        path: The path, as shown in the message.
        st: Its ``lstat`` (or the ``fstat`` of a descriptor opened ``O_NOFOLLOW``).
        euid: The user it must belong to (the process's effective uid).
        directory: Whether it must be a directory (else a regular file).
    """
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink; refusing to follow it"
    if directory and not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid != euid:
        return f"{path} is owned by uid {st.st_uid}, not {euid}"
    if st.st_mode & _GROUP_OTHER_WRITE:
        return f"{path} is writable by group/others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def parent_problem(path: str, st: os.stat_result) -> str | None:
    """Say why ``path`` cannot hold the tier's directory, or return ``None``.

    Args:
        path: The directory (``TIERCACHE_DISK_DIR``), as shown in the message.
        st: Its ``stat`` (a symlink to it is fine: the operator made it).
    """
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    return None


def parent_warning(path: str, st: os.stat_result, *, euid: int) -> str | None:
    """Say who else could rename entries of the parent ``path``, or return ``None``.

    Such a user could move the tier's directory away and put their own in its place. The tier
    still refuses a directory that is not its user's own when it opens it, and checks that what
    it writes to is what it checked; what is left is a race between a check and a use. A
    Kubernetes ``emptyDir`` is ``0777`` without the sticky bit, but only the pod's containers can
    write to it: when they all run as one user, nobody else can. So this is a warning that
    ``tiercache doctor`` and ``stats()`` show, not a refusal (see docs/disk-tier.md).

    Args:
        path: The directory (``TIERCACHE_DISK_DIR``), as shown in the message.
        st: Its ``stat``.
        euid: The process's effective uid.
    """
    if st.st_uid not in (euid, 0):
        return (
            f"{path} is owned by uid {st.st_uid}, not {euid} or root: its owner could replace "
            "the cache directory"
        )
    if st.st_mode & _GROUP_OTHER_WRITE and not st.st_mode & stat.S_ISVTX:
        return (
            f"{path} is writable by group/others without the sticky bit "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): a user who can write there could swap the "
            "cache directory; fine for a Kubernetes emptyDir whose containers all run as one user"
        )
    return None


def make_dirs(path: str) -> None:
    """Create ``path`` and its missing parents, each ``0700`` (never more, whatever the umask)."""
    missing = []
    head = os.path.abspath(path)
    while not os.path.lexists(head):
        missing.append(head)
        head = os.path.dirname(head)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process got there first
            os.mkdir(directory, 0o700)


def open_parent(path: str) -> int:
    """Open the directory ``path`` (following a symlink) and check it as a parent.

    Returns:
        A descriptor of the directory (``O_PATH`` where the platform has it); the caller closes it.

    Raises:
        UnsafePathError: It is not a directory.
        OSError: It cannot be opened.
    """
    fd = os.open(path, _PATH | _DIRECTORY | _CLOEXEC)
    try:
        problem = parent_problem(path, os.fstat(fd))
        if problem is not None:
            raise UnsafePathError(problem)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_dir(dir_fd: int, name: str, *, shown: str, euid: int) -> int:
    """Create (``0700``) or open the directory ``name`` of ``dir_fd``, and check it is private.

    Only a directory created here is ever chmodded (to ``0700``, against the umask).

    Returns:
        A read-only descriptor of the checked directory; the caller closes it.

    Raises:
        UnsafePathError: It is a symlink, not a directory, someone else's, or writable by others.
        OSError: It cannot be created or opened.
    """
    created = True
    try:
        with _naming(name, shown):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        created = False
    fd = _open_nofollow(
        dir_fd, name, os.O_RDONLY | _DIRECTORY | _CLOEXEC, shown=shown, directory=True
    )
    try:
        st = os.fstat(fd)
        if created and st.st_uid == euid and stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)  # the umask took an owner bit away
            st = os.fstat(fd)
        _require_private(shown, st, euid=euid, directory=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_file(dir_fd: int, name: str, *, shown: str, euid: int) -> int:
    """Create (``0600``) or open the regular file ``name`` of ``dir_fd`` read-only, and check it.

    Returns:
        A descriptor of the checked file; the caller closes it.

    Raises:
        UnsafePathError: It is a symlink, not a regular file, someone else's, or writable by others.
        OSError: It cannot be created or opened.
    """
    try:
        with _naming(name, shown):
            fd = os.open(name, _CREATE | os.O_RDONLY, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        # Not blocking: a FIFO planted under the name must not hang the open; fstat refuses it.
        fd = _open_nofollow(dir_fd, name, os.O_RDONLY | _NONBLOCK | _CLOEXEC, shown=shown)
    else:
        os.fchmod(fd, 0o600)  # created here: 0600 whatever the umask
    return _private_or_closed(fd, shown, euid=euid)


def create_private_file(path: str, *, dir_fd: int | None = None, shown: str | None = None) -> int:
    """Create the file ``path`` (relative to ``dir_fd`` if given), ``0600``, open for writing.

    Never follows a symlink and never opens an existing file: the file is new, and ours.

    Raises:
        FileExistsError: Something exists under that name.
    """
    with _naming(path, shown or path):
        fd = os.open(path, _CREATE | os.O_WRONLY, 0o600, dir_fd=dir_fd)
    os.fchmod(fd, 0o600)  # created here: 0600 whatever the umask
    return fd


def check_private_file(dir_fd: int, name: str, *, shown: str, euid: int) -> os.stat_result | None:
    """Check the file ``name`` of ``dir_fd`` without following it; ``None`` if it does not exist.

    Raises:
        UnsafePathError: It is a symlink, not a regular file, someone else's, or writable by others.
    """
    try:
        with _naming(name, shown):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    _require_private(shown, st, euid=euid, directory=False)
    return st


def open_private_reader(path: str, *, euid: int) -> int:
    """Open the file ``path`` for reading, refusing a symlink and a file that is not private.

    Returns:
        A descriptor of the checked file; the caller closes it.

    Raises:
        UnsafePathError: It is a symlink, not a regular file, someone else's, or writable by others.
        OSError: It cannot be opened (``FileNotFoundError`` when it is gone).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        if exc.errno in _SYMLINK_ERRNOS and os.path.islink(path):
            raise UnsafePathError(f"{path} is a symlink; refusing to follow it") from exc
        raise
    return _private_or_closed(fd, path, euid=euid)


def make_private_subdirs(base: str, relative: str) -> None:
    """Create the missing directories of ``relative`` below ``base``, each ``0700``.

    ``base`` is a directory checked private: nobody else can create anything in it. Errors are
    left to the open that follows (diskcache does the same: another process may be removing an
    empty subdirectory at that moment, and the caller retries).
    """
    path = base
    for part in relative.split(os.sep):
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
            if stat.S_IMODE(os.stat(path).st_mode) != 0o700:
                os.chmod(path, 0o700)  # created here; the umask took an owner bit away
        except OSError:
            continue


def clear(dir_fd: int) -> None:
    """Remove everything in the directory ``dir_fd``, never following a symlink; keep it."""
    for name in os.listdir(dir_fd):
        with contextlib.suppress(OSError):  # removed meanwhile, or not removable: left
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)


def _open_nofollow(
    dir_fd: int, name: str, flags: int, *, shown: str, directory: bool = False
) -> int:
    """Open ``name`` of ``dir_fd`` with ``O_NOFOLLOW``; a symlink is an :class:`UnsafePathError`."""
    try:
        with _naming(name, shown):
            return os.open(name, flags | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in _SYMLINK_ERRNOS:
            raise
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            raise exc from None
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"{shown} is a symlink; refusing to follow it") from exc
        if directory and not stat.S_ISDIR(mode):
            raise UnsafePathError(f"{shown} is not a directory") from exc
        raise


@contextlib.contextmanager
def _naming(name: str, shown: str) -> Iterator[None]:
    """Let an ``OSError`` about ``name`` (relative to a descriptor) name ``shown`` instead."""
    try:
        yield
    except OSError as exc:
        if exc.filename == name:
            exc.filename = shown
        raise


def _private_or_closed(fd: int, shown: str, *, euid: int) -> int:
    """Return ``fd`` if it is a regular file private to ``euid``; else close it and raise."""
    try:
        _require_private(shown, os.fstat(fd), euid=euid, directory=False)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_private(shown: str, st: os.stat_result, *, euid: int, directory: bool) -> None:
    problem = private_problem(shown, st, euid=euid, directory=directory)
    if problem is not None:
        raise UnsafePathError(problem)


__all__ = [
    "UnsafePathError",
    "check_private_file",
    "clear",
    "create_private_file",
    "make_dirs",
    "make_private_subdirs",
    "open_parent",
    "open_private_dir",
    "open_private_file",
    "open_private_reader",
    "parent_problem",
    "parent_warning",
    "private_problem",
]
