"""DataFusion SQL over Delta tables read through the tiers.

Needs the ``datafusion``, ``deltalake`` and ``pyarrow`` packages (the ``delta`` extra).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from fsspec import AbstractFileSystem

from tiercache.errors import ConfigError
from tiercache.integrations.delta import (
    data_file_seeds,
    dataset_of,
    default_filesystem,
    open_table,
)
from tiercache.integrations.native import (
    gateway_store,
    native_obstacle,
    register_files,
    register_view,
    split_location,
)

if TYPE_CHECKING:
    from tiercache.gateway import Gateway

logger = logging.getLogger(__name__)

Route = Literal["auto", "native", "dataset"]


@dataclasses.dataclass(frozen=True)
class DeltaRegistration:
    """What :func:`register_delta` registered."""

    #: The view's name in the ``SessionContext``.
    name: str
    #: The snapshot's version.
    version: int
    #: ``"native"``: DataFusion's own Parquet reader through the gateway; ``"dataset"``: a
    #: pyarrow dataset read through the fsspec filesystem.
    route: Literal["native", "dataset"]
    #: The data files read (URLs on the native route, paths under the table on the other).
    files: tuple[str, ...]
    #: Why the native route was not taken (None when it was, or was not asked for).
    reason: str | None = None
    #: The pyarrow dataset (the dataset route only).
    dataset: Any = None


def register_delta(
    ctx: Any,
    name: str,
    table_uri: str,
    *,
    storage_options: Mapping[str, str] | None = None,
    filesystem: AbstractFileSystem | None = None,
    version: int | None = None,
    route: Route = "auto",
) -> DeltaRegistration:
    """Register a Delta table's snapshot as ``name`` in a DataFusion ``SessionContext``.

    For an S3, GCS or Azure table (``route="auto"`` or ``"native"``; ``gs://`` and ``az://``
    tables by their ``s3://`` name through the gateway), deltalake reads the log and DataFusion
    reads exactly the snapshot's data files with its own Parquet reader, both through the
    process's embedded gateway over the tiers (:mod:`tiercache.integrations.native`): never a
    listing of the table's folder, so files a delete removed are not read, and ``version``
    (time travel) works. ``ctx`` gets an ``AmazonS3`` store for the table's bucket pointed at
    the gateway.

    The dataset route (``route="dataset"``, and ``"auto"`` where the native one cannot be
    exact: deletion vectors in use, column mapping, a table that is not on S3) registers a
    pyarrow dataset (:func:`tiercache.integrations.delta.delta_dataset`): filters and
    projections are pushed into it, and the data files are read through the fsspec filesystem.

    The snapshot is the table's version at registration: register again to see a newer one.

    Args:
        ctx: A ``datafusion.SessionContext``.
        name: The name to register (a view of that name is replaced).
        table_uri: ``s3://bucket/path`` (or a local path / ``file://`` on the dataset route).
        storage_options: deltalake's storage options, used to reach the store when
            ``filesystem`` is None (see :func:`tiercache.integrations.delta.target_for`).
        filesystem: The :class:`~tiercache.TieredFileSystem` whose target and settings are
            used; default: one configured from the ``TIERCACHE_*`` environment.
        version: The table version to read; default: the latest.
        route: ``"auto"``, ``"native"`` (raise when it cannot be taken) or ``"dataset"``.

    Raises:
        ConfigError: ``route="native"`` and the native route cannot be taken (the reason is in
            the message), or an unknown ``route``.
        deltalake.exceptions.TableNotFoundError: No Delta table at ``table_uri``.
    """
    if route not in ("auto", "native", "dataset"):
        raise ConfigError(f"route must be 'auto', 'native' or 'dataset', not {route!r}")
    fs = filesystem if filesystem is not None else default_filesystem(table_uri, storage_options)
    opener = open_table(
        table_uri,
        filesystem=fs,
        storage_options=storage_options,
        version=version,
    )
    with opener as table:
        reason = None
        if route != "dataset":
            registered, reason = _register_native(ctx, name, table_uri, table, opener.gateway)
            if registered is not None:
                return registered
            if route == "native":
                raise ConfigError(f"the native route cannot read {table_uri}: {reason}")
            logger.info("%s registered as a pyarrow dataset: %s", table_uri, reason)
        dataset = dataset_of(table, table_uri, fs)
        if ctx.table_exist(name):
            ctx.deregister_table(name)
        ctx.register_dataset(name, dataset)
        return DeltaRegistration(
            name, table.version(), "dataset", tuple(dataset.files), reason=reason, dataset=dataset
        )


def _register_native(
    ctx: Any, name: str, table_uri: str, table: Any, gateway: Gateway | None
) -> tuple[DeltaRegistration | None, str | None]:
    """Register the native route's view, or say why it cannot be taken."""
    if gateway is None:
        return None, (
            "no gateway reaches it: the native route needs an s3://, gs:// or az:// table and "
            "a TieredFileSystem over that store whose options a gateway process can take"
        )
    obstacle = native_obstacle(table)
    if obstacle is not None:
        return None, obstacle
    bucket, root = split_location(table_uri)
    try:  # the HEAD of each file then costs no request to the store
        gateway.seed(data_file_seeds(table, f"{bucket}/{root}" if root else bucket))
    except (OSError, ValueError) as exc:
        logger.warning("the gateway at %s took no seeds: %s", gateway.endpoint_url, exc)
    try:
        files = register_view(ctx, name, table, gateway, (bucket, root))
    except ValueError as exc:
        return None, str(exc)
    except OSError as exc:  # no snapshot view: a scan per file (a HEAD per file per query)
        logger.warning("the gateway at %s made no snapshot view: %s", gateway.endpoint_url, exc)
        try:
            files = register_files(ctx, name, table, gateway_store(gateway, bucket), (bucket, root))
        except ValueError as inner:
            return None, str(inner)
    return DeltaRegistration(name, table.version(), "native", tuple(files)), None
