"""Which S3 operation a request is: from its method, path and query (path-style only).

``/bucket/key`` addresses an object, ``/bucket`` a bucket, ``/`` the service; the query names
sub-resources (``?uploads``, ``?uploadId=``, ``?delete``, ``?location``, ``?list-type=2``...).
A key with a ``.`` or ``..`` segment is refused: it would name another key on a filesystem-like
origin, and no client writes one on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.sigv4_types import QUERY_AUTH_PARAMS


@dataclass(frozen=True)
class Route:
    """An S3 operation (``GetObject``...), its bucket and key ("" when not addressed)."""

    operation: str
    bucket: str = ""
    key: str = ""


_OBJECT = {
    "GET": "GetObject",
    "HEAD": "HeadObject",
    "PUT": "PutObject",
    "DELETE": "DeleteObject",
}


#: The gateway's own endpoints (no bucket name starts with ``-``), by method and path.
_OWN = {
    ("GET", "/-/health"): "Health",
    ("HEAD", "/-/health"): "Health",
    ("GET", "/-/stats"): "Stats",
    ("POST", "/-/seed"): "Seed",
    ("POST", "/-/snapshot"): "Snapshot",
}


def route(method: str, path: str, query: Mapping[str, str]) -> Route:
    """The operation of a request to ``path`` (decoded) with ``query``.

    Raises:
        S3Error: A method or sub-resource the gateway does not serve (405 / 501), or a key with
            a ``.`` / ``..`` segment (400).
    """
    own = _OWN.get((method, path))
    if own is not None:
        return Route(own)
    if not path.startswith("/"):
        raise S3Error("InvalidURI", 400, f"the path {path!r} does not start with /")
    bucket, _, key = path[1:].partition("/")
    if not bucket:
        if method == "GET":
            return Route("ListBuckets")
        raise S3Error("MethodNotAllowed", 405, f"{method} / is not an S3 operation")
    if bucket.startswith("-"):
        raise S3Error("InvalidBucketName", 400, f"no bucket name starts with '-': {bucket!r}")
    if not key:
        return Route(_bucket_operation(method, query), bucket)
    if any(segment in (".", "..") for segment in key.split("/")):
        raise S3Error("InvalidURI", 400, f"the key {key!r} has a '.' or '..' segment")
    return Route(_object_operation(method, query), bucket, key)


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    if method == "HEAD":
        return "HeadBucket"
    if method == "GET":
        if "location" in query:
            return "GetBucketLocation"
        if "uploads" in query:
            return "ListMultipartUploads"
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        if not (set(query) - _LIST_V1 - _PRESIGN):
            return "ListObjects"
        raise S3Error("NotImplemented", 501, f"bucket sub-resource {sorted(query)} not served")
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    raise S3Error("NotImplemented", 501, f"{method} on a bucket is not served by the gateway")


def _object_operation(method: str, query: Mapping[str, str]) -> str:
    if "uploadId" in query:
        return {
            "PUT": "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, "Unknown")
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    operation = _OBJECT.get(method)
    if operation is None:
        raise S3Error("MethodNotAllowed", 405, f"{method} on an object is not an S3 operation")
    # versionId and partNumber are refused (501) rather than ignored: answering the current,
    # whole object to a request for a version or a part would be the wrong bytes.
    unknown = set(query) - {"x-id"} - _PRESIGN
    if unknown and not all(name.startswith("response-") for name in unknown):
        raise S3Error("NotImplemented", 501, f"object sub-resource {sorted(unknown)} not served")
    return operation


#: The query parameters of ListObjects (version 1): any other on a bucket GET is a sub-resource.
_LIST_V1 = {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
_PRESIGN = {
    *QUERY_AUTH_PARAMS,
    "X-Amz-Security-Token",
    # A SigV2 presigned URL (boto3's default without signature_version="s3v4"): the gateway
    # refuses its signature when it verifies signatures and ignores it when it does not.
    "AWSAccessKeyId",
    "Expires",
    "Signature",
}
