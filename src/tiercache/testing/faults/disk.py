"""Disk-tier faults for chaos tests: corrupt, truncate and delete the files of a disk cache.

The disk tier keeps its diskcache files under ``<directory>/tiercache-v1/``: the database
``cache.db`` and one ``*.val`` file per value too large to live in the database. These functions
damage those files in place, as a failing disk or a careless operator would, so a test can check
that the tier answers a miss (and never wrong bytes) and rewrites the entry:

- :func:`cache_files` lists the value files;
- :func:`flip_bytes` inverts bytes of a file, :func:`truncate_file` shortens it;
- :func:`corrupt_cache` does either to a seeded, reproducible sample of the value files;
- :func:`remove_directory` deletes the whole cache directory (``rm -rf``).

A full or read-only disk needs a real filesystem: see :mod:`tiercache.testing.servers.tmpfs`.

Example::

    tier.put(key, block)
    damaged = corrupt_cache(tmp_dir, fraction=0.5, seed=1)
    assert tier.get(key) in (block, None)  # a miss, never corrupt bytes
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Final

CORRUPTION_MODES: Final = frozenset({"flip", "truncate"})


def cache_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Return the value files (``*.val``) under ``directory``, recursively, sorted.

    Args:
        directory: The disk tier's directory (``TIERCACHE_DISK_DIR``; the files are in its
            ``tiercache-v1`` subdirectory), or any directory above or inside it.

    Returns:
        The paths in sorted order; an empty list if there are none or ``directory`` is missing.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*.val") if path.is_file())


def flip_bytes(path: str | os.PathLike[str], *, offset: int | None = None, count: int = 1) -> None:
    """Invert (XOR ``0xFF``) ``count`` consecutive bytes of a file in place.

    Every flipped byte differs from before, the file keeps its size, and the rest of its bytes
    are unchanged.

    Args:
        path: The file.
        offset: The first byte to flip. Default ``None``: the bytes are centered in the file,
            from ``(size - count) // 2``.
        count: How many bytes to flip (>= 1). Default 1.

    Raises:
        ValueError: ``count`` is below 1, or the bytes to flip are not all within the file
            (an empty file has none).
        OSError: The file cannot be opened for reading and writing.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    with open(path, "r+b") as file:
        size = os.fstat(file.fileno()).st_size
        start = (size - count) // 2 if offset is None else offset
        if start < 0 or start + count > size:
            raise ValueError(
                f"cannot flip {count} byte(s) at offset {start} of {os.fspath(path)!r}, "
                f"a file of {size} bytes"
            )
        file.seek(start)
        data = file.read(count)
        file.seek(start)
        file.write(bytes(byte ^ 0xFF for byte in data))


def truncate_file(path: str | os.PathLike[str], size: int) -> None:
    """Shorten a file in place to ``size`` bytes, keeping its first ``size`` bytes.

    Args:
        path: The file.
        size: The new size, from 0 to the current size (a file is never extended).

    Raises:
        ValueError: ``size`` is negative or larger than the file.
        OSError: The file is missing or cannot be written.
    """
    current = os.stat(path).st_size
    if not 0 <= size <= current:
        raise ValueError(f"size must be within [0, {current}] for {os.fspath(path)!r}, got {size}")
    os.truncate(path, size)


def corrupt_cache(
    directory: str | os.PathLike[str],
    *,
    fraction: float = 1.0,
    seed: int = 0,
    mode: str = "flip",
) -> list[Path]:
    """Damage a seeded sample of a disk cache's value files; return the damaged files, sorted.

    The sample is ``ceil(fraction * n)`` of the ``n`` non-empty value files (empty files cannot
    be damaged), chosen with ``random.Random(seed)``, so the same seed on the same files damages
    the same ones. ``"flip"`` inverts the middle byte of each (:func:`flip_bytes`),
    ``"truncate"`` cuts each to half its size (:func:`truncate_file`). The database is left
    alone.

    Args:
        directory: As for :func:`cache_files`.
        fraction: The share of the files to damage, from 0 (none) to 1 (all). Default 1.
        seed: Seed of the sample. Default 0.
        mode: ``"flip"`` (the default) or ``"truncate"``.

    Returns:
        The damaged files, sorted; empty if there were none to damage.

    Raises:
        ValueError: ``mode`` is not ``"flip"`` or ``"truncate"``, or ``fraction`` is not
            within [0, 1].
    """
    if mode not in CORRUPTION_MODES:
        raise ValueError(f"mode must be one of {sorted(CORRUPTION_MODES)}, got {mode!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction!r}")
    candidates = [path for path in cache_files(directory) if path.stat().st_size > 0]
    chosen = sorted(random.Random(seed).sample(candidates, math.ceil(fraction * len(candidates))))
    for path in chosen:
        if mode == "flip":
            flip_bytes(path)
        else:
            truncate_file(path, path.stat().st_size // 2)
    return chosen


def remove_directory(directory: str | os.PathLike[str]) -> None:
    """Delete a directory and everything in it, like ``rm -rf``; do nothing if it is missing.

    Files that disappear while it works (a cache evicting entries) are not an error.

    Raises:
        OSError: Something in it cannot be deleted, or ``directory`` is not a directory.
    """
    if sys.version_info >= (3, 12):
        shutil.rmtree(directory, onexc=_ignore_missing)
    else:
        shutil.rmtree(directory, onerror=_ignore_missing_info)


def _ignore_missing(function: object, path: str, error: BaseException) -> None:
    if not isinstance(error, FileNotFoundError):
        raise error


def _ignore_missing_info(
    function: object, path: str, info: tuple[type[BaseException], BaseException, object]
) -> None:
    _ignore_missing(function, path, info[1])
