"""Delta Lake tables read through the tiers.

:func:`delta_dataset` opens a Delta table with deltalake (which reads the transaction log with
its own object store client) and returns a ``pyarrow.dataset.Dataset`` whose *data files* are
read through a :class:`~tiercache.TieredFileSystem`. The Delta log already knows every data
file's size, so the cache is seeded with it: opening a data file costs no HEAD request.

Needs the ``deltalake`` and ``pyarrow`` packages (the ``delta`` extra).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fsspec import AbstractFileSystem

from tiercache.errors import ConfigError
from tiercache.integrations.arrow import pyarrow_filesystem, strip_scheme

logger = logging.getLogger(__name__)

# deltalake storage option (lower case, with and without the "aws_" prefix) -> s3fs option.
_S3_KEYS = {
    "access_key_id": ("key",),
    "secret_access_key": ("secret",),
    "session_token": ("token",),
    "token": ("token",),
    "endpoint_url": ("client_kwargs", "endpoint_url"),
    "endpoint": ("client_kwargs", "endpoint_url"),
    "region": ("client_kwargs", "region_name"),
    "default_region": ("client_kwargs", "region_name"),
}
# Options deltalake needs that s3fs has no use for (s3fs follows the endpoint's scheme).
_S3_IGNORED = {
    "allow_http",
    "s3_locking_provider",
    "conditional_put",
    "virtual_hosted_style_request",
}
_S3_SCHEMES = {"s3", "s3a"}
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")
# V2 (UUID-named) checkpoints may point at sidecar files: left to deltalake's own reader.
_V2_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.[0-9a-f-]{36}\.(json|parquet)$")
#: Log files read at once when the log comes through the tiers.
LOG_READ_CONCURRENCY = 16
_LOCAL_SCHEMES = {"", "file"}


def target_for(
    table_uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Return the fsspec protocol and target options that reach ``table_uri``.

    The options are derived from deltalake's ``storage_options``: for S3, ``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and ``AWS_REGION``
    (any case, with or without the ``AWS_`` prefix); ``AWS_ALLOW_HTTP`` needs no counterpart
    (s3fs speaks whatever the endpoint URL says). Other keys are ignored with a DEBUG line.

    Raises:
        ConfigError: The scheme has no mapping and storage options were given (pass a ready
            ``filesystem=`` instead), or a mapped option is empty.
    """
    scheme = table_uri.partition("://")[0].lower() if "://" in table_uri else ""
    options = dict(storage_options or {})
    if scheme in _LOCAL_SCHEMES:
        return "file", {}
    if scheme not in _S3_SCHEMES:
        if options:
            raise ConfigError(
                f"cannot derive {scheme}:// filesystem options from Delta storage_options "
                f"({sorted(options)}); build the target filesystem yourself and pass "
                "filesystem=TieredFileSystem(fs=...)"
            )
        return scheme, {}
    target: dict[str, Any] = {}
    for name, value in options.items():
        key = name.lower().removeprefix("aws_")
        if key in _S3_IGNORED:
            continue
        where = _S3_KEYS.get(key)
        if where is None:
            logger.debug("Delta storage option %r has no s3fs counterpart; ignored", name)
            continue
        if not value:
            raise ConfigError(f"Delta storage option {name!r} is empty")
        if len(where) == 1:
            target[where[0]] = value
        else:
            target.setdefault(where[0], {})[where[1]] = value
    return "s3", target


def storage_options_for(s3fs_options: Mapping[str, Any]) -> dict[str, str]:
    """Return deltalake storage options equivalent to s3fs options (the inverse of
    :func:`target_for`): ``key``, ``secret``, ``token`` and ``client_kwargs`` endpoint and region.

    ``AWS_ALLOW_HTTP`` is set when the endpoint is ``http://``. Other options are not carried.
    """
    options: dict[str, str] = {}
    for name, variable in (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ):
        if s3fs_options.get(name):
            options[variable] = str(s3fs_options[name])
    client = s3fs_options.get("client_kwargs") or {}
    endpoint = client.get("endpoint_url") or s3fs_options.get("endpoint_url")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = str(endpoint)
        if str(endpoint).startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    region = client.get("region_name")
    if region:
        options["AWS_REGION"] = str(region)
    return options


def delta_dataset(
    table_uri: str,
    *,
    storage_options: Mapping[str, str] | None = None,
    filesystem: AbstractFileSystem | None = None,
    version: int | None = None,
) -> Any:
    """Return a ``pyarrow.dataset.Dataset`` of a Delta table, data files read through the tiers.

    Args:
        table_uri: ``s3://bucket/path``, ``file:///path`` or a local path.
        storage_options: deltalake's storage options (credentials, endpoint, region). Used by
            deltalake to read the log and, when ``filesystem`` is None, to derive the target
            options of the :class:`~tiercache.TieredFileSystem` (see :func:`target_for`).
        filesystem: The filesystem data files are read through; default: a
            ``TieredFileSystem`` configured from the ``TIERCACHE_*`` environment, with what
            its ``TIERCACHE_METRICS_PORT`` / ``TIERCACHE_STATS_FILE`` ask started
            (``tiercache.observe()``).
        version: The table version to read (time travel); default: the latest.

    Filters and projections given to the dataset (or pushed down by DataFusion) prune files by
    partition values and the Delta min/max statistics, as with deltalake's own dataset.

    Raises:
        ConfigError: See :func:`target_for`.
        deltalake.exceptions.TableNotFoundError: No Delta table at ``table_uri``.
    """
    if filesystem is None:
        from tiercache.config import Settings
        from tiercache.fs import TieredFileSystem
        from tiercache.ops import observe

        protocol, options = target_for(table_uri, storage_options)
        settings = Settings.from_env()
        observe.start(settings)  # before building: the chain finds it observed, and says nothing
        filesystem = TieredFileSystem(
            target_protocol=protocol, target_options=options, settings=settings
        )
    root = _table_root(table_uri)
    with open_table(
        table_uri, filesystem=filesystem, storage_options=storage_options, version=version
    ) as table:
        dataset = table.to_pyarrow_dataset(filesystem=pyarrow_filesystem(filesystem, root))
        seed_data_files(filesystem, table, root, set(dataset.files))
    return dataset


class open_table:  # used as a function: `with open_table(...) as table:`
    """Open a Delta table's snapshot, reading its log through the tiers where it can.

    deltalake reads the transaction log with its own object-store client, one object after
    another, out of tiercache's reach. Here the log goes through ``filesystem`` instead: one
    fresh listing of ``_delta_log`` (the latest version always comes from the store), then the
    newest complete checkpoint at or before the version and the commits after it, read
    concurrently through the tiers (log files are metadata: RAM, disk and Redis keep them; they
    never change once written), into a private temporary directory that deltalake opens. The
    result is the same snapshot (the version is checked), at a fraction of the round trips, and a
    new pod with a warm Redis reads no log object from the store at all.

    Where this path does not apply (a ``filesystem`` that is not a
    :class:`~tiercache.TieredFileSystem`, V2 checkpoints with sidecars, a log with gaps, absolute
    data-file paths), or fails for any reason, deltalake reads the log itself, as before (logged
    at INFO). Use as a context manager: the temporary copy is removed on exit.
    """

    def __init__(
        self,
        table_uri: str,
        *,
        filesystem: AbstractFileSystem | None,
        storage_options: Mapping[str, str] | None = None,
        version: int | None = None,
    ) -> None:
        self.table_uri = table_uri
        self.filesystem = filesystem
        self.storage_options = dict(storage_options or {})
        self.version = version
        self.through_tiers = False
        self._workdir: str | None = None

    def __enter__(self) -> Any:
        from deltalake import DeltaTable

        if self.filesystem is not None and hasattr(self.filesystem, "seed_listing"):
            self._workdir = tempfile.mkdtemp(prefix="tiercache-delta-")
            try:
                table = _open_through(
                    self.filesystem, _table_root(self.table_uri), self.version, self._workdir
                )
            except Exception as exc:
                logger.info(
                    "Delta log of %s read by deltalake itself (%s: %s)",
                    self.table_uri,
                    type(exc).__name__,
                    exc,
                )
            else:
                self.through_tiers = True
                return table
        return DeltaTable(
            self.table_uri, storage_options=self.storage_options, version=self.version
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


class _Unsupported(Exception):
    """The log cannot be read through the tiers; deltalake reads it."""


def _open_through(fs: Any, root: str, version: int | None, workdir: str) -> Any:
    from deltalake import DeltaTable

    log = f"{root}/_delta_log"
    target, needed = _log_files(fs, log, version)
    local = Path(workdir) / "_delta_log"
    local.mkdir()
    paths = [f"{log}/{name}" for name in needed]
    with ThreadPoolExecutor(min(LOG_READ_CONCURRENCY, len(paths))) as pool:
        contents = list(pool.map(fs.cat_file, paths))
    for name, data in zip(needed, contents, strict=True):
        (local / name).write_bytes(data)
    table = DeltaTable(workdir, version=target)
    if table.version() != target:
        raise _Unsupported(f"opened version {table.version()}, expected {target}")
    outside = [uri for uri in table.file_uris() if not uri.startswith(workdir)]
    if outside:  # absolute paths (a shallow clone): only deltalake knows how to reach them
        raise _Unsupported(f"data files outside the table, e.g. {outside[0]}")
    return table


def _log_files(fs: Any, log: str, version: int | None) -> tuple[int, list[str]]:
    """The version to open and the log files it needs, from a listing of ``log``.

    A fresh listing (the latest version comes from the store), unless
    ``TIERCACHE_DELTA_LOG_TTL`` allows a listing that old, kept by this process or shared
    through Redis by another: then no LIST is sent, and the snapshot is at most that old. A
    kept listing that lacks the version asked for is not used. Either way every log file's info
    is seeded from the listing: reading it costs no HEAD.
    """
    ttl_s = fs.settings.delta_log_ttl_s
    kept = fs.chain.cached_listing(log, ttl_s)
    if kept is not None:
        try:
            found = _needed_log_files(_names(kept), version)
        except _Unsupported:
            pass  # e.g. a version newer than the kept listing: list again
        else:
            fs.seed_listing(kept)
            return found
    fs.target.invalidate_cache(log)
    entries = fs.ls(log, detail=True)  # seeds the info of every log file: no HEAD
    if ttl_s > 0:
        fs.chain.share_listing(log, entries)
    return _needed_log_files(_names(entries), version)


def _names(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(entry["name"]).rsplit("/", 1)[-1] for entry in entries]


def _needed_log_files(names: Sequence[str], version: int | None) -> tuple[int, list[str]]:
    """The version to open and the log files it needs: the newest complete checkpoint at or
    before it and every commit after it, up to it."""
    commits = {int(m[1]) for n in names if (m := _COMMIT.match(n))}
    parts: dict[int, dict[int, tuple[int, str]]] = {}
    for name in names:
        if (m := _CHECKPOINT.match(name)) is not None:
            total = int(m[3]) if m[3] else 1
            parts.setdefault(int(m[1]), {})[int(m[2] or 1)] = (total, name)
    if not commits and not parts:
        raise _Unsupported("no commits in _delta_log")
    latest = max(commits | set(parts))
    target = latest if version is None else version
    if target > latest or target < 0:
        raise _Unsupported(f"version {target} not in the log (latest {latest})")
    if any(int(m[1]) <= target for n in names if (m := _V2_CHECKPOINT.match(n))):
        raise _Unsupported("V2 checkpoints")
    complete = [
        v
        for v, found in parts.items()
        if v <= target and all(total == len(found) for total, _ in found.values())
    ]
    start = max(complete) if complete else -1
    needed = [name for _, name in sorted(parts[start].values())] if start >= 0 else []
    missing = [v for v in range(start + 1, target + 1) if v not in commits]
    if missing:
        raise _Unsupported(f"commits missing from the log: {missing[:5]}")
    needed += [f"{v:020d}.json" for v in range(start + 1, target + 1)]
    return target, needed


def seed_data_files(
    fs: AbstractFileSystem, table: Any, root: str, files: set[str] | None = None
) -> int:
    """Seed ``fs``'s object info with the size of every data file in ``table``'s snapshot.

    The version keying their blocks is ``delta:<modificationTime>:<size>`` from the add action
    (Delta data files are never rewritten in place). Only files in ``files`` (paths relative to
    the table root) are seeded when it is given. Does nothing for a filesystem that cannot be
    seeded; returns the number of files seeded.
    """
    seed = getattr(fs, "seed_info", None)
    if seed is None:
        return 0
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    mtimes = actions.column("modification_time").to_pylist()
    seeded = 0
    for logged, size, mtime in zip(paths, sizes, mtimes, strict=True):
        relative = unquote(logged)  # the log holds paths URL-encoded once more
        if files is not None and relative not in files:
            continue
        seed(f"{root}/{relative}", int(size), f"delta:{mtime}:{size}", {"mtime": mtime / 1000})
        seeded += 1
    return seeded


def _table_root(table_uri: str) -> str:
    return strip_scheme(table_uri)
