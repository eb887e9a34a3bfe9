"""The version of a file on a local (POSIX) filesystem: what its owner cannot set back.

Size and mtime alone are not a version: ``cp -p``, ``rsync -t`` and ``os.utime`` write new bytes
of the same size and put the old mtime back. The inode number and the ctime (the time of the last
change of the inode, which every write and every ``utime`` sets to *now* and which no system
call sets to anything else) cannot be set back by a user, so the version is
``size:mtime_ns:ino=INODE:ctime=CTIME_NS``.

One gap remains: a kernel may stamp ctime from a coarse clock (a tick: 1 to 10 ms; Linux 6.13
and later stamp it finely once it has been looked at), so two writes within one tick can leave
the same ctime. A file is therefore never versioned within :data:`RACY_S` of its last change:
the look waits until that much has passed since the ctime, then looks again. Any later write
then gets a later ctime, so the version it returns names these bytes only, and it is the same in
every process (the disk and Redis tiers share blocks by it). The wait costs at most
:data:`RACY_S`, once, for a file read within that long of its last change. A file that changed
between fsspec's info and this look, or whose ctime is in the future (a network filesystem
stamps ctime with the server's clock), gets a version of its own that nothing else shares.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Mapping
from typing import Any

#: A file is not versioned until this long (seconds) after its last change: two clock ticks.
RACY_S = 0.02
#: Looks at a file that keeps changing before it gets a version of its own.
_LOOKS = 5


def local_version(path: str, raw: Mapping[str, Any]) -> str | None:
    """Return the version of the local file ``path`` whose fsspec info is ``raw``.

    None when the file cannot be examined (gone, or not a regular file): the caller falls back
    to the info alone.
    """
    racy_ns = int(RACY_S * 1e9)
    for _ in range(_LOOKS):
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
        age_ns = time.time_ns() - st.st_ctime_ns
        if not agrees or age_ns < 0:
            break  # changed since the info, or a clock not ours: a version of its own
        if age_ns >= racy_ns:
            return version
        time.sleep((racy_ns - age_ns) / 1e9)  # past the ctime's tick, then look again
    return f"{version}:racy={uuid.uuid4().hex}"
