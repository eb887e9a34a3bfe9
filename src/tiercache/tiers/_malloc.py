"""Give memory freed by the RAM tier back to the operating system (glibc's ``malloc_trim``).

A cached block is one ``bytes`` object of the block size, allocated by the thread that read it,
so in that thread's malloc arena, and freed by whichever thread evicts it. glibc keeps freed
memory in its arena for reuse by the same arena; with several reader threads, the arenas
together keep tens of MiB beyond the RAM budget (measured: 40-80 MiB with 8 readers and a
64 MiB budget; docs/operations.md, "glibc's malloc arenas"). ``malloc_trim(0)`` hands the free
pages of every arena back (``madvise``), which keeps a process's memory at its budgets plus the
reads in flight.

Cost: about 1.5 ms after 20 MiB were freed across 8 arenas, 20 µs when there is nothing to give
back. The RAM tier calls :func:`release` once per quarter of its budget evicted (at least 8 MiB),
outside its lock, so a cold read pays it once per that many bytes; hot reads never do. On a libc
without ``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _load() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load()


def release() -> None:
    """Return free memory of every malloc arena to the operating system (glibc only)."""
    if _TRIM is not None:
        _TRIM(0)


#: Whether :func:`release` does anything on this platform.
AVAILABLE = _TRIM is not None
