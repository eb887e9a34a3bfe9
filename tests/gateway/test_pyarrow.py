"""pyarrow's own S3 client (``pyarrow.fs.S3FileSystem``, the AWS C++ SDK) through the gateway:
Parquet reads, dataset scans, file infos and listings, ranged reads, writes."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.gateway.conftest import BLOCK
from tests.gateway.engines import arrow_fs, new_bucket
from tests.helpers import letters
from tiercache.gateway import Gateway
from tiercache.testing import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _table(rows: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "group": pa.array([f"g{i % 4}" for i in range(rows)]),
            "value": pa.array([i * 0.25 for i in range(rows)]),
        }
    )


def _parquet(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def test_parquet_in_the_origin_reads_whole_and_filtered(
    s3_server: S3Server, gateway: Gateway
) -> None:
    bucket = new_bucket(s3_server)
    table = _table(50_000)
    s3_server.put_object(bucket, "t/data.parquet", _parquet(table, row_group_size=10_000))
    fs = arrow_fs(gateway)
    assert pq.read_table(f"{bucket}/t/data.parquet", filesystem=fs).equals(table)
    some = pq.read_table(
        f"{bucket}/t/data.parquet", filesystem=fs, columns=["id"], filters=[("id", ">=", 49_990)]
    )
    assert some.column("id").to_pylist() == list(range(49_990, 50_000))


def test_dataset_scan_with_filter_over_partitions_written_through_the_gateway(
    s3_server: S3Server, gateway: Gateway
) -> None:
    bucket = new_bucket(s3_server)
    fs = arrow_fs(gateway)
    table = _table(20_000)
    ds.write_dataset(
        table,
        f"{bucket}/p",
        filesystem=fs,
        format="parquet",
        partitioning=["group"],
        partitioning_flavor="hive",
    )
    dataset = ds.dataset(f"{bucket}/p", filesystem=fs, format="parquet", partitioning="hive")
    scanned = dataset.to_table(
        filter=(ds.field("group") == "g2") & (ds.field("value") < 100.0), columns=["id", "value"]
    ).sort_by("id")
    expected = table.filter(
        pc.and_(pc.equal(table["group"], "g2"), pc.less(table["value"], 100.0))
    ).select(["id", "value"])
    assert scanned.equals(expected)
    assert dataset.count_rows() == 20_000


def test_file_infos_and_listings(s3_server: S3Server, gateway: Gateway, client: Any) -> None:
    bucket = new_bucket(s3_server)
    for key, data in [("d/a.bin", b"a" * 10), ("d/sub/b.bin", b"b" * 20), ("top.bin", b"t")]:
        s3_server.put_object(bucket, key, data)
    fs = arrow_fs(gateway)
    info = fs.get_file_info(f"{bucket}/d/a.bin")
    assert (info.type, info.size) == (pafs.FileType.File, 10)
    assert fs.get_file_info(f"{bucket}/d").type == pafs.FileType.Directory  # a prefix only
    assert fs.get_file_info(f"{bucket}/d/sub").type == pafs.FileType.Directory
    assert fs.get_file_info(f"{bucket}/nope").type == pafs.FileType.NotFound
    assert fs.get_file_info(f"{bucket}/d/a").type == pafs.FileType.NotFound
    assert fs.get_file_info(bucket).type == pafs.FileType.Directory
    everything = fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
    assert {(i.path, i.type, i.size) for i in everything} == {
        (f"{bucket}/d", pafs.FileType.Directory, None),
        (f"{bucket}/d/a.bin", pafs.FileType.File, 10),
        (f"{bucket}/d/sub", pafs.FileType.Directory, None),
        (f"{bucket}/d/sub/b.bin", pafs.FileType.File, 20),
        (f"{bucket}/top.bin", pafs.FileType.File, 1),
    }
    shallow = fs.get_file_info(pafs.FileSelector(f"{bucket}/d"))
    assert sorted(i.path for i in shallow) == [f"{bucket}/d/a.bin", f"{bucket}/d/sub"]
    with pytest.raises(FileNotFoundError):
        fs.get_file_info(pafs.FileSelector(f"{bucket}/nope"))
    # An empty directory is a zero-byte "empty/" marker object, probed with HEAD "empty/".
    fs.create_dir(f"{bucket}/empty")
    assert client.head_object(Bucket=bucket, Key="empty/")["ContentLength"] == 0
    assert fs.get_file_info(f"{bucket}/empty").type == pafs.FileType.Directory
    assert fs.get_file_info(pafs.FileSelector(f"{bucket}/empty")) == []
    fs.delete_dir(f"{bucket}/d")
    assert fs.get_file_info(f"{bucket}/d").type == pafs.FileType.NotFound
    assert fs.get_file_info(f"{bucket}/top.bin").type == pafs.FileType.File


def test_read_at_ranges_across_blocks(s3_server: S3Server, gateway: Gateway) -> None:
    bucket = new_bucket(s3_server)
    data = letters(3 * BLOCK + 17)
    s3_server.put_object(bucket, "r/blob", data)
    fs = arrow_fs(gateway)
    with fs.open_input_file(f"{bucket}/r/blob") as f:
        assert f.size() == len(data)
        for offset, length in [
            (0, 4),
            (BLOCK - 3, 10),  # across a block border
            (BLOCK, BLOCK),  # exactly one block
            (2 * BLOCK - 1, BLOCK + 2),  # three blocks touched
            (len(data) - 5, 5),  # the tail
            (len(data) - 5, 100),  # past the end: what there is
            (17, 0),
        ]:
            assert f.read_at(length, offset) == data[offset : offset + length], (offset, length)
    with fs.open_input_stream(f"{bucket}/r/blob") as stream:
        assert stream.read() == data


def test_writes_copies_and_deletes(s3_server: S3Server, gateway: Gateway) -> None:
    bucket = new_bucket(s3_server)
    fs = arrow_fs(gateway)
    big = letters(12 << 20)  # past pyarrow's 5 MiB part size: a multipart upload
    with fs.open_output_stream(f"{bucket}/w/big.bin") as out:
        out.write(big)
    with fs.open_input_stream(f"{bucket}/w/big.bin") as stream:
        assert stream.read() == big
    fs.copy_file(f"{bucket}/w/big.bin", f"{bucket}/w/copy.bin")
    fs.move(f"{bucket}/w/copy.bin", f"{bucket}/w/moved.bin")
    assert fs.get_file_info(f"{bucket}/w/copy.bin").type == pafs.FileType.NotFound
    with fs.open_input_file(f"{bucket}/w/moved.bin") as f:
        assert f.read_at(100, (5 << 20) - 50) == big[(5 << 20) - 50 : (5 << 20) + 50]
    with fs.open_output_stream(f"{bucket}/w/big.bin") as out:  # overwritten: read your writes
        out.write(b"small now")
    with fs.open_input_stream(f"{bucket}/w/big.bin") as stream:
        assert stream.read() == b"small now"
    fs.delete_file(f"{bucket}/w/big.bin")
    assert fs.get_file_info(f"{bucket}/w/big.bin").type == pafs.FileType.NotFound
