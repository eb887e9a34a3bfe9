"""DataFusion SQL over Delta tables whose data files are read through the tiers.

Needs the ``datafusion``, ``deltalake`` and ``pyarrow`` packages (the ``delta`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem

from tiercache.integrations.delta import delta_dataset


def register_delta(
    ctx: Any,
    name: str,
    table_uri: str,
    *,
    storage_options: Mapping[str, str] | None = None,
    filesystem: AbstractFileSystem | None = None,
    version: int | None = None,
) -> Any:
    """Register a Delta table as ``name`` in a DataFusion ``SessionContext``.

    The table is registered as a pyarrow dataset
    (:func:`tiercache.integrations.delta.delta_dataset`): DataFusion pushes filters and projections
    into it, files are pruned by partition values and Delta statistics, and the data files are read
    through the tiers, concurrently on pyarrow's threads. The Delta log is read by deltalake at
    registration; a table that changes later needs registering again to see the new version.

    Returns:
        The registered ``pyarrow.dataset.Dataset``.
    """
    dataset = delta_dataset(
        table_uri, storage_options=storage_options, filesystem=filesystem, version=version
    )
    ctx.register_dataset(name, dataset)
    return dataset
