"""boto3 against the gateway: the listings older clients and upload tools make (ListObjects
version 1, ListParts, ListMultipartUploads), each compared with the same call made directly to
the S3 server behind it."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tiercache.testing import S3Server

pytestmark = pytest.mark.integration

#: Keys of the version 1 listing: "directories", a key with markup and non-ASCII (botocore
#: asks for encoding-type=url and decodes it), keys at the top.
KEYS = [
    "a/1",
    "a/2",
    "a/3",
    "a/deep/x",
    "b/1",
    "c & <d>/ü 4",
    "e",
    "f",
    "g/1",
]
PART = 5 << 20  # the smallest part S3 takes, but for the last


def _bucket(s3_server: S3Server) -> str:
    name = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def direct(s3_server: S3Server) -> Any:
    """boto3 against the S3 server itself, configured as the gateway's client is."""
    options = s3_server.storage_options()
    return boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def _page(answer: dict[str, Any]) -> dict[str, Any]:
    """What two ListObjects answers must agree on (the owner is each server's own)."""
    return {
        "keys": [(o["Key"], o["Size"], o["ETag"]) for o in answer.get("Contents", [])],
        "prefixes": [p["Prefix"] for p in answer.get("CommonPrefixes", [])],
        "truncated": answer["IsTruncated"],
        "prefix": answer.get("Prefix", ""),
        "delimiter": answer.get("Delimiter"),
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"Prefix": "a/"},
        {"Delimiter": "/"},
        {"Prefix": "a/", "Delimiter": "/"},
        {"Marker": "b/1"},
        {"Prefix": "a/", "Marker": "a/1", "MaxKeys": 2},
        {"MaxKeys": 3},
        {"MaxKeys": 0},
        {"Prefix": "nothing/"},
    ],
    ids=lambda params: ",".join(f"{k}={v}" for k, v in params.items()) or "all",
)
def test_list_objects_v1_is_the_servers_listing(
    s3_server: S3Server, client: Any, direct: Any, params: dict[str, Any]
) -> None:
    bucket = _bucket(s3_server)
    for key in KEYS:
        s3_server.put_object(bucket, key, key.encode())
    through = client.list_objects(Bucket=bucket, **params)
    assert _page(through) == _page(direct.list_objects(Bucket=bucket, **params))
    assert through["Marker"] == params.get("Marker", "")  # echoed, as S3 does
    assert through["MaxKeys"] == params.get("MaxKeys", 1000)
    assert all(o["Owner"]["ID"] == "tiercache" for o in through.get("Contents", []))
    if through["IsTruncated"] and "Delimiter" not in params:
        # S3 sends NextMarker with a delimiter only; clients continue from the last key.
        assert "NextMarker" not in through


def test_list_objects_v1_pages_by_marker_to_the_whole_listing(
    s3_server: S3Server, client: Any, direct: Any
) -> None:
    bucket = _bucket(s3_server)
    for key in KEYS:
        s3_server.put_object(bucket, key, key.encode())
    pages = client.get_paginator("list_objects").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    )
    answers = list(pages)
    assert [o["Key"] for page in answers for o in page.get("Contents", [])] == sorted(KEYS)
    assert len(answers) == 5  # 9 keys, 2 a page: the paginator followed the last keys
    # Page by page, the same as the server's own answer to the same marker.
    marker = ""
    for answer in answers:
        same = direct.list_objects(Bucket=bucket, MaxKeys=2, Marker=marker)
        assert _page(answer) == _page(same)
        marker = answer["Contents"][-1]["Key"]


def test_list_objects_v1_with_a_delimiter_sends_next_marker(
    s3_server: S3Server, client: Any, direct: Any
) -> None:
    bucket = _bucket(s3_server)
    for key in KEYS:
        s3_server.put_object(bucket, key, key.encode())
    params = {"Prefix": "a/", "Delimiter": "/", "MaxKeys": 2}
    first = client.list_objects(Bucket=bucket, **params)
    assert _page(first) == _page(direct.list_objects(Bucket=bucket, **params))
    assert first["IsTruncated"] is True
    assert first["NextMarker"]  # with a delimiter, S3 names where to go on
    rest = client.list_objects(Bucket=bucket, Marker=first["NextMarker"], **params)
    same = direct.list_objects(Bucket=bucket, Marker=first["NextMarker"], **params)
    assert _page(rest) == _page(same)
    assert [o["Key"] for o in first["Contents"] + rest["Contents"]] == ["a/1", "a/2", "a/3"]


def test_list_objects_v1_refuses_a_bad_max_keys(s3_server: S3Server, gateway: Any) -> None:
    import urllib.error
    import urllib.request

    bucket = _bucket(s3_server)
    url = f"{gateway.endpoint_url}/{bucket}?max-keys=ten"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    body = caught.value.read()
    assert caught.value.code == 400
    assert b"<Code>InvalidArgument</Code>" in body
    assert b"<ArgumentName>max-keys</ArgumentName>" in body


def test_list_parts_of_an_upload_in_progress(s3_server: S3Server, client: Any, direct: Any) -> None:
    bucket = _bucket(s3_server)
    upload = client.create_multipart_upload(Bucket=bucket, Key="big/object")
    upload_id = upload["UploadId"]
    sizes = [PART, PART, PART, PART, 17]
    etags = []
    for number, size in enumerate(sizes, start=1):
        answer = client.upload_part(
            Bucket=bucket,
            Key="big/object",
            UploadId=upload_id,
            PartNumber=number,
            Body=bytes([number]) * size,
        )
        etags.append(answer["ETag"])
    listed = client.list_parts(Bucket=bucket, Key="big/object", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == list(
        zip(range(1, 6), sizes, etags, strict=True)
    )
    assert listed["IsTruncated"] is False
    assert (listed["Bucket"], listed["Key"], listed["UploadId"]) == (
        bucket,
        "big/object",
        upload_id,
    )
    same = direct.list_parts(Bucket=bucket, Key="big/object", UploadId=upload_id)
    assert listed["Parts"] == same["Parts"]
    # Paging with MaxParts: 2 + 2 + 1, each page the server's own.
    first = client.list_parts(Bucket=bucket, Key="big/object", UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert (first["IsTruncated"], first["NextPartNumberMarker"], first["MaxParts"]) == (
        True,
        2,
        2,
    )
    pages = client.get_paginator("list_parts").paginate(
        Bucket=bucket, Key="big/object", UploadId=upload_id, PaginationConfig={"PageSize": 2}
    )
    numbers = [[p["PartNumber"] for p in page["Parts"]] for page in pages]
    assert numbers == [[1, 2], [3, 4], [5]]
    third = client.list_parts(
        Bucket=bucket, Key="big/object", UploadId=upload_id, MaxParts=2, PartNumberMarker=4
    )
    assert [p["PartNumber"] for p in third["Parts"]] == [5]
    assert third["IsTruncated"] is False
    assert third["PartNumberMarker"] == 4
    # The upload completes from the listed parts (what a resuming client does).
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="big/object",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed["Parts"]]
        },
    )
    body = client.get_object(Bucket=bucket, Key="big/object")["Body"].read()
    assert body == b"".join(bytes([n]) * size for n, size in enumerate(sizes, start=1))


def test_list_parts_of_an_unknown_upload_is_no_such_upload(
    s3_server: S3Server, client: Any
) -> None:
    bucket = _bucket(s3_server)
    with pytest.raises(ClientError) as caught:
        client.list_parts(Bucket=bucket, Key="k", UploadId="no-such-upload")
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_multipart_uploads(s3_server: S3Server, client: Any, direct: Any) -> None:
    bucket = _bucket(s3_server)
    first = client.create_multipart_upload(Bucket=bucket, Key="up/one")["UploadId"]
    second = client.create_multipart_upload(Bucket=bucket, Key="up/two")["UploadId"]
    other = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/three")["UploadId"]
    everything = client.list_multipart_uploads(Bucket=bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in everything["Uploads"]) == sorted(
        [("up/one", first), ("up/two", second), ("elsewhere/three", other)]
    )
    assert everything["IsTruncated"] is False
    assert everything["Bucket"] == bucket
    assert all(u["Initiated"].tzinfo is not None for u in everything["Uploads"])
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix="up/")
    assert sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"]) == [
        ("up/one", first),
        ("up/two", second),
    ]
    assert listed["Prefix"] == "up/"
    same = direct.list_multipart_uploads(Bucket=bucket, Prefix="up/")
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        (u["Key"], u["UploadId"]) for u in same["Uploads"]
    ]
    # Aborting what the listing found (what `aws s3api` users do with stale uploads).
    for upload in listed["Uploads"]:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    left = client.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in left["Uploads"]] == [("elsewhere/three", other)]


def test_list_multipart_uploads_encodes_keys_when_asked(s3_server: S3Server, client: Any) -> None:
    bucket = _bucket(s3_server)
    client.create_multipart_upload(Bucket=bucket, Key="dir/a b&ü")
    plain = client.list_multipart_uploads(Bucket=bucket)
    assert [u["Key"] for u in plain["Uploads"]] == ["dir/a b&ü"]
    encoded = client.list_multipart_uploads(Bucket=bucket, EncodingType="url")
    assert [u["Key"] for u in encoded["Uploads"]] == ["dir/a%20b%26%C3%BC"]  # botocore keeps it
    assert encoded["EncodingType"] == "url"
