"""The version of a file on a local (POSIX) filesystem: what its owner cannot set back.

Size and mtime alone are not a version: ``cp -p``, ``rsync -t`` and ``os.utime`` write new bytes
of the same size and put the old mtime back. The inode number and the ctime (the time of the last
change of the inode, which every write and every ``utime`` sets to *now* and which no system
call sets to anything else) cannot be set back by a user, so the version is
``size:mtime_ns:ino:ctime_ns``.

One gap remains: the kernel stamps ctime from a coarse clock (a tick, 1 to 10 ms), and a network
filesystem stamps it from the server's clock. Two writes within one tick leave the same ctime.
So a file whose ctime is less than :data:`RACY_S` before the moment it was examined is *racy*
(the idea git uses for its index): its version gets a unique suffix, so blocks read under it are
never reused by a later look at the file. Once its ctime is older than that, its version is the
plain one, which differs from every racy one: the file is read once more, then cached as usual.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Mapping
from typing import Any

#: A file changed less than this long (seconds) before it was examined is racy.
RACY_S = 2.0


def local_version(path: str, raw: Mapping[str, Any]) -> str | None:
    """Return the version of the local file ``path`` whose fsspec info is ``raw``.

    None when the file cannot be examined (gone, or not a regular file): the caller falls back
    to the info alone. If the file changed between the info and this look (its size, inode or
    mtime differ from ``raw``), the version is racy.
    """
    now_ns = time.time_ns()
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    version = f"{st.st_size}:{st.st_mtime_ns}:ino={st.st_ino}:ctime={st.st_ctime_ns}"
    agrees = (
        st.st_size == raw.get("size")
        and st.st_ino == raw.get("ino", st.st_ino)
        and st.st_mtime == raw.get("mtime", st.st_mtime)
    )
    if not agrees or st.st_ctime_ns >= now_ns - int(RACY_S * 1e9):
        version += f":racy={uuid.uuid4().hex}"
    return version
