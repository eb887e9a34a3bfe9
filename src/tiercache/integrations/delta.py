"""Delta Lake tables read through the tiers.

:func:`open_table` opens a Delta table with deltalake, its client pointed at the embedded
gateway for S3, GCS and Azure tables, so that the transaction log is read through the tiers.
:func:`delta_dataset` returns a ``pyarrow.dataset.Dataset`` of the snapshot whose *data files*
are read through a :class:`~tiercache.TieredFileSystem` (the fsspec route); the Delta log
already knows every data file's size, so the cache is seeded with it: opening a data file costs
no HEAD request. DataFusion's native route is in :mod:`tiercache.integrations.native`.

Needs the ``deltalake`` and ``pyarrow`` packages (the ``delta`` extra).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fsspec import AbstractFileSystem

from tiercache.errors import ConfigError
from tiercache.integrations.arrow import pyarrow_filesystem, strip_scheme
from tiercache.integrations.store_options import (
    AZURE_SCHEMES,
    GCS_SCHEMES,
    S3_KEYS,
    S3_SCHEMES,
    bucket_and_path,
    scheme_of,
    storage_options_for,
    target_for,
)

if TYPE_CHECKING:
    from tiercache.gateway import Gateway

logger = logging.getLogger(__name__)

__all__ = ["delta_dataset", "open_table", "storage_options_for", "target_for"]

# The target protocols (fsspec) that read each scheme's tables; a gateway fronts any of them.
_PROTOCOLS = {
    **dict.fromkeys(S3_SCHEMES, frozenset({"s3", "s3a"})),
    **dict.fromkeys(GCS_SCHEMES, frozenset({"gs", "gcs"})),
    **dict.fromkeys(AZURE_SCHEMES, frozenset({"abfs", "az", "abfss"})),
}


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
        filesystem = default_filesystem(table_uri, storage_options)
    with open_table(
        table_uri, filesystem=filesystem, storage_options=storage_options, version=version
    ) as table:
        return dataset_of(table, table_uri, filesystem)


def default_filesystem(
    table_uri: str, storage_options: Mapping[str, str] | None
) -> AbstractFileSystem:
    """A :class:`~tiercache.TieredFileSystem` reaching ``table_uri`` (its target options from
    ``storage_options``, :func:`target_for`), configured from the ``TIERCACHE_*`` environment,
    with what its ``TIERCACHE_METRICS_PORT`` / ``TIERCACHE_STATS_FILE`` ask started
    (``tiercache.observe()``).

    Raises:
        ConfigError: See :func:`target_for`.
    """
    from tiercache.config import Settings
    from tiercache.fs import TieredFileSystem
    from tiercache.ops import observe

    protocol, options = target_for(table_uri, storage_options)
    settings = Settings.from_env()
    observe.start(settings)  # before building: the chain finds it observed, and says nothing
    return TieredFileSystem(target_protocol=protocol, target_options=options, settings=settings)


def dataset_of(table: Any, table_uri: str, filesystem: AbstractFileSystem) -> Any:
    """The pyarrow dataset of an opened ``table`` (at ``table_uri``) whose data files are read
    through ``filesystem``, with their info seeded from the log."""
    root = _table_root(table_uri)
    dataset = table.to_pyarrow_dataset(filesystem=pyarrow_filesystem(filesystem, root))
    seed_data_files(filesystem, table, root, set(dataset.files))
    return dataset


class open_table:  # used as a function: `with open_table(...) as table:`
    """Open a Delta table's snapshot with deltalake, its log read through the tiers.

    deltalake reads the transaction log with its own object-store client (Rust
    ``object_store``), out of fsspec's reach. For an S3, GCS or Azure table (``gs://`` and
    ``az://`` tables opened by their ``s3://`` name: the gateway speaks S3) and a
    :class:`~tiercache.TieredFileSystem`, that client is pointed at the process's embedded
    gateway over the same target and settings (:func:`tiercache.gateway.shared.shared`): every
    log object is read through the tiers (RAM, disk and Redis keep them: they never change once
    written; ``_delta_log/_last_checkpoint`` is always revalidated), and a new pod with a warm
    Redis reads no log object from the store. The listing of ``_delta_log`` always reaches the
    store: the latest version is the store's.

    Otherwise (another scheme, a filesystem that is not a ``TieredFileSystem``, a gateway that
    cannot start) deltalake reads the log itself with ``storage_options`` (logged at INFO). Use
    as a context manager; nothing is left behind on exit.
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
        #: The gateway the table was opened through (None: deltalake read the store itself).
        self.gateway: Gateway | None = None

    @property
    def through_tiers(self) -> bool:
        """Whether the log was read through the tiers (the gateway)."""
        return self.gateway is not None

    def __enter__(self) -> Any:
        from deltalake import DeltaTable

        gateway = gateway_for(self.table_uri, self.filesystem)
        if gateway is not None:
            options = gateway_options(gateway, self.storage_options)
            uri = gateway_uri(self.table_uri)
            try:
                table = DeltaTable(uri, storage_options=options, version=self.version)
            except Exception as exc:
                if gateway.alive and not self._kept_listing_may_lack_version():
                    raise  # the gateway answered: the error is the table's
                logger.info(
                    "%s not opened through the gateway at %s (%s: %s); deltalake reads the "
                    "store directly",
                    self.table_uri,
                    gateway.endpoint_url,
                    type(exc).__name__,
                    exc,
                )
            else:
                self.gateway = gateway
                return table
        options = self.storage_options
        target = getattr(self.filesystem, "target", None)
        s3 = scheme_of(self.table_uri) in S3_SCHEMES
        if not options and s3 and gateway is not None and target is not None:
            options = storage_options_for(target.storage_options)  # as the filesystem reaches it
        return DeltaTable(self.table_uri, storage_options=options, version=self.version)

    def _kept_listing_may_lack_version(self) -> bool:
        """Whether a version asked for may be newer than the gateway's kept listing of the log
        (``TIERCACHE_DELTA_LOG_TTL``): the store itself is then asked (time travel never misses
        a version)."""
        settings = getattr(self.filesystem, "settings", None)
        return self.version is not None and getattr(settings, "delta_log_ttl_s", 0.0) > 0

    def __exit__(self, *exc_info: object) -> None:
        return None


def gateway_for(table_uri: str, filesystem: AbstractFileSystem | None) -> Gateway | None:
    """The shared gateway that reaches ``table_uri`` through ``filesystem``'s tiers, or None:
    not an S3, GCS or Azure table, not a :class:`~tiercache.TieredFileSystem` whose target reads
    that store, or the gateway could not start (logged at WARNING with the reason)."""
    from tiercache.fs import TieredFileSystem

    protocols = _PROTOCOLS.get(scheme_of(table_uri))
    if protocols is None or not isinstance(filesystem, TieredFileSystem):
        return None
    protocol = filesystem.target.protocol
    if (protocol if isinstance(protocol, str) else protocol[0]) not in protocols:
        return None
    from tiercache.gateway.shared import shared

    try:
        return shared(filesystem)
    except ConfigError as exc:
        logger.warning("no gateway for %s (%s); deltalake reads the store directly", table_uri, exc)
        return None


def gateway_uri(table_uri: str) -> str:
    """The URI deltalake opens ``table_uri`` by through a gateway: the gateway speaks S3 for
    every store, so ``gs://b/t`` and ``abfss://c@account.dfs.core.windows.net/t`` become
    ``s3://b/t`` and ``s3://c/t`` (the gateway's bucket is the store's bucket or container)."""
    if scheme_of(table_uri) in S3_SCHEMES:
        return table_uri
    bucket, path = bucket_and_path(table_uri)
    return f"s3://{bucket}/{path}" if path else f"s3://{bucket}"


def gateway_options(gateway: Gateway, storage_options: Mapping[str, str]) -> dict[str, str]:
    """deltalake storage options that reach the store through ``gateway``.

    The caller's options that say *where* and *as whom* (endpoint, credentials, region,
    ``allow_http``: the ones :func:`target_for` maps, and every GCS or Azure option: the
    gateway speaks S3) are replaced by the gateway's; the rest (timeouts, retries,
    ``conditional_put``...) are kept.
    """
    kept = {
        name: value
        for name, value in storage_options.items()
        if name.lower().removeprefix("aws_") not in {*S3_KEYS, "allow_http"}
        and not name.lower().startswith(("google_", "azure_", "service_account"))
    }
    return {**kept, **gateway.storage_options()}


def seed_data_files(
    fs: AbstractFileSystem, table: Any, root: str, files: set[str] | None = None
) -> int:
    """Seed ``fs``'s object info with the size of every data file in ``table``'s snapshot
    (:func:`data_file_seeds`). Only files in ``files`` (paths relative to the table root) are
    seeded when it is given. Does nothing for a filesystem that cannot be seeded; returns the
    number of files seeded.
    """
    seed = getattr(fs, "seed_info", None)
    if seed is None:
        return 0
    seeded = 0
    for path, size, version, mtime in data_file_seeds(table, root):
        if files is not None and path.removeprefix(f"{root}/") not in files:
            continue
        seed(path, size, version, {"mtime": mtime})
        seeded += 1
    return seeded


def data_file_seeds(table: Any, root: str) -> list[tuple[str, int, str, float]]:
    """``(path, size, version, mtime)`` of every data file in ``table``'s snapshot, from its log:
    ``path`` under ``root`` (``bucket/table``), the version ``delta:<modificationTime>:<size>``
    (Delta data files are never rewritten in place), ``mtime`` in seconds. Files the log names
    by an absolute URL (a shallow clone's) are left out."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    mtimes = actions.column("modification_time").to_pylist()
    seeds = []
    for logged, size, mtime in zip(paths, sizes, mtimes, strict=True):
        relative = unquote(logged)  # the log holds paths URL-encoded once more
        if "://" in relative:
            continue
        seeds.append((f"{root}/{relative}", int(size), f"delta:{mtime}:{size}", mtime / 1000))
    return seeds


def _table_root(table_uri: str) -> str:
    if scheme_of(table_uri) in _PROTOCOLS:
        bucket, path = bucket_and_path(table_uri)
        return f"{bucket}/{path}" if path else bucket
    return strip_scheme(table_uri)
