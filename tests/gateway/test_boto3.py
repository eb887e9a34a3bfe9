"""boto3 against the gateway: every S3 operation the gateway serves, against a real S3 server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import letters
from tiercache.gateway import Gateway
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration


def _bucket(s3_server: S3Server) -> str:
    name = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


def test_get_head_and_ranges_are_the_origin_bytes(
    s3_server: S3Server, client: Any, gateway: Gateway
) -> None:
    bucket = _bucket(s3_server)
    data = letters(3 * (256 << 10) + 17)
    s3_server.put_object(bucket, "t/a.bin", data)
    whole = client.get_object(Bucket=bucket, Key="t/a.bin")
    assert whole["Body"].read() == data
    assert whole["ContentLength"] == len(data)
    head = client.head_object(Bucket=bucket, Key="t/a.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == whole["ETag"]
    for spec, expected in [
        ("bytes=0-9", data[:10]),
        ("bytes=100-", data[100:]),
        ("bytes=-5", data[-5:]),
        ("bytes=262140-262150", data[262140:262151]),
        ("bytes=10-99999999", data[10:]),
    ]:
        got = client.get_object(Bucket=bucket, Key="t/a.bin", Range=spec)
        assert got["Body"].read() == expected, spec
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="t/a.bin", Range=f"bytes={len(data)}-")
    assert error.value.response["Error"]["Code"] == "InvalidRange"


def test_missing_keys_and_buckets_are_s3_errors(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="nope")
    assert error.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as error:
        client.head_object(Bucket=bucket, Key="nope")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as error:
        client.list_objects_v2(Bucket="no-such-bucket-here")
    assert error.value.response["Error"]["Code"] == "NoSuchBucket"


def test_conditional_reads(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    s3_server.put_object(bucket, "k", b"hello")
    etag = client.head_object(Bucket=bucket, Key="k")["ETag"]
    assert client.get_object(Bucket=bucket, Key="k", IfMatch=etag)["Body"].read() == b"hello"
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="k", IfMatch='"nope"')
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="k", IfNoneMatch=etag)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_writes_pass_through_and_are_read_back(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    client.put_object(Bucket=bucket, Key="w/one", Body=b"first")
    assert client.get_object(Bucket=bucket, Key="w/one")["Body"].read() == b"first"
    client.put_object(Bucket=bucket, Key="w/one", Body=b"second version")  # read your writes
    assert client.get_object(Bucket=bucket, Key="w/one")["Body"].read() == b"second version"
    with pytest.raises(ClientError) as error:  # a conditional put that must fail
        client.put_object(Bucket=bucket, Key="w/one", Body=b"x", IfNoneMatch="*")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    client.copy_object(Bucket=bucket, Key="w/two", CopySource={"Bucket": bucket, "Key": "w/one"})
    assert client.get_object(Bucket=bucket, Key="w/two")["Body"].read() == b"second version"
    client.delete_object(Bucket=bucket, Key="w/one")
    with pytest.raises(ClientError):
        client.get_object(Bucket=bucket, Key="w/one")
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "w/two"}]})
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_listing_v2(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    for name in ["a/1", "a/2", "b/3", "c & <d>/ü 4", "top"]:
        s3_server.put_object(bucket, name, name.encode())
    listed = client.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "b/", "c & <d>/"]
    assert [o["Key"] for o in listed["Contents"]] == ["top"]
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    )
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys == sorted(["a/1", "a/2", "b/3", "c & <d>/ü 4", "top"])
    head = client.head_bucket(Bucket=bucket)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["BucketRegion"] == "us-east-1"  # x-amz-bucket-region, as S3 sends it
    assert listed["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]


def test_directory_marker_keys_are_objects_of_their_own(s3_server: S3Server, client: Any) -> None:
    """A key ending in "/" names that object, never the key without the slash (the chain's
    fsspec paths drop the slash: before the fix HEAD "d/" was 404, GET "x/" a 503 loop)."""
    bucket = _bucket(s3_server)
    s3_server.put_object(bucket, "d/", b"")
    s3_server.put_object(bucket, "x", b"the object x")
    s3_server.put_object(bucket, "x/", b"marker x/ with bytes")
    head = client.head_object(Bucket=bucket, Key="d/")
    assert head["ContentLength"] == 0
    assert client.get_object(Bucket=bucket, Key="d/")["Body"].read() == b""
    assert client.get_object(Bucket=bucket, Key="x/")["Body"].read() == b"marker x/ with bytes"
    assert client.get_object(Bucket=bucket, Key="x")["Body"].read() == b"the object x"
    part = client.get_object(Bucket=bucket, Key="x/", Range="bytes=7-8")
    assert (part["Body"].read(), part["ContentRange"]) == (b"x/", "bytes 7-8/20")
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="d/", IfNoneMatch=head["ETag"])
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as error:
        client.get_object(Bucket=bucket, Key="x/", IfMatch=head["ETag"])  # d/'s, not x/'s
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    for missing in ("nope/", "x//"):
        with pytest.raises(ClientError) as error:
            client.get_object(Bucket=bucket, Key=missing)
        assert error.value.response["Error"]["Code"] == "NoSuchKey"
        with pytest.raises(ClientError) as error:
            client.head_object(Bucket=bucket, Key=missing)
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_multipart_upload_of_20_mib(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    data = letters(20 << 20)
    upload = client.create_multipart_upload(Bucket=bucket, Key="big")
    parts = []
    for number, offset in enumerate(range(0, len(data), 8 << 20), start=1):
        answer = client.upload_part(
            Bucket=bucket,
            Key="big",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data[offset : offset + (8 << 20)],
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == data


def test_health(gateway: Gateway) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{gateway.endpoint_url}/-/health", timeout=10) as answer:
        assert answer.status == 200
