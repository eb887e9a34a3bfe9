"""Writes to a local directory target (``file``, or ``dir`` over ``file``) that are whole or not
at all, as S3's are: the bytes go to a temporary file beside the key, which is then renamed over
it, or hard-linked to its name for a put-if-absent (``link`` fails if the name exists)."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import suppress
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from tiercache.gateway.fsspec_listing import TEMP_PREFIX


def local_path(fs: AbstractFileSystem, path: str) -> str | None:
    """The local file ``path`` names on a local (or directory-rooted local) target, else None."""
    if isinstance(fs, LocalFileSystem):
        return str(fs._strip_protocol(path))
    if isinstance(fs, DirFileSystem) and isinstance(fs.fs, LocalFileSystem):
        return str(fs.fs._strip_protocol(fs._join(path)))
    return None


def write_local(local: str, data: bytes | Path, create_only: bool) -> None:
    """Write a local file whole or not at all: a temporary file in its directory (never listed,
    :data:`TEMP_PREFIX`), then renamed over it, or hard-linked to its name (``create_only``:
    ``link`` fails if the name exists, atomically)."""
    directory = os.path.dirname(local)
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
    # Created as open() creates files (0666 less the umask), not mkstemp's 0600.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, Path):
                with data.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
            else:
                out.write(data)
        if create_only:
            os.link(temporary, local)
        else:
            os.replace(temporary, local)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
