"""Bounded warmup: prefetch the Parquet footers of a table's most recent files.

A new pod's first queries pay one or two object-store round trips per file just to learn what the
file holds (its footer). :func:`warm` pays them ahead of demand, in parallel and within limits:
the most recent files of a Delta table (by the add action's modification time) or of a prefix
(by last-modified), at most ``max_files`` files and ``max_bytes`` bytes, ``concurrency`` files
at a time, for at most ``time_limit_s`` seconds. For each file it reads the tail (where the
footer is), then, where the footer says the file has them, the page index and bloom filter
region between the last row group and the footer.

Warmup never fails startup because the object store is slow or a file is bad: at the time limit
it returns what it did, and errors are collected in the report. Its reads are counted as
prefetch (``stats()["prefetch"]``), not demand.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from fsspec import AbstractFileSystem

from tiercache.blocks import FOOTER_TAIL_BYTES
from tiercache.config import Settings
from tiercache.deadline import DaemonPool, call_within
from tiercache.errors import ConfigError
from tiercache.fs import TieredFileSystem
from tiercache.integrations.warm_gateway import ThroughGateway, reader_for

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_MAGIC = b"PAR1"
_TRAILER = 8  # footer length (4 bytes, little endian) + magic


@dataclass
class WarmReport:
    """What a warmup did.

    Attributes:
        target: The table URI or prefix warmed.
        files_found: Candidate files (before ``max_files``).
        files_attempted: Files whose warmup started.
        files_warmed: Files whose footer (and index regions, where present) is now cached.
        bytes: Bytes read ahead (footers, page indexes, bloom filters).
        duration_s: Wall time until the report was returned.
        stopped_by: ``None`` when every selected file was handled, else the limit that ended
            warmup early: ``"time_limit"`` or ``"max_bytes"``.
        errors: ``"path: error"`` for every file (or listing) that failed.
        through_gateway: Whether the embedded gateway was warmed (else the filesystem).
        listing_error: Why the files could not be listed (missing target, no credentials),
            so nothing was warmed; ``None`` if listed or if the time limit ended the listing.
    """

    target: str
    files_found: int = 0
    files_attempted: int = 0
    files_warmed: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    stopped_by: str | None = None
    errors: list[str] = field(default_factory=list)
    #: Whether the embedded gateway was warmed (else the filesystem).
    through_gateway: bool = False
    listing_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Candidate:
    path: str
    size: int | None
    modified: float


class _Budget:
    """The byte budget and the stop flag, shared by the warmup workers."""

    def __init__(self, max_bytes: int, deadline: float) -> None:
        self.left = max_bytes
        self.deadline = deadline
        self.stopped_by: str | None = None
        self.lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        """Reserve ``nbytes``; False (and stop) when they do not fit or time is up."""
        with self.lock:
            if self.stopped_by is not None:
                return False
            if time.monotonic() >= self.deadline:
                self.stopped_by = "time_limit"
                return False
            if nbytes > self.left:
                self.stopped_by = "max_bytes"
                return False
            self.left -= nbytes
            return True

    def refund(self, nbytes: int) -> None:
        with self.lock:
            self.left += nbytes


def warm(
    target: str,
    *,
    filesystem: AbstractFileSystem | None = None,
    storage_options: Mapping[str, str] | None = None,
    version: int | None = None,
    max_files: int | None = None,
    max_bytes: int | None = None,
    concurrency: int | None = None,
    time_limit_s: float | None = None,
    settings: Settings | None = None,
    gateway: bool | None = None,
) -> WarmReport:
    """Prefetch the footers (and index regions) of the most recent Parquet files of ``target``.

    Args:
        target: A Delta table URI (a directory holding ``_delta_log``) or a prefix of Parquet
            files (``s3://bucket/path``, a local directory).
        filesystem: The :class:`~tiercache.TieredFileSystem` to warm; default: one configured
            from the environment for ``target``, with ``tiercache.observe()`` started (as
            :func:`tiercache.integrations.delta.delta_dataset`).
        storage_options: deltalake storage options (used for the Delta log and, without
            ``filesystem``, to derive the target options).
        version: For a Delta table, the version whose files to warm; default: the latest.
        max_files, max_bytes, concurrency, time_limit_s: The limits; default: the
            ``TIERCACHE_WARM_*`` settings.
        settings: Where the default limits come from; default: :meth:`Settings.from_env`.
        gateway: Warm the process's embedded gateway over ``filesystem``
            (:func:`tiercache.gateway.shared.shared`) instead of ``filesystem`` itself: the
            gateway is what ``register_delta``'s native route reads through, and its RAM tier
            is its own (the disk and Redis tiers are shared either way). Default (None): the
            gateway for a Delta table on S3 read through a
            :class:`~tiercache.TieredFileSystem` over S3, the filesystem otherwise.

    Returns:
        A :class:`WarmReport`. Never raises because of the object store: listing and read
        errors are in ``report.errors``.

    Raises:
        ConfigError: A limit is out of range, the target options cannot be derived, or
            ``gateway=True`` and no gateway reaches ``target``.
    """
    began = time.monotonic()
    if settings is None:
        settings = Settings.from_env()
    limits = _limits(settings, max_files, max_bytes, concurrency, time_limit_s)
    max_files, max_bytes, concurrency, time_limit_s = limits
    report = WarmReport(target=target)
    if filesystem is None:
        from tiercache.integrations.delta import target_for
        from tiercache.ops import observe

        protocol, options = target_for(target, storage_options)
        # The filesystem's settings come from the environment (``settings`` sets the limits);
        # observed before building, so the chain finds it observed and says nothing.
        environment = Settings.from_env()
        observe.start(environment)
        filesystem = TieredFileSystem(
            target_protocol=protocol, target_options=options, settings=environment
        )
    deadline = began + time_limit_s
    try:
        listed = call_within(
            deadline,
            _candidates,
            # What the listing reads (the Delta log) is prefetch, not demand.
            filesystem.prefetching() if isinstance(filesystem, TieredFileSystem) else filesystem,
            target,
            storage_options,
            version,
            name="tiercache-warm-list",
            what="listing the files",
        )
    except Exception as exc:  # warmup never fails startup: a listing error is reported
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):
            report.stopped_by = "time_limit"
        else:
            report.listing_error = error
        report.errors.append(f"{target}: {error}")
        report.duration_s = time.monotonic() - began
        logger.warning("warmup of %s could not list its files: %s", target, exc)
        return report
    candidates, delta = listed
    reader = reader_for(filesystem, target, gateway=gateway, delta=delta)
    report.through_gateway = reader is not filesystem
    report.files_found = len(candidates)
    chosen = sorted(candidates, key=lambda c: c.modified, reverse=True)[:max_files]
    if isinstance(reader, ThroughGateway):
        # Keyed as register_delta keys them (the log's version of each file), so that what
        # lands in the disk and Redis tiers is found by the application's gateway too.
        problem = reader.seed([(c.path, c.size, c.modified) for c in chosen if c.size])
        if problem is not None:
            report.errors.append(problem)
    _run(
        reader,
        chosen,
        report=report,
        budget=_Budget(max_bytes, deadline),
        concurrency=concurrency,
        deadline=deadline,
    )
    # What was read is on its way to the disk and Redis tiers: let it land (within the limit),
    # so that a warmup run as an init step leaves them filled when its process exits.
    chain = getattr(filesystem, "chain", None)
    if isinstance(reader, ThroughGateway):
        problem = reader.settle()
        if problem is not None:
            report.errors.append(problem)
    elif chain is not None:
        chain.fills.join(max(0.0, deadline - time.monotonic()))
    report.duration_s = time.monotonic() - began
    logger.info(
        "warmed %d of %d files of %s (%d bytes) in %.2f s%s",
        report.files_warmed,
        report.files_attempted,
        target,
        report.bytes,
        report.duration_s,
        f", stopped by {report.stopped_by}" if report.stopped_by else "",
    )
    return report


def _limits(
    settings: Settings,
    max_files: int | None,
    max_bytes: int | None,
    concurrency: int | None,
    time_limit_s: float | None,
) -> tuple[int, int, int, float]:
    files = settings.warm_max_files if max_files is None else max_files
    nbytes = settings.warm_max_bytes if max_bytes is None else max_bytes
    workers = settings.warm_concurrency if concurrency is None else concurrency
    seconds = settings.warm_time_limit_s if time_limit_s is None else time_limit_s
    for name, value, minimum in (
        ("max_files", files, 0),
        ("max_bytes", nbytes, 0),
        ("concurrency", workers, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"warm(): {name} must be an int >= {minimum}, got {value!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(f"warm(): time_limit_s must be a number > 0, got {seconds!r}")
    return files, nbytes, workers, float(seconds)


def _candidates(
    fs: AbstractFileSystem,
    target: str,
    storage_options: Mapping[str, str] | None,
    version: int | None,
) -> tuple[list[_Candidate], bool]:
    """The files to warm, and whether ``target`` is a Delta table."""
    from tiercache.integrations.arrow import strip_scheme

    root = strip_scheme(target)
    if fs.exists(f"{root}/_delta_log"):
        return _delta_candidates(fs, target, root, storage_options, version), True
    if version is not None:
        raise ValueError(f"version={version} given, but {target} is not a Delta table")
    found = fs.find(root, detail=True)
    if not found and not fs.exists(root):
        raise FileNotFoundError(f"{target} does not exist (no Delta table, no files under it)")
    candidates = []
    for path, entry in found.items():
        if entry.get("type", "file") != "file" or not path.endswith(".parquet"):
            continue
        if "/_delta_log/" in path or path.rsplit("/", 1)[-1].startswith(("_", ".")):
            continue
        candidates.append(_Candidate(path, entry.get("size"), _modified(entry)))
    return candidates, False


def _delta_candidates(
    fs: AbstractFileSystem,
    target: str,
    root: str,
    storage_options: Mapping[str, str] | None,
    version: int | None,
) -> list[_Candidate]:
    from urllib.parse import unquote

    import pyarrow as pa

    from tiercache.integrations.delta import open_table, seed_data_files

    with open_table(target, filesystem=fs, storage_options=storage_options, version=version) as t:
        seed_data_files(fs, t, root)
        actions = pa.table(t.get_add_actions(flatten=True))

    return [
        _Candidate(f"{root}/{unquote(path)}", int(size), mtime / 1000)
        for path, size, mtime in zip(
            actions.column("path").to_pylist(),
            actions.column("size_bytes").to_pylist(),
            actions.column("modification_time").to_pylist(),
            strict=True,
        )
    ]


def _modified(entry: Mapping[str, Any]) -> float:
    for name in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        if callable(timestamp):
            return float(timestamp())
    return 0.0


def _run(
    fs: Any,
    chosen: Sequence[_Candidate],
    *,
    report: WarmReport,
    budget: _Budget,
    concurrency: int,
    deadline: float,
) -> None:
    """Warm ``chosen`` on daemon threads; at the deadline, report and leave the stragglers.

    The report is sealed when this returns: a read still in flight at the time limit finishes in
    the background (it fills the cache) but no longer changes the report.
    """
    if not chosen:
        return
    lock = threading.Lock()
    sealed = False
    remaining = len(chosen)
    done = threading.Event()

    def one(candidate: _Candidate) -> None:
        nonlocal remaining
        try:
            if not budget.take(0):
                return
            with lock:
                if sealed:
                    return
                report.files_attempted += 1
            try:
                nbytes = _warm_file(fs, candidate, budget)
            except Exception as exc:
                with lock:
                    if not sealed:
                        report.errors.append(f"{candidate.path}: {type(exc).__name__}: {exc}")
                return
            with lock:
                if nbytes is not None and not sealed:
                    report.files_warmed += 1
                    report.bytes += nbytes
        finally:
            with lock:
                remaining -= 1
                if remaining == 0:
                    done.set()

    pool = DaemonPool(min(concurrency, len(chosen)), "tiercache-warm")
    futures: list[Future[None]] = [pool.submit(one, candidate) for candidate in chosen]
    finished = done.wait(max(0.0, deadline - time.monotonic()))
    for future in futures:  # files not started yet are not started
        future.cancel()
    pool.close()  # workers exit after their current file; none is waited for
    with lock:
        sealed = True
        if not finished:
            with budget.lock:
                budget.stopped_by = budget.stopped_by or "time_limit"
        report.stopped_by = budget.stopped_by


def _warm_file(fs: Any, candidate: _Candidate, budget: _Budget) -> int | None:
    """Prefetch one file's footer and index regions; return the bytes read (None: budget out)."""
    prefetch = getattr(fs, "prefetch_range", None) or fs.read_range
    size = candidate.size if candidate.size is not None else int(fs.size(candidate.path))
    if size < len(_MAGIC) + _TRAILER:
        raise ValueError(f"{size} bytes is too small for a Parquet file")
    tail_len = min(size, FOOTER_TAIL_BYTES)
    if not budget.take(tail_len):
        return None
    tail = prefetch(candidate.path, size - tail_len, size)
    if len(tail) != tail_len or tail[-4:] != _MAGIC:
        raise ValueError("not a Parquet file (no PAR1 magic at the end)")
    footer_len = struct.unpack("<I", tail[-_TRAILER:-4])[0]
    footer_start = size - _TRAILER - footer_len
    if footer_start < len(_MAGIC):
        raise ValueError(f"footer length {footer_len} does not fit in {size} bytes")
    total = tail_len
    if footer_len + _TRAILER > tail_len:  # a large footer: read the rest of it
        extra = footer_len + _TRAILER - tail_len
        if not budget.take(extra):
            return None
        tail = prefetch(candidate.path, footer_start, size - tail_len) + tail
        total += extra
    region = _index_region(tail[-(footer_len + _TRAILER) :], footer_start)
    if region is not None:
        lo, hi = region
        lo = max(lo, 0)
        hi = min(hi, size - tail_len)  # what the tail read already holds is not read twice
        if hi > lo and budget.take(hi - lo):
            prefetch(candidate.path, lo, hi)
            total += hi - lo
    return total


def _index_region(footer: bytes, footer_start: int) -> tuple[int, int] | None:
    """Return ``[start, end)`` of the page indexes and bloom filters, or None if there are none.

    Writers put them after the last row group and before the footer; pyarrow exposes the bloom
    filters' offsets but not the page indexes', so the region is the gap between the end of the
    last column chunk and the footer, taken only when a column chunk says it has either.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(pa.BufferReader(footer)).metadata
    data_end = 0
    indexed = False
    for r in range(metadata.num_row_groups):
        group = metadata.row_group(r)
        for c in range(group.num_columns):
            chunk = group.column(c)
            first = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                first = min(first, chunk.dictionary_page_offset)
            data_end = max(data_end, first + chunk.total_compressed_size)
            if chunk.has_column_index or chunk.has_offset_index or chunk.bloom_filter_offset:
                indexed = True
    if not indexed or data_end >= footer_start:
        return None
    return data_end, footer_start
