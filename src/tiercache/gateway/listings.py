"""The listings the gateway passes through to the origin: objects (ListObjectsV2 and version 1),
multipart uploads in progress (ListMultipartUploads) and the parts of one (ListParts).

None of them is cached (except a Delta log's ListObjectsV2 under ``TIERCACHE_DELTA_LOG_TTL``,
:mod:`tiercache.gateway.deltalog`): each is one call of the origin's client
(:class:`OriginCalls`), whose answer is written back in S3's XML (:mod:`tiercache.gateway.s3xml`).
The query's paging parameters go to the origin as they came, integers checked (400
InvalidArgument otherwise) and held to S3's bounds (a ``max-keys`` over 1000 is 1000, as S3
takes it). The object listings ask the origin without ``encoding-type`` (botocore asks for and
decodes URL encoding itself), and encode what the client asked for; ListMultipartUploads
likewise, which botocore does not decode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tiercache.gateway.calls import XML, Call, Reply, utc
from tiercache.gateway.httpsemantics import quote_etag
from tiercache.gateway.s3errors import invalid_argument
from tiercache.gateway.s3xml import (
    ListedObject,
    ListedPart,
    ListedUpload,
    check_encoding_type,
    list_multipart_uploads,
    list_objects_v1,
    list_objects_v2,
    list_parts,
)
from tiercache.gateway.upstream import OriginCalls

if TYPE_CHECKING:
    from tiercache.gateway.deltalog import KeptLogListings
    from tiercache.gateway.snapshots import Snapshots

#: The most entries one page of any listing holds (S3's bound; a larger request gets this many).
MAX_PAGE = 1000


class Listings:
    """The listing calls, each answered from one call of the origin.

    Args:
        upstream: The origin's client.
        kept_logs: Answers ListObjectsV2 of a Delta log from a kept listing, under
            ``TIERCACHE_DELTA_LOG_TTL`` (:mod:`tiercache.gateway.deltalog`).
        snapshots: Answers ListObjectsV2 of a snapshot view (:mod:`tiercache.gateway.snapshots`).
    """

    def __init__(
        self,
        upstream: OriginCalls,
        kept_logs: KeptLogListings | None = None,
        snapshots: Snapshots | None = None,
    ) -> None:
        self.upstream = upstream
        self.kept_logs = kept_logs
        self.snapshots = snapshots

    def handlers(self) -> dict[str, Callable[[Call], Reply]]:
        """The handler of each listing operation, by its name in the routing."""
        return {
            "ListObjectsV2": self.list_v2,
            "ListObjects": self.list_v1,
            "ListMultipartUploads": self.list_uploads,
            "ListParts": self.list_parts,
        }

    def list_v2(self, call: Call) -> Reply:
        """ListObjectsV2: ``GET /bucket?list-type=2``."""
        bucket, q = call.route.bucket, call.query
        check_encoding_type(q.get("encoding-type"))
        params = _params(
            bucket,
            q,
            {
                "prefix": "Prefix",
                "delimiter": "Delimiter",
                "continuation-token": "ContinuationToken",
                "start-after": "StartAfter",
            },
        )
        _add_count(params, q, "max-keys", "MaxKeys")
        if q.get("fetch-owner") == "true":
            params["FetchOwner"] = True
        max_keys = int(params.get("MaxKeys", MAX_PAGE))
        kept = self.snapshots.page(bucket, q, max_keys) if self.snapshots else None
        if kept is None and self.kept_logs is not None:
            kept = self.kept_logs.page(bucket, q, max_keys)
        if kept is not None:
            answer: Mapping[str, Any] = {
                "IsTruncated": kept.is_truncated,
                "NextContinuationToken": kept.next_token,
            }
        else:
            answer = self.upstream.call("list_objects_v2", **params)
        body = list_objects_v2(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter") or None,
            max_keys=max_keys,
            objects=kept.objects if kept is not None else _objects(answer),
            common_prefixes=kept.common_prefixes if kept is not None else _common_prefixes(answer),
            is_truncated=bool(answer.get("IsTruncated")),
            continuation_token=q.get("continuation-token"),
            next_continuation_token=answer.get("NextContinuationToken"),
            start_after=q.get("start-after"),
            encoding_type=q.get("encoding-type"),
        )
        return Reply(200, [XML], body)

    def list_v1(self, call: Call) -> Reply:
        """ListObjects (version 1): ``GET /bucket`` with ``marker`` paging."""
        bucket, q = call.route.bucket, call.query
        check_encoding_type(q.get("encoding-type"))
        params = _params(
            bucket, q, {"prefix": "Prefix", "delimiter": "Delimiter", "marker": "Marker"}
        )
        _add_count(params, q, "max-keys", "MaxKeys")
        answer = self.upstream.call("list_objects", **params)
        next_marker = answer.get("NextMarker")
        body = list_objects_v1(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter") or None,
            marker=q.get("marker", ""),
            next_marker=str(next_marker) if next_marker else None,
            max_keys=_answered(answer, "MaxKeys", params.get("MaxKeys", MAX_PAGE)),
            objects=_objects(answer),
            common_prefixes=_common_prefixes(answer),
            is_truncated=bool(answer.get("IsTruncated")),
            encoding_type=q.get("encoding-type"),
        )
        return Reply(200, [XML], body)

    def list_uploads(self, call: Call) -> Reply:
        """ListMultipartUploads: ``GET /bucket?uploads``."""
        bucket, q = call.route.bucket, call.query
        check_encoding_type(q.get("encoding-type"))
        params = _params(
            bucket,
            q,
            {
                "prefix": "Prefix",
                "delimiter": "Delimiter",
                "key-marker": "KeyMarker",
                "upload-id-marker": "UploadIdMarker",
            },
        )
        _add_count(params, q, "max-uploads", "MaxUploads", low=1)
        answer = self.upstream.call("list_multipart_uploads", **params)
        uploads = [
            ListedUpload(
                key=str(item["Key"]),
                upload_id=str(item["UploadId"]),
                initiated=utc(item.get("Initiated")),
                storage_class=str(item.get("StorageClass") or "STANDARD"),
            )
            for item in answer.get("Uploads", [])
        ]
        body = list_multipart_uploads(
            bucket=bucket,
            uploads=uploads,
            common_prefixes=_common_prefixes(answer),
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter") or None,
            key_marker=q.get("key-marker", ""),
            upload_id_marker=q.get("upload-id-marker", ""),
            next_key_marker=_text(answer.get("NextKeyMarker")),
            next_upload_id_marker=_text(answer.get("NextUploadIdMarker")),
            max_uploads=_answered(answer, "MaxUploads", params.get("MaxUploads", MAX_PAGE)),
            is_truncated=bool(answer.get("IsTruncated")),
            encoding_type=q.get("encoding-type"),
        )
        return Reply(200, [XML], body)

    def list_parts(self, call: Call) -> Reply:
        """ListParts: ``GET /bucket/key?uploadId=``."""
        route, q = call.route, call.query
        params: dict[str, Any] = {
            "Bucket": route.bucket,
            "Key": route.key,
            "UploadId": q["uploadId"],
        }
        _add_count(params, q, "max-parts", "MaxParts")
        _add_count(params, q, "part-number-marker", "PartNumberMarker", high=10_000)
        answer = self.upstream.call("list_parts", **params)
        parts = [
            ListedPart(
                part_number=int(item["PartNumber"]),
                etag=quote_etag(str(item.get("ETag", ""))),
                size=int(item.get("Size", 0)),
                last_modified=utc(item.get("LastModified")),
            )
            for item in answer.get("Parts", [])
        ]
        next_marker = answer.get("NextPartNumberMarker")
        body = list_parts(
            bucket=route.bucket,
            key=route.key,
            upload_id=q["uploadId"],
            parts=parts,
            part_number_marker=_answered(
                answer, "PartNumberMarker", params.get("PartNumberMarker", 0)
            ),
            next_part_number_marker=None if next_marker is None else int(next_marker),
            max_parts=_answered(answer, "MaxParts", params.get("MaxParts", MAX_PAGE)),
            is_truncated=bool(answer.get("IsTruncated")),
            storage_class=str(answer.get("StorageClass") or "STANDARD"),
        )
        return Reply(200, [XML], body)


def _params(bucket: str, query: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    """The origin call's parameters: the bucket, and each query parameter given (not empty)."""
    params: dict[str, Any] = {"Bucket": bucket}
    for name, param in names.items():
        if query.get(name):
            params[param] = query[name]
    return params


def _add_count(
    params: dict[str, Any],
    query: Mapping[str, str],
    name: str,
    param: str,
    *,
    low: int = 0,
    high: int = MAX_PAGE,
) -> None:
    """Add the integer query parameter ``name`` as ``param``, held to ``low..high``.

    Raises:
        S3Error: 400 InvalidArgument: the value is not an integer.
    """
    value = query.get(name)
    if value is None:
        return
    try:
        number = int(value)
    except ValueError as exc:
        raise invalid_argument(name, value, f"{name} must be an integer") from exc
    params[param] = max(low, min(high, number))


def _answered(answer: Mapping[str, Any], name: str, asked: int) -> int:
    """An integer the origin's answer names, else the one asked for."""
    value = answer.get(name)
    return asked if value is None else int(value)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _objects(answer: Mapping[str, Any]) -> list[ListedObject]:
    return [
        ListedObject(
            key=str(item["Key"]),
            size=int(item.get("Size", 0)),
            etag=quote_etag(str(item.get("ETag", ""))),
            last_modified=utc(item.get("LastModified")),
            storage_class=str(item.get("StorageClass") or "STANDARD"),
        )
        for item in answer.get("Contents", [])
    ]


def _common_prefixes(answer: Mapping[str, Any]) -> list[str]:
    return [str(p["Prefix"]) for p in answer.get("CommonPrefixes", [])]
