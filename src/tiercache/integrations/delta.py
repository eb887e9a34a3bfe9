"""Delta Lake tables read through the tiers.

:func:`open_table` opens a Delta table with deltalake, its client pointed at the embedded
gateway for S3 tables, so that the transaction log is read through the tiers.
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

if TYPE_CHECKING:
    from tiercache.gateway import Gateway

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
    ``object_store``), out of fsspec's reach. For an S3 table and a
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
            try:
                table = DeltaTable(self.table_uri, storage_options=options, version=self.version)
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
        if not options and gateway is not None and target is not None:
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
    not an S3 table, not a :class:`~tiercache.TieredFileSystem` over S3, or the gateway could
    not start (logged at WARNING with the reason)."""
    from tiercache.fs import TieredFileSystem

    scheme = table_uri.partition("://")[0].lower() if "://" in table_uri else ""
    if scheme not in _S3_SCHEMES or not isinstance(filesystem, TieredFileSystem):
        return None
    protocol = filesystem.target.protocol
    if (protocol if isinstance(protocol, str) else protocol[0]) not in _S3_SCHEMES:
        return None
    from tiercache.gateway.shared import shared

    try:
        return shared(filesystem)
    except ConfigError as exc:
        logger.warning("no gateway for %s (%s); deltalake reads the store directly", table_uri, exc)
        return None


def gateway_options(gateway: Gateway, storage_options: Mapping[str, str]) -> dict[str, str]:
    """deltalake storage options that reach the store through ``gateway``.

    The caller's options that say *where* and *as whom* (endpoint, credentials, region,
    ``allow_http``: the ones :func:`target_for` maps) are replaced by the gateway's; the rest
    (timeouts, retries, ``conditional_put``...) are kept.
    """
    kept = {
        name: value
        for name, value in storage_options.items()
        if name.lower().removeprefix("aws_") not in {*_S3_KEYS, "allow_http"}
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
    return strip_scheme(table_uri)
