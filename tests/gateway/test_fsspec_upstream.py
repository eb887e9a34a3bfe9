"""boto3 against a gateway whose target is not S3: fsspec's ``memory`` filesystem (the gateway
process's own) and a local directory (``dir`` over ``file``). Every call that is not a read of
object bytes is emulated on the target (:mod:`tiercache.gateway.upstream_fsspec`)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError

from tests.gateway.test_duckdb import httpfs_connection
from tests.helpers import letters
from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BLOCK = 256 << 10
BUCKET = "bkt"


def client_of(gateway: Gateway) -> Any:
    """boto3 against ``gateway`` (path-style, its own retries off)."""
    options = gateway.s3fs_options()
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def dir_fs(root: Path) -> TieredFileSystem:
    """A filesystem over the local directory ``root`` (its subdirectories are the buckets)."""
    return TieredFileSystem(
        target_protocol="dir",
        target_options={"path": str(root), "target_protocol": "file"},
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20),
        skip_instance_cache=True,
    )


@pytest.fixture(scope="module", params=["memory", "dir"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """boto3 against a gateway over each target, whose bucket ``bkt`` exists."""
    if request.param == "memory":
        fs = TieredFileSystem(
            target_protocol="memory",
            settings=Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20),
            skip_instance_cache=True,
        )
    else:
        root = tmp_path_factory.mktemp("origin")
        (root / BUCKET).mkdir()
        fs = dir_fs(root)
    with start(fs) as gateway:
        s3 = client_of(gateway)
        if request.param == "memory":  # a put makes a memory bucket (the child's memory)
            s3.put_object(Bucket=BUCKET, Key="zzz-keep", Body=b"")
        yield s3


@pytest.fixture
def prefix() -> str:
    """A prefix no other test uses (the gateway is the module's)."""
    return f"t-{uuid.uuid4().hex[:8]}/"


def _code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return str(response["Error"]["Code"]), int(response["ResponseMetadata"]["HTTPStatusCode"])


def test_get_range_and_head(client: Any, prefix: str) -> None:
    data = letters(3 * BLOCK + 17)
    put = client.put_object(Bucket=BUCKET, Key=f"{prefix}a.bin", Body=data)
    whole = client.get_object(Bucket=BUCKET, Key=f"{prefix}a.bin")
    assert whole["Body"].read() == data
    head = client.head_object(Bucket=BUCKET, Key=f"{prefix}a.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == whole["ETag"] == put["ETag"]
    for spec, expected in [("bytes=0-9", data[:10]), ("bytes=-5", data[-5:])]:
        got = client.get_object(Bucket=BUCKET, Key=f"{prefix}a.bin", Range=spec)
        assert got["Body"].read() == expected
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [
        (f"{prefix}a.bin", len(data), head["ETag"])
    ]


def test_missing_keys_and_buckets_are_404(client: Any, prefix: str) -> None:
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=BUCKET, Key=f"{prefix}nope")
    assert _code(error) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as error:
        client.head_object(Bucket=BUCKET, Key=f"{prefix}nope")
    assert _code(error)[1] == 404
    with pytest.raises(ClientError) as error:
        client.list_objects_v2(Bucket="no-such-bucket")
    assert _code(error) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as error:
        client.head_bucket(Bucket="no-such-bucket")
    assert _code(error)[1] == 404
    client.head_bucket(Bucket=BUCKET)
    assert client.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] in (None, "us-east-1")
    assert BUCKET in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_list_v2_prefix_delimiter_and_pages(client: Any, prefix: str) -> None:
    keys = ["a", "b/1", "b/2", "c", "d/x/1", "d/y", "e"]
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=prefix + key, Body=key.encode())
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 2}
    )
    objects, prefixes, sizes = [], [], []
    for page in pages:
        objects += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"][len(prefix) :] for p in page.get("CommonPrefixes", [])]
        sizes.append(page["KeyCount"])
    assert objects == ["a", "c", "e"]
    assert prefixes == ["b/", "d/"]
    assert sizes == [2, 2, 1]
    flat = client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix, PaginationConfig={"PageSize": 3}
    )
    assert [o["Key"][len(prefix) :] for p in flat for o in p.get("Contents", [])] == keys
    under = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}d/", Delimiter="/")
    assert [o["Key"] for o in under["Contents"]] == [f"{prefix}d/y"]
    assert [p["Prefix"] for p in under["CommonPrefixes"]] == [f"{prefix}d/x/"]
    after = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, StartAfter=f"{prefix}c")
    assert [o["Key"][len(prefix) :] for o in after["Contents"]] == ["d/x/1", "d/y", "e"]
    v1 = client.get_paginator("list_objects").paginate(
        Bucket=BUCKET, Prefix=prefix, PaginationConfig={"PageSize": 4}
    )
    assert [o["Key"][len(prefix) :] for p in v1 for o in p.get("Contents", [])] == keys


def test_put_if_absent_and_overwrite(client: Any, prefix: str) -> None:
    key = f"{prefix}_delta_log/00000000000000000000.json"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as error:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"second", IfNoneMatch="*")
    assert _code(error) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"third")  # read back: the tiers forgot
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"third"
    with pytest.raises(ClientError) as error:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x", IfMatch='"whatever"')
    assert _code(error) == ("NotImplemented", 501)


def test_copy_delete_and_delete_objects(client: Any, prefix: str) -> None:
    client.put_object(Bucket=BUCKET, Key=f"{prefix}src", Body=b"payload")
    copied = client.copy_object(
        Bucket=BUCKET, Key=f"{prefix}dst", CopySource={"Bucket": BUCKET, "Key": f"{prefix}src"}
    )
    assert copied["CopyObjectResult"]["ETag"]
    assert client.get_object(Bucket=BUCKET, Key=f"{prefix}dst")["Body"].read() == b"payload"
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}src")
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}never-there")  # 204, as S3
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=BUCKET, Key=f"{prefix}src")
    assert _code(error) == ("NoSuchKey", 404)
    for name in ("x/1", "x/2", "y"):
        client.put_object(Bucket=BUCKET, Key=prefix + name, Body=b"1")
    answer = client.delete_objects(
        Bucket=BUCKET,
        Delete={"Objects": [{"Key": prefix + n} for n in ("x/1", "x/2", "missing")]},
    )
    assert sorted(d["Key"][len(prefix) :] for d in answer["Deleted"]) == ["missing", "x/1", "x/2"]
    left = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert [o["Key"][len(prefix) :] for o in left] == ["dst", "y"]


def test_multipart_upload(client: Any, prefix: str) -> None:
    key = f"{prefix}big.bin"
    parts = [letters(5 << 20), b"tail" * 1000]
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etags = [
        client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=data)["ETag"]
        for n, data in enumerate(parts, 1)
    ]
    listed = client.list_parts(Bucket=BUCKET, Key=key, UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, etags[0], len(parts[0])),
        (2, etags[1], len(parts[1])),
    ]
    in_progress = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in in_progress] == [(key, upload)]
    with pytest.raises(ClientError) as error:
        client.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )
    assert _code(error) == ("InvalidPart", 400)
    done = client.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == client.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"".join(parts)
    assert client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == []
    aborted = client.create_multipart_upload(Bucket=BUCKET, Key=f"{prefix}gone")["UploadId"]
    client.abort_multipart_upload(Bucket=BUCKET, Key=f"{prefix}gone", UploadId=aborted)
    with pytest.raises(ClientError) as error:
        client.list_parts(Bucket=BUCKET, Key=f"{prefix}gone", UploadId=aborted)
    assert _code(error) == ("NoSuchUpload", 404)


def test_duckdb_reads_and_writes_a_local_directory_through_the_gateway(tmp_path: Path) -> None:
    """DuckDB's httpfs: ``read_parquet`` of a file put in the directory, a glob, ``COPY ... TO``
    (a multipart upload of ~15 MB), and a missing key."""
    (tmp_path / "lake" / "logs").mkdir(parents=True)
    table = pa.table({"id": pa.array(range(100_000), pa.int64())})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=20_000)
    (tmp_path / "lake" / "logs" / "part-0.parquet").write_bytes(buffer.getvalue())
    with start(dir_fs(tmp_path)) as gateway:
        con = httpfs_connection(gateway)
        try:
            got = con.execute("SELECT count(*), sum(id) FROM 's3://lake/logs/*.parquet'")
            assert got.fetchall() == [(100_000, sum(range(100_000)))]
            con.execute("COPY (SELECT range AS x FROM range(2000000)) TO 's3://lake/out/big.csv'")
            assert (tmp_path / "lake" / "out" / "big.csv").stat().st_size > 10 << 20
            total = con.execute("SELECT count(*), sum(x) FROM read_csv('s3://lake/out/big.csv')")
            assert total.fetchall() == [(2_000_000, sum(range(2_000_000)))]
            with pytest.raises(duckdb.Error, match="404"):
                con.execute("SELECT * FROM read_parquet('s3://lake/none.parquet')").fetchall()
        finally:
            con.close()
    assert sorted(p.name for p in (tmp_path / "lake" / "out").iterdir()) == ["big.csv"]


def test_a_local_put_is_written_whole_with_the_usual_mode(tmp_path: Path) -> None:
    (tmp_path / BUCKET).mkdir()
    with start(dir_fs(tmp_path)) as gateway:
        s3 = client_of(gateway)
        s3.put_object(Bucket=BUCKET, Key="a/b/c.txt", Body=b"abc", IfNoneMatch="*")
        s3.put_object(Bucket=BUCKET, Key="a/b/c.txt", Body=b"abcd")
        with pytest.raises(ClientError) as error:
            s3.put_object(Bucket="missing", Key="k", Body=b"x")
        assert _code(error) == ("NoSuchBucket", 404)
    written = tmp_path / BUCKET / "a" / "b" / "c.txt"
    assert written.read_bytes() == b"abcd"
    assert written.stat().st_mode & 0o644 == 0o644  # not mkstemp's 0600
    assert sorted(p.name for p in written.parent.iterdir()) == ["c.txt"]  # no temporary left
    assert not (tmp_path / "missing").exists()


def test_directory_markers_are_the_target_directories(client: Any, prefix: str) -> None:
    """``dir/`` (pyarrow's ``create_dir``, its ``HEAD dir/`` probe): the directory itself."""
    with pytest.raises(ClientError) as error:
        client.head_object(Bucket=BUCKET, Key=f"{prefix}d/")
    assert _code(error)[1] == 404
    client.put_object(Bucket=BUCKET, Key=f"{prefix}d/", Body=b"")
    head = client.head_object(Bucket=BUCKET, Key=f"{prefix}d/")
    assert head["ContentLength"] == 0
    assert client.get_object(Bucket=BUCKET, Key=f"{prefix}d/")["Body"].read() == b""
    client.put_object(Bucket=BUCKET, Key=f"{prefix}f", Body=b"a file")
    with pytest.raises(ClientError) as error:
        client.head_object(Bucket=BUCKET, Key=f"{prefix}f/")
    assert _code(error)[1] == 404
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}d/")
    with pytest.raises(ClientError) as error:
        client.head_object(Bucket=BUCKET, Key=f"{prefix}d/")
    assert _code(error)[1] == 404
    assert client.get_object(Bucket=BUCKET, Key=f"{prefix}f")["Body"].read() == b"a file"
