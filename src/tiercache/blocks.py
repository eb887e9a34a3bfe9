"""Pure block arithmetic: ranges, block spans, contiguous runs and block classes.

Nothing here does I/O; everything is property-tested against plain slicing.

Range semantics are Python slice semantics, which is what fsspec documents for ``cat_file``:
``None`` means "from the start" / "to the end", a negative offset counts from the end, offsets
are clamped to ``[0, size]``, and an inverted range is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

#: ``metadata`` blocks (footers, Delta log files, small objects) may be shared across pods
#: through Redis; ``data`` blocks stay in the pod (memory and disk tiers only).
BlockKind = Literal["data", "metadata"]

#: pyarrow reads the last 64 KiB of a Parquet file to find its footer: blocks touching that
#: tail are ``metadata``.
FOOTER_TAIL_BYTES = 64 * 1024
#: Objects up to this size are ``metadata`` as a whole (Delta commits, small JSON, schemas).
SMALL_OBJECT_BYTES = 256 * 1024

_DELTA_LOG = "/_delta_log/"
# Delta commit files, checkpoints (single and multi-part, v2 UUID-named) and checksum files
# are written once and never changed: a new version is a new file name.
_DELTA_IMMUTABLE = re.compile(
    r"^\d{20}\.(json|crc|checkpoint\.parquet|checkpoint\.\d{10}\.\d{10}\.parquet"
    r"|checkpoint\.[0-9a-f-]{36}\.(json|parquet))$"
)
# Data files written by Delta/Spark writers carry a UUID: a rewrite is a new name.
_UUID_DATA_FILE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_range(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """Resolve a possibly open or negative range against an object's size.

    Args:
        start: First byte (inclusive); ``None`` is 0, a negative value counts from the end.
        end: Last byte (exclusive); ``None`` is ``size``, a negative value counts from the end.
        size: The object's size in bytes.

    Returns:
        ``(start, end)`` with ``0 <= start <= end <= size``; an inverted range gives
        ``start == end``.
    """
    s, e, _ = slice(start, end).indices(size)
    return s, max(s, e)


def block_span(start: int, end: int, block_size: int) -> range:
    """Return the indices of the blocks that cover the non-empty range ``[start, end)``."""
    return range(start // block_size, (end - 1) // block_size + 1)


def block_bounds(index: int, block_size: int, size: int) -> tuple[int, int]:
    """Return the byte range ``[start, end)`` of block ``index`` in an object of ``size`` bytes."""
    start = index * block_size
    return start, min(start + block_size, size)


def contiguous_runs(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Group block indices into runs ``[first, last + 1)`` of consecutive indices.

    Each run is fetched from the origin with one request.

    >>> contiguous_runs([0, 1, 2, 5, 7, 8])
    [(0, 3), (5, 6), (7, 9)]
    """
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indices)):
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def is_delta_log(path: str) -> bool:
    """Return whether ``path`` lies in a Delta table's ``_delta_log`` directory."""
    return _DELTA_LOG in path or path.startswith("_delta_log/")


def is_immutable(path: str) -> bool:
    """Return whether the object at ``path`` is never rewritten in place.

    True for Delta commit JSON, checkpoints and checksum files, and for data files whose name
    carries a UUID (Delta and Spark writers). ``_delta_log/_last_checkpoint`` is always mutable.
    Object info of immutable paths is trusted for as long as it stays cached; other paths are
    re-checked after ``TIERCACHE_INFO_TTL``. Reads stay version-pinned either way.
    """
    name = path.rsplit("/", 1)[-1]
    if is_delta_log(path):
        return _DELTA_IMMUTABLE.match(name) is not None
    return name.endswith(".parquet") and _UUID_DATA_FILE.search(name) is not None


def metadata_start(path: str, size: int) -> int:
    """Return the offset after which a block is ``metadata``: blocks ending after it are.

    0 for small objects and Delta log files (all metadata), else the start of the footer tail.
    """
    if size <= SMALL_OBJECT_BYTES or is_delta_log(path):
        return 0
    return size - FOOTER_TAIL_BYTES


def classify(path: str, index: int, block_size: int, size: int) -> BlockKind:
    """Return the class of one block: ``metadata`` (footer, Delta log, small object) or ``data``."""
    block_end = min((index + 1) * block_size, size)
    return "metadata" if block_end > metadata_start(path, size) else "data"
