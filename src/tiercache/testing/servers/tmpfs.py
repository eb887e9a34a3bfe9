"""Small tmpfs mounts for disk-fault tests: a real full disk, real inode exhaustion, a real
read-only filesystem.

Mounting needs root (or CAP_SYS_ADMIN). Where it is impossible, :func:`tmpfs` yields ``None`` and
the caller injects the equivalent ``OSError`` instead, saying so in its output.

Example::

    with tmpfs("/tmp/cache", size_bytes=2 << 20, inodes=64) as mount:
        if mount is None:
            ...  # inject OSError(ENOSPC) instead
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _options(size_bytes: int | None, inodes: int | None, read_only: bool | None) -> str:
    options = []
    if size_bytes is not None:
        options.append(f"size={size_bytes}")
    if inodes is not None:
        options.append(f"nr_inodes={inodes}")
    if read_only is not None:
        options.append("ro" if read_only else "rw")
    options.append("mode=0755")
    return ",".join(options)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=30)


@contextlib.contextmanager
def tmpfs(
    path: str | os.PathLike[str],
    *,
    size_bytes: int,
    inodes: int | None = None,
    read_only: bool = False,
) -> Iterator[Path | None]:
    """Mount a tmpfs at ``path`` for the duration of the block; yield ``None`` if impossible.

    Args:
        path: The mount point (created if missing).
        size_bytes: Capacity of the filesystem.
        inodes: Maximum number of inodes (files and directories), or the kernel default.
        read_only: Mount read-only.
    """
    mount_point = Path(path)
    mount_point.mkdir(parents=True, exist_ok=True)
    result = _run(
        "mount", "-t", "tmpfs", "-o", _options(size_bytes, inodes, read_only), "tmpfs",
        str(mount_point),
    )  # fmt: skip
    if result.returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        _run("umount", "-l", str(mount_point))


def remount(
    path: str | os.PathLike[str],
    *,
    size_bytes: int | None = None,
    inodes: int | None = None,
    read_only: bool | None = None,
) -> None:
    """Change a tmpfs mounted by :func:`tmpfs`: grow it, give it inodes, make it (not) read-only.

    Raises:
        OSError: The remount failed (the message has mount's error output).
    """
    options = "remount," + _options(size_bytes, inodes, read_only)
    result = _run("mount", "-o", options, str(path))
    if result.returncode != 0:
        raise OSError(f"remount {path} ({options}) failed: {result.stderr.strip()}")
