"""DataFusion's native Parquet reader over exactly the files of a Delta snapshot, through the
gateway.

Why this route (measured with datafusion 55 and deltalake 1.6.6, docs/gateway.md):

- ``ctx.register_table(DeltaTable)`` fails for S3 tables ("No suitable object store found",
  delta-rs #4104 / #4623): delta-rs's table provider crosses the FFI boundary without the
  object store deltalake was given.
- A listing table over the table's folder reads what the folder holds, not the snapshot: files
  a delete or an overwrite removed are still there until a vacuum, and their rows would be
  counted again; time travel would be impossible.
- The pyarrow-dataset route (``route="dataset"``) is exact but reads through fsspec and pyarrow,
  about twice the time of DataFusion's own reader on the same bytes.

So the gateway makes up a directory that lists exactly the snapshot's files (a snapshot view,
:mod:`tiercache.gateway.snapshots`), one subdirectory per partition (and per share of the CPUs),
and each is read with ``ctx.read_parquet`` as a listing table through DataFusion's ``AmazonS3``
store pointed at the gateway (:func:`register_view`): DataFusion lists it once and keeps the
listing for the session, so a query sends nothing but its data reads. The table's schema is
given (DataFusion adapts each file's physical schema to it: ``string_view`` written by one
writer, a column added later...), the partition values come from the log as literal columns,
and the subdirectories are joined with ``UNION ALL`` into a view. Filters on partition columns
fold to constants and drop whole subdirectories before any request; the Parquet statistics prune
row groups and pages. Without a view (:func:`register_files`), each file is read on its own URL
(a HEAD, never a listing; one per file per query).

Where the files alone are not the table (deletion vectors in use, column mapping, a reader
feature not known here, data files outside the bucket) :func:`native_obstacle` says why, and
``register_delta`` takes the dataset route.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, unquote

from tiercache.gateway import Gateway

#: Reader features whose tables are still exactly their Parquet files (some under a condition
#: checked by :func:`native_obstacle`: no deletion vector present, column mapping off).
READER_FEATURES = frozenset(
    {
        "timestampNtz",
        "v2Checkpoint",
        "vacuumProtocolCheck",
        "typeWidening",
        "typeWidening-preview",
        "deletionVectors",
        "columnMapping",
    }
)


def native_obstacle(table: Any) -> str | None:
    """Why DataFusion reading the snapshot's Parquet files would not read ``table`` exactly,
    or None when it would."""
    import pyarrow as pa

    protocol = table.protocol()
    unknown = sorted(set(protocol.reader_features or ()) - READER_FEATURES)
    if unknown:
        return f"reader features {unknown}"
    mode = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if protocol.min_reader_version >= 2 and mode != "none":
        return f"column mapping ({mode}): the files' column names are not the table's"
    if "deletionVectors" in (protocol.reader_features or ()):
        actions = pa.table(table.get_add_actions(flatten=True))
        vectors = [n for n in actions.column_names if n.startswith("deletionVector")]
        if not vectors:
            return "deletion vectors enabled, and the log's actions do not say which are in use"
        if any(actions.column(n).null_count < actions.num_rows for n in vectors):
            return "deletion vectors in use: some rows of the files are deleted"
    return None


def snapshot_files(table: Any, bucket: str, root: str) -> list[tuple[str, dict[str, Any]]]:
    """Each data file of the snapshot as ``(s3 URL, partition values)``.

    Raises:
        ValueError: A data file outside ``bucket`` (a shallow clone's absolute path).
    """
    return [(url, values) for url, values, _, _ in _snapshot_entries(table, bucket, root)]


def _snapshot_entries(
    table: Any, bucket: str, root: str
) -> list[tuple[str, dict[str, Any], int, int]]:
    """:func:`snapshot_files` with each file's size and modification time (ms) from the log."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    files = []
    for action in actions:
        path = unquote(action["path"])  # the log holds paths URL-encoded once more
        if "://" in path:
            scheme, _, rest = path.partition("://")
            where, _, key = rest.partition("/")
            if scheme.lower() not in ("s3", "s3a") or where != bucket:
                raise ValueError(f"data file outside the table's bucket: {path}")
        else:
            key = f"{root}/{path}" if root else path
        values = {
            name.removeprefix("partition."): value
            for name, value in action.items()
            if name.startswith("partition.")
        }
        url = f"s3://{bucket}/{quote(key)}"
        # deltalake gives both for every add action (stand-ins in unit tests may not)
        size, mtime = int(action.get("size_bytes") or 0), int(action.get("modification_time") or 0)
        files.append((url, values, size, mtime))
    return files


def gateway_store(gateway: Gateway, bucket: str) -> Any:
    """DataFusion's ``AmazonS3`` store for ``bucket`` through ``gateway``."""
    from datafusion.object_store import AmazonS3

    options = gateway.s3fs_options()
    return AmazonS3(
        bucket_name=bucket,
        endpoint=gateway.endpoint_url,
        allow_http=True,
        access_key_id=options["key"],
        secret_access_key=options["secret"],
        region=options["client_kwargs"]["region_name"],
    )


def register_files(
    ctx: Any, name: str, table: Any, store: Any, location: tuple[str, str]
) -> list[str]:
    """Register ``name`` in ``ctx`` as the ``UNION ALL`` of the snapshot's files, read by
    DataFusion's own reader from ``store`` (an ``object_store`` store such as
    :func:`gateway_store`); return the files' URLs.

    ``location`` is ``(bucket, root)``: where the table is. ``store`` is registered for
    ``s3://bucket`` in ``ctx`` (replacing one registered there before). A view of that name
    already in ``ctx`` is replaced.

    Raises:
        ValueError: See :func:`snapshot_files`; or a partition value that does not convert to
            its column's type.
    """
    bucket, root = location
    ctx.register_object_store("s3://", store, bucket)
    files = snapshot_files(table, bucket, root)
    _register_union(ctx, name, table, files)
    return [url for url, _ in files]


#: The scans a snapshot view is read with at most (one per partition at least).
SCANS = 32


def register_view(
    ctx: Any, name: str, table: Any, gateway: Gateway, location: tuple[str, str]
) -> list[str]:
    """Register ``name`` in ``ctx`` over a snapshot view of the gateway's
    (:mod:`tiercache.gateway.snapshots`): a directory listing exactly the snapshot's files, one
    subdirectory per partition, each read by DataFusion as a listing table (listed once, then
    kept by DataFusion for the session: no request per query but the data's); the partitions'
    values as literal columns, joined with ``UNION ALL``. Returns the files' real URLs.

    Raises:
        ValueError: See :func:`snapshot_files`; or a partition value that does not convert.
        OSError: The gateway refused or did not answer (``GatewayError`` among them).
    """
    bucket, root = location
    ctx.register_object_store("s3://", gateway_store(gateway, bucket), bucket)
    entries = _snapshot_entries(table, bucket, root)
    groups: dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]] = {}
    for url, values, size, mtime in entries:
        key = unquote(url.removeprefix(f"s3://{bucket}/"))
        entry = {
            "key": key,
            "size": size,
            "version": f"delta:{mtime}:{size}",
            "mtime": mtime / 1000,
        }
        groups.setdefault(tuple(sorted(values.items())), []).append(entry)
    # How many scans: DataFusion reads one scan's files over its target partitions (the
    # number of CPUs by default), so files / CPUs scans read every file at once; fewer plan
    # faster (a selective query), more only queue. At most SCANS.
    wanted = min(SCANS, -(-len(entries) // (os.cpu_count() or 1)))
    per_scan = max(1, -(-len(entries) // max(1, wanted)))
    scans = [
        (partition, members[i : i + per_scan])
        for partition, members in groups.items()
        for i in range(0, len(members), per_scan)
    ]
    prefix = gateway.snapshot(bucket, root, [members for _, members in scans])
    sources = [
        (f"s3://{bucket}/{quote(prefix)}p{number}/", dict(partition))
        for number, (partition, _) in enumerate(scans)
    ]
    _register_union(ctx, name, table, sources)
    return [url for url, _, _, _ in entries]


def _register_union(
    ctx: Any, name: str, table: Any, sources: list[tuple[str, dict[str, Any]]]
) -> None:
    """Register ``name`` in ``ctx`` (replacing a view of that name) as the ``UNION ALL`` of
    ``sources``: each a Parquet file or directory URL read with the table's schema, and the
    partition values its files share as literal columns. No source: an empty table of the
    table's columns.

    Raises:
        ValueError: A partition value that does not convert to its column's type.
    """
    import pyarrow as pa
    from datafusion import col, lit

    schema = pa.schema(table.schema().to_arrow())
    partitions = set(table.metadata().partition_columns)
    stored = pa.schema([field for field in schema if field.name not in partitions])
    frame: Any = None
    for url, values in sources:
        part = ctx.read_parquet(url, schema=stored).select(
            *[
                lit(_scalar(values.get(field.name), field)).alias(field.name)
                if field.name in partitions
                else col(field.name)
                for field in schema
            ]
        )
        frame = part if frame is None else frame.union(part)
    if frame is None:  # an empty snapshot: an empty table of the right columns
        frame = ctx.from_arrow(schema.empty_table())
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    ctx.register_view(name, frame)


def _scalar(value: Any, field: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.scalar(value, field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"partition value {value!r} of column {field.name!r} is not a {field.type}"
        ) from exc


def split_location(table_uri: str) -> tuple[str, str]:
    """``s3://bucket/path/to/table`` -> ``("bucket", "path/to/table")``; a GCS or Azure URI
    likewise (the container of ``abfss://container@account.../t``): the gateway's bucket."""
    from tiercache.integrations.store_options import bucket_and_path

    return bucket_and_path(table_uri)
