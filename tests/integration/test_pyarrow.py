"""Integration: pyarrow reads Parquet through tiercache::s3:// (moto in a subprocess)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tiercache import MemoryTier, Settings, TieredFileSystem
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration


def table(rows: int, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(offset, offset + rows), pa.int64()),
            "name": pa.array([f"name-{i}" for i in range(offset, offset + rows)]),
            "value": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
        }
    )


def tiered(options: dict[str, Any]) -> TieredFileSystem:
    settings = Settings(block_size_bytes=256 * 1024, memory_bytes=64 << 20)
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**options, "skip_instance_cache": True},
        settings=settings,
        tiers=[MemoryTier(settings.memory_bytes)],
        skip_instance_cache=True,
    )


def write(fs: TieredFileSystem, path: str, data: pa.Table) -> None:
    with fs.open(path, "wb") as f:
        pq.write_table(data, f, row_group_size=10_000)


def test_read_table_through_the_cache(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    fs = tiered(s3_server.storage_options(fault_proxy.url))
    expected = table(50_000)
    path = f"{s3_bucket}/t/one.parquet"
    write(fs, path, expected)
    fault_proxy.reset_counters()
    assert pq.read_table(path, filesystem=fs).equals(expected)
    cold = fault_proxy.requests()
    assert (
        pq.read_table(path, filesystem=fs, columns=["id"])
        .column("id")
        .equals(expected.column("id"))
    )
    assert pq.read_table(path, filesystem=fs).equals(expected)
    assert fault_proxy.requests() == cold  # warm: nothing more from the origin
    assert fs.stats()["tiers"]["memory"]["hits"] > 0
    fs.close()


def test_dataset_over_the_filesystem(s3_server: S3Server, s3_bucket: str) -> None:
    fs = tiered(s3_server.storage_options())
    parts = [table(20_000, offset=i * 20_000) for i in range(3)]
    for i, part in enumerate(parts):
        write(fs, f"{s3_bucket}/ds/part-{i}.parquet", part)
    dataset = ds.dataset(f"{s3_bucket}/ds", filesystem=fs, format="parquet")
    result = dataset.to_table(filter=ds.field("id") >= 30_000, columns=["id", "value"])
    assert result.num_rows == 30_000
    assert result.column("id").to_pylist() == list(range(30_000, 60_000))
    # The same through pyarrow's own wrapper, as DataFusion and deltalake use it.
    wrapped = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    again = ds.dataset(f"{s3_bucket}/ds", filesystem=wrapped, format="parquet").to_table()
    assert again.sort_by("id").equals(pa.concat_tables(parts))
    fs.close()
