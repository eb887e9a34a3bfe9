"""What the gateway does not serve is refused (501 NotImplemented), never answered with other
bytes: a version or a part of an object is not the current whole object. The listings it once
refused (ListObjects version 1, ListParts, ListMultipartUploads) are served
(tests/gateway/test_listings.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tiercache.testing import S3Server

pytestmark = pytest.mark.integration

REFUSED: dict[str, Callable[[Any, str], Any]] = {
    "GetObject with VersionId": lambda c, b: c.get_object(Bucket=b, Key="k", VersionId="v1"),
    "HeadObject with VersionId": lambda c, b: c.head_object(Bucket=b, Key="k", VersionId="v1"),
    "GetObject with PartNumber": lambda c, b: c.get_object(Bucket=b, Key="k", PartNumber=1),
    "DeleteObject with VersionId": lambda c, b: c.delete_object(Bucket=b, Key="k", VersionId="v"),
    "ListObjectVersions": lambda c, b: c.list_object_versions(Bucket=b),
    "GetObjectAcl": lambda c, b: c.get_object_acl(Bucket=b, Key="k"),
    "GetObjectTagging": lambda c, b: c.get_object_tagging(Bucket=b, Key="k"),
    "CreateBucket": lambda c, b: c.create_bucket(Bucket=f"{b}-new"),
}


@pytest.mark.parametrize("operation", list(REFUSED))
def test_what_is_not_served_is_refused(s3_server: S3Server, client: Any, operation: str) -> None:
    bucket = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    s3_server.put_object(bucket, "k", b"the current bytes")
    with pytest.raises(ClientError) as info:
        REFUSED[operation](client, bucket)
    status = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == 501, info.value.response
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the current bytes"


#: Once refused, now passed to the origin: each answers 200 with what the origin holds.
SERVED: dict[str, Callable[[Any, str], Any]] = {
    "ListObjects (v1)": lambda c, b: c.list_objects(Bucket=b)["Contents"][0]["Key"],
    "ListMultipartUploads": lambda c, b: c.list_multipart_uploads(Bucket=b).get("Uploads", []),
    "ListParts": lambda c, b: c.list_parts(
        Bucket=b, Key="u", UploadId=c.create_multipart_upload(Bucket=b, Key="u")["UploadId"]
    ).get("Parts", []),
}
EXPECTED: dict[str, object] = {"ListObjects (v1)": "k", "ListMultipartUploads": [], "ListParts": []}


@pytest.mark.parametrize("operation", list(SERVED))
def test_the_listings_are_served(s3_server: S3Server, client: Any, operation: str) -> None:
    bucket = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    s3_server.put_object(bucket, "k", b"the current bytes")
    assert SERVED[operation](client, bucket) == EXPECTED[operation]
