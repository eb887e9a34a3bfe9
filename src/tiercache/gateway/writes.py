"""The S3 operations the gateway passes through to the origin: bucket calls, writes, and the
listings (:mod:`tiercache.gateway.listings`).

A write succeeds only when the origin acknowledged it, and what the tiers hold for the key is
invalidated before the success is returned, so a client reads its own writes through the
gateway. Conditional writes (``If-None-Match: *``, ``If-Match``: delta-rs commits rely on them)
are passed on as they came; the origin decides. Streaming (``aws-chunked``) bodies are decoded,
and their chunk signatures checked when the client signed them, before anything is sent on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tiercache.gateway.auth import decode_body
from tiercache.gateway.calls import XML, Call, Reply, utc
from tiercache.gateway.httpsemantics import quote_etag
from tiercache.gateway.listings import Listings
from tiercache.gateway.s3requests import ObjectIdentifier
from tiercache.gateway.s3xml import (
    S3Error,
    bucket_location,
    complete_multipart_result,
    copy_object_result,
    copy_part_result,
    delete_result,
    initiate_multipart,
    list_buckets,
    parse_complete_multipart,
    parse_delete,
)
from tiercache.gateway.upstream import OriginCalls

if TYPE_CHECKING:
    from tiercache.gateway.deltalog import KeptLogListings
    from tiercache.gateway.snapshots import Snapshots


class Writes:
    """Everything the gateway does not read through the chain.

    Args:
        upstream: The origin's client.
        invalidate: Forgets what the tiers hold for an origin path (``bucket/key``).
        kept_logs: Answers listings of Delta logs under ``TIERCACHE_DELTA_LOG_TTL``.
        snapshots: Answers listings of snapshot views.
    """

    def __init__(
        self,
        upstream: OriginCalls,
        invalidate: Callable[[str], None],
        kept_logs: KeptLogListings | None = None,
        snapshots: Snapshots | None = None,
    ) -> None:
        self.upstream = upstream
        self.invalidate = invalidate
        self._handlers: dict[str, Callable[[Call], Reply]] = {
            "ListBuckets": self._list_buckets,
            "HeadBucket": self._head_bucket,
            "GetBucketLocation": self._location,
            **Listings(upstream, kept_logs, snapshots).handlers(),
            "PutObject": self._put,
            "DeleteObject": self._delete,
            "DeleteObjects": self._delete_many,
            "CreateMultipartUpload": self._create_upload,
            "UploadPart": self._upload_part,
            "CompleteMultipartUpload": self._complete_upload,
            "AbortMultipartUpload": self._abort_upload,
        }

    def handle(self, call: Call, verified: Any) -> Reply:
        """Answer ``call``; blocking (runs on a worker thread)."""
        handler = self._handlers.get(call.route.operation)
        if handler is None:
            operation = call.route.operation
            raise S3Error("NotImplemented", 501, f"{operation} is not served by the gateway")
        if call.body or "x-amz-decoded-content-length" in call.headers:
            call = Call(
                call.route, call.query, call.headers, decode_body(call.headers, call.body, verified)
            )
        return handler(call)

    # -- the service and buckets ---------------------------------------------------------------

    def _list_buckets(self, call: Call) -> Reply:
        answer = self.upstream.call("list_buckets")
        buckets = [(b["Name"], utc(b.get("CreationDate"))) for b in answer.get("Buckets", [])]
        return Reply(200, [XML], list_buckets(buckets))

    def _head_bucket(self, call: Call) -> Reply:
        route = call.route
        answer = self.upstream.call("head_bucket", Bucket=route.bucket)
        # S3 names the bucket's region on every HeadBucket; SDKs that discover regions read it.
        region = answer.get("BucketRegion")
        return Reply(200, [("x-amz-bucket-region", str(region))] if region else [])

    def _location(self, call: Call) -> Reply:
        route = call.route
        answer = self.upstream.call("get_bucket_location", Bucket=route.bucket)
        return Reply(200, [XML], bucket_location(answer.get("LocationConstraint") or "us-east-1"))

    # -- objects -------------------------------------------------------------------------------

    def _put(self, call: Call) -> Reply:
        route, headers, body = call.route, call.headers, call.body
        path = f"{route.bucket}/{route.key}"
        source = headers.get("x-amz-copy-source")
        if source is not None:
            answer = self.upstream.call(
                "copy_object",
                Bucket=route.bucket,
                Key=route.key,
                CopySource=_copy_source(source),
                **_copy_conditions(headers),
                **_metadata(headers),
            )
            self.invalidate(path)
            result = answer.get("CopyObjectResult", {})
            return Reply(
                200,
                [XML],
                copy_object_result(
                    quote_etag(str(result.get("ETag", ""))), utc(result.get("LastModified"))
                ),
            )
        answer = self.upstream.call(
            "put_object",
            Bucket=route.bucket,
            Key=route.key,
            Body=body,
            **_conditions(headers),
            **_metadata(headers),
        )
        self.invalidate(path)
        return Reply(200, [("etag", quote_etag(str(answer.get("ETag", ""))))])

    def _delete(self, call: Call) -> Reply:
        route = call.route
        self.upstream.call("delete_object", Bucket=route.bucket, Key=route.key)
        self.invalidate(f"{route.bucket}/{route.key}")
        return Reply(204)

    def _delete_many(self, call: Call) -> Reply:
        route, body = call.route, call.body
        objects, quiet = parse_delete(body)
        keys = [o.key for o in objects]
        answer = self.upstream.call(
            "delete_objects",
            Bucket=route.bucket,
            Delete={"Objects": [_identifier(o) for o in objects], "Quiet": quiet},
        )
        for key in keys:
            self.invalidate(f"{route.bucket}/{key}")
        deleted = [str(d.get("Key", "")) for d in answer.get("Deleted", [])]
        errors = [
            (str(e.get("Key", "")), str(e.get("Code", "")), str(e.get("Message", "")))
            for e in answer.get("Errors", [])
        ]
        return Reply(200, [XML], delete_result(deleted, errors, quiet=quiet))

    # -- multipart uploads ---------------------------------------------------------------------

    def _create_upload(self, call: Call) -> Reply:
        route, headers = call.route, call.headers
        answer = self.upstream.call(
            "create_multipart_upload", Bucket=route.bucket, Key=route.key, **_metadata(headers)
        )
        return Reply(200, [XML], initiate_multipart(route.bucket, route.key, answer["UploadId"]))

    def _upload_part(self, call: Call) -> Reply:
        route, headers, body = call.route, call.headers, call.body
        query = call.query
        common = {
            "Bucket": route.bucket,
            "Key": route.key,
            "UploadId": query["uploadId"],
            "PartNumber": _part_number(query.get("partNumber")),
        }
        source = headers.get("x-amz-copy-source")
        if source is not None:
            extra = {}
            if "x-amz-copy-source-range" in headers:
                extra["CopySourceRange"] = headers["x-amz-copy-source-range"]
            answer = self.upstream.call(
                "upload_part_copy", CopySource=_copy_source(source), **common, **extra
            )
            result = answer.get("CopyPartResult", {})
            return Reply(
                200,
                [XML],
                copy_part_result(
                    quote_etag(str(result.get("ETag", ""))), utc(result.get("LastModified"))
                ),
            )
        answer = self.upstream.call("upload_part", Body=body, **common)
        return Reply(200, [("etag", quote_etag(str(answer.get("ETag", ""))))])

    def _complete_upload(self, call: Call) -> Reply:
        route, headers, body = call.route, call.headers, call.body
        query = call.query
        parts = parse_complete_multipart(body)
        answer = self.upstream.call(
            "complete_multipart_upload",
            Bucket=route.bucket,
            Key=route.key,
            UploadId=query["uploadId"],
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            **_conditions(headers),
        )
        self.invalidate(f"{route.bucket}/{route.key}")
        return Reply(
            200,
            [XML],
            complete_multipart_result(
                str(answer.get("Location", "")),
                route.bucket,
                route.key,
                quote_etag(str(answer.get("ETag", ""))),
            ),
        )

    def _abort_upload(self, call: Call) -> Reply:
        route = call.route
        query = call.query
        self.upstream.call(
            "abort_multipart_upload", Bucket=route.bucket, Key=route.key, UploadId=query["uploadId"]
        )
        return Reply(204)


def _conditions(headers: Mapping[str, str]) -> dict[str, str]:
    found = {}
    if "if-none-match" in headers:
        found["IfNoneMatch"] = headers["if-none-match"]
    if "if-match" in headers:
        found["IfMatch"] = headers["if-match"]
    return found


def _copy_conditions(headers: Mapping[str, str]) -> dict[str, Any]:
    names = {
        "x-amz-copy-source-if-match": "CopySourceIfMatch",
        "x-amz-copy-source-if-none-match": "CopySourceIfNoneMatch",
        "x-amz-metadata-directive": "MetadataDirective",
    }
    return {param: headers[name] for name, param in names.items() if name in headers}


def _metadata(headers: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "content-type" in headers:
        found["ContentType"] = headers["content-type"]
    metadata = {
        k[len("x-amz-meta-") :]: v for k, v in headers.items() if k.startswith("x-amz-meta-")
    }
    if metadata:
        found["Metadata"] = metadata
    return found


def _copy_source(value: str) -> dict[str, str]:
    from urllib.parse import unquote

    source = unquote(value.lstrip("/"))
    source, _, version = source.partition("?versionId=")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", 400, f"x-amz-copy-source {value!r} is not bucket/key")
    found = {"Bucket": bucket, "Key": key}
    if version:
        found["VersionId"] = version
    return found


def _identifier(item: ObjectIdentifier) -> dict[str, str]:
    found = {"Key": item.key}
    if item.version_id:
        found["VersionId"] = item.version_id
    return found


def _part_number(value: str | None) -> int:
    if value is None or not value.isdigit() or not 1 <= int(value) <= 10_000:
        raise S3Error("InvalidArgument", 400, f"partNumber {value!r} is not 1..10000")
    return int(value)
