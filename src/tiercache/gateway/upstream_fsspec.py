"""The origin calls of :mod:`tiercache.gateway.upstream` emulated on any fsspec filesystem:
the gateway in front of GCS (gcsfs), Azure Blob Storage (adlfs), a local directory, memory.

An S3 ``bucket``/``key`` is the target's path ``bucket/key`` (gcsfs: bucket and object; adlfs:
container and blob; others: the first path component is the bucket). Each botocore operation the
gateway passes on (listings, bucket calls, writes, multipart uploads, the HEAD and GET of
directory markers) is answered here in botocore's shape, from the target's ``find``, ``info``,
``pipe_file``, ``cp_file``, ``rm_file``. Listings: :mod:`tiercache.gateway.fsspec_listing`;
multipart uploads: :mod:`tiercache.gateway.fsspec_multipart`.

Put-if-absent (``If-None-Match: *``, how deltalake commits) is atomic where the store can do it:
gcsfs (``ifGenerationMatch=0``) and adlfs (``overwrite=False``, Azure's ``If-None-Match: *``) by
``pipe_file(mode="create")``; a local directory by a hard link of a complete temporary file
(``link`` fails if the name exists); memory under this process's lock (a memory filesystem is
this process's). Any other target checks, then writes, under that lock: two gateways (or another
writer) can race between the check and the write. ``If-Match`` on writes and the copy-source
conditions answer 501 NotImplemented.

Each call runs on a worker thread and is waited for at most the origin deadline (503 SlowDown
after; the call itself is not cancelled). Errors become S3's: FileNotFoundError 404 NoSuchKey
(NoSuchBucket for bucket calls), PermissionError 403, FileExistsError 412, anything else 503.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from tiercache.gateway.fsspec_listing import (
    bucket_root,
    etag_of,
    listing_v1,
    listing_v2,
    modified,
)
from tiercache.gateway.fsspec_local import local_path, write_local
from tiercache.gateway.fsspec_multipart import Uploads, default_root
from tiercache.gateway.httpsemantics import parse_range, quote_etag
from tiercache.gateway.s3errors import (
    S3Error,
    access_denied,
    no_such_bucket,
    no_such_key,
    not_implemented,
    precondition_failed,
)
from tiercache.gateway.upstream import translate

#: Protocols whose ``pipe_file(mode="create")`` is one conditional request to the store.
ATOMIC_CREATE = frozenset({"gs", "gcs", "abfs", "abfss", "az"})
#: Operations whose missing path is the bucket (NoSuchBucket, not NoSuchKey).
_BUCKET_CALLS = frozenset(
    {
        "head_bucket",
        "get_bucket_location",
        "list_objects_v2",
        "list_objects",
        "put_object",
        "create_multipart_upload",
        "complete_multipart_upload",
    }
)
#: The ETag of an empty object (S3's: the MD5 of no bytes), a directory marker's.
_EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
#: Worker threads the calls run on (as many as the app has: a call waits for no other).
WORKERS = 64


class FsspecUpstream:
    """The origin's calls on an fsspec filesystem, answered as botocore answers them.

    Args:
        fs: The target filesystem (any fsspec filesystem but s3fs, which :class:`Upstream`
            serves).
        timeout_s: Deadline of one call (``TIERCACHE_ORIGIN_TIMEOUT``).
        uploads_dir: Where multipart uploads in progress are kept; default
            ``<tmp>/tiercache-multipart/<digest of the target's protocol and options>``, shared
            by the gateways of one host over the same target, and by no other.
    """

    def __init__(
        self, fs: AbstractFileSystem, timeout_s: float, uploads_dir: Path | None = None
    ) -> None:
        self.fs = fs
        self.timeout_s = timeout_s
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.uploads = Uploads(uploads_dir or default_root() / _identity(fs))
        self._atomic_create = bool(protocols & ATOMIC_CREATE)
        self._memory = "memory" in protocols
        self._create_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="tiercache-origin-call")
        self._operations: dict[str, Callable[[dict[str, Any]], Mapping[str, Any]]] = {
            "list_objects_v2": lambda p: listing_v2(self.fs, p),
            "list_objects": lambda p: listing_v1(self.fs, p),
            "list_buckets": self._list_buckets,
            "head_bucket": self._head_bucket,
            "get_bucket_location": self._location,
            "head_object": self._head_object,
            "get_object": self._get_object,
            "put_object": self._put_object,
            "copy_object": self._copy_object,
            "delete_object": self._delete_object,
            "delete_objects": self._delete_objects,
            "create_multipart_upload": self._create_upload,
            "upload_part": self._upload_part,
            "upload_part_copy": self._upload_part_copy,
            "complete_multipart_upload": self._complete_upload,
            "abort_multipart_upload": self._abort_upload,
            "list_multipart_uploads": self._list_uploads,
            "list_parts": self._list_parts,
        }

    def call(self, method: str, **params: Any) -> Mapping[str, Any]:
        """Answer ``method`` (a botocore S3 operation) with ``params``; blocking.

        Raises:
            S3Error: The S3 error of the target's failure, 503 SlowDown past the deadline,
                501 NotImplemented for an operation or condition not emulated.
        """
        operation = self._operations.get(method)
        if operation is None:
            raise S3Error("NotImplemented", 501, f"{method} is not served for this origin")
        future = self._pool.submit(operation, params)
        try:
            return future.result(timeout=self.timeout_s)
        except S3Error:
            raise
        except Exception as exc:
            raise _translate(method, params, exc) from exc

    def close(self) -> None:
        """Stop the worker threads (calls in progress finish)."""
        self._pool.shutdown(wait=False)

    # -- the service and buckets ---------------------------------------------------------------

    def _list_buckets(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            found = self.fs.ls("", detail=True)
            # Kept, the root's listing would answer for the buckets' own paths (gcsfs's info
            # looks a path up in its parent's), and no invalidate_cache(path) ever drops it.
            self.fs.invalidate_cache()
        except Exception as exc:
            raise S3Error(
                "NotImplemented", 501, f"this origin cannot list its buckets: {exc}"
            ) from exc
        buckets = []
        for raw in found:
            if raw.get("type") == "directory":
                name = str(raw["name"]).strip("/").rpartition("/")[2]
                buckets.append({"Name": name, "CreationDate": modified(raw)})
        return {"Buckets": sorted(buckets, key=lambda b: str(b["Name"]))}

    def _head_bucket(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self.fs.exists(bucket_root(self.fs, params["Bucket"])):
            raise FileNotFoundError(params["Bucket"])
        return {"BucketRegion": "us-east-1"}

    def _location(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self._head_bucket(params)
        return {"LocationConstraint": None}

    # -- objects -------------------------------------------------------------------------------

    def _info(self, bucket: str, key: str) -> tuple[str, dict[str, Any]]:
        path = _path(bucket, key)
        self.fs.invalidate_cache(path)
        raw: dict[str, Any] = self.fs.info(path.rstrip("/"))
        if key.endswith("/") and raw.get("type") == "directory":
            # A directory marker (``dir/``) is there when the target has the directory: a local
            # one, adlfs's directory blob, a gcsfs prefix holding objects. Empty, as markers are.
            times = ("mtime", "last_modified", "LastModified", "updated", "created")
            return path, {"size": 0, "ETag": _EMPTY_ETAG, **{k: raw[k] for k in times if k in raw}}
        if raw.get("type", "file") != "file" or key.endswith("/"):
            raise FileNotFoundError(path)
        return path, raw

    def _head_object(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        path, raw = self._info(params["Bucket"], params["Key"])
        return _object_meta(self.fs, path, raw)

    def _get_object(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        path, raw = self._info(params["Bucket"], params["Key"])
        meta = _object_meta(self.fs, path, raw)
        wanted = params.get("IfMatch")
        if wanted is not None and quote_etag(str(wanted)) != quote_etag(meta["ETag"]):
            raise precondition_failed("If-Match")
        size = int(meta["ContentLength"])
        byte_range = parse_range(params.get("Range"), size)
        start, end = (0, size) if byte_range is None else (byte_range.start, byte_range.end)
        body = self.fs.cat_file(path, start=start, end=end) if start < end else b""
        return {**meta, "Body": body, "ContentLength": len(body)}

    def _put_object(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        create_only = _create_only(params)
        path = _path(params["Bucket"], params["Key"])
        if path.endswith("/"):
            return self._put_marker(params, path, create_only)
        self._store(params["Bucket"], path, bytes(params.get("Body") or b""), create_only)
        return self._written(path)

    def _put_marker(
        self, params: Mapping[str, Any], path: str, create_only: bool
    ) -> Mapping[str, Any]:
        """A put of ``dir/`` makes the directory (gcsfs: nothing, GCS has none)."""
        if params.get("Body"):
            raise S3Error("NotImplemented", 501, "a key ending in / holds no bytes on this origin")
        bucket = params["Bucket"]
        if not self.fs.isdir(bucket_root(self.fs, bucket)):
            raise _BucketMissingError(bucket)
        if create_only and self.fs.isdir(path.rstrip("/")):
            raise FileExistsError(path)
        self.fs.makedirs(path.rstrip("/"), exist_ok=True)
        return {"ETag": _EMPTY_ETAG}

    def _copy_object(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        for name in ("CopySourceIfMatch", "CopySourceIfNoneMatch", "IfNoneMatch", "IfMatch"):
            if name in params:
                raise not_implemented(name)
        source = params["CopySource"]
        if source.get("VersionId"):
            raise not_implemented("x-amz-copy-source")
        src, _ = self._info(source["Bucket"], source["Key"])
        path = _path(params["Bucket"], params["Key"])
        if local_path(self.fs, path) is not None:
            self._store(params["Bucket"], path, self.fs.cat_file(src), create_only=False)
        else:
            self.fs.cp_file(src, path)
        written = self._written(path)
        return {"CopyObjectResult": {"ETag": written["ETag"], "LastModified": _now()}}

    def _delete_object(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        path = _path(params["Bucket"], params["Key"])
        local = local_path(self.fs, path)
        if path.endswith("/"):  # a directory marker: an empty local or memory directory goes
            with suppress(OSError):
                if local is not None:
                    os.rmdir(local)
                elif self._memory:
                    self.fs.rmdir(path.rstrip("/"))
            return {}
        with suppress(FileNotFoundError):  # S3 answers 204 for a key that is not there
            self.fs.rm_file(path)
        self.fs.invalidate_cache(path)
        return {}

    def _delete_objects(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        deleted, errors = [], []
        for item in params["Delete"]["Objects"]:
            key = str(item["Key"])
            try:
                self._delete_object({"Bucket": params["Bucket"], "Key": key})
            except Exception as exc:
                error = _translate("delete_object", {"Key": key}, exc)
                errors.append({"Key": key, "Code": error.code, "Message": error.message})
            else:
                deleted.append({"Key": key})
        return {"Deleted": deleted, "Errors": errors}

    # -- multipart uploads ---------------------------------------------------------------------

    def _create_upload(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self._head_bucket(params)
        upload_id = self.uploads.create(params["Bucket"], params["Key"])
        return {"Bucket": params["Bucket"], "Key": params["Key"], "UploadId": upload_id}

    def _upload_part(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        etag = self.uploads.add_part(
            params["Bucket"],
            params["Key"],
            params["UploadId"],
            int(params["PartNumber"]),
            bytes(params.get("Body") or b""),
        )
        return {"ETag": f'"{etag}"'}

    def _upload_part_copy(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        source = params["CopySource"]
        src, raw = self._info(source["Bucket"], source["Key"])
        size = int(raw.get("size") or 0)
        spec = params.get("CopySourceRange")
        byte_range = parse_range(spec, size) if spec else None
        start, end = (0, size) if byte_range is None else (byte_range.start, byte_range.end)
        data = self.fs.cat_file(src, start=start, end=end) if start < end else b""
        answer = self._upload_part({**params, "Body": data})
        return {"CopyPartResult": {"ETag": answer["ETag"], "LastModified": _now()}}

    def _complete_upload(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        create_only = _create_only(params)
        bucket, key, upload_id = params["Bucket"], params["Key"], params["UploadId"]
        parts = params["MultipartUpload"]["Parts"]
        assembled = self.uploads.assemble(bucket, key, upload_id, parts)
        path = _path(bucket, key)
        self._store(bucket, path, assembled, create_only)
        self.uploads.remove(bucket, key, upload_id)
        return {**self._written(path), "Location": f"/{bucket}/{key}"}

    def _abort_upload(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.uploads.remove(params["Bucket"], params["Key"], params["UploadId"])
        return {}

    def _list_uploads(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        uploads = self.uploads.uploads(params["Bucket"], str(params.get("Prefix") or ""))
        return {"Uploads": uploads, "IsTruncated": False}

    def _list_parts(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        parts = self.uploads.parts(params["Bucket"], params["Key"], params["UploadId"])
        after = int(params.get("PartNumberMarker") or 0)
        parts = [p for p in parts if p["PartNumber"] > after]
        most = int(params.get("MaxParts", 1000))
        answer: dict[str, Any] = {"Parts": parts[:most], "IsTruncated": len(parts) > most}
        if len(parts) > most > 0:
            answer["NextPartNumberMarker"] = parts[most - 1]["PartNumber"]
        return answer

    # -- writing -------------------------------------------------------------------------------

    def _store(self, bucket: str, path: str, data: bytes | Path, create_only: bool) -> None:
        """Write ``data`` (bytes, or a local file's) to ``path``; with ``create_only``, only if
        nothing is there (FileExistsError otherwise)."""
        if path.endswith("/"):
            raise S3Error("NotImplemented", 501, "a key ending in / holds no bytes on this origin")
        local = local_path(self.fs, path)
        if local is not None:
            if not self.fs.isdir(bucket_root(self.fs, bucket)):
                raise _BucketMissingError(bucket)
            write_local(local, data, create_only)
        elif create_only and self._atomic_create:
            self.fs.pipe_file(path, _bytes(data), mode="create")
        elif create_only:
            with self._create_lock:  # atomic in this process (a memory target is only this)
                self.fs.invalidate_cache(path)
                if self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, _bytes(data))
        elif isinstance(data, Path):
            with self._create_lock if self._memory else nullcontext():
                self.fs.put_file(str(data), path)
        else:
            with self._create_lock if self._memory else nullcontext():
                self.fs.pipe_file(path, data)
        self.fs.invalidate_cache(path)

    def _written(self, path: str) -> dict[str, Any]:
        self.fs.invalidate_cache(path)
        raw: dict[str, Any] = self.fs.info(path)
        return _object_meta(self.fs, path, raw)


class _BucketMissingError(FileNotFoundError):
    """The bucket of a write is not there (a local target would otherwise create it)."""


def _identity(fs: AbstractFileSystem) -> str:
    text = json.dumps([fs.protocol, fs.storage_options], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _path(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def _now() -> datetime:
    return datetime.now(UTC)


def _bytes(data: bytes | Path) -> bytes:
    return data.read_bytes() if isinstance(data, Path) else data


def _create_only(params: Mapping[str, Any]) -> bool:
    if "IfMatch" in params:
        raise not_implemented("If-Match")
    condition = params.get("IfNoneMatch")
    if condition is None:
        return False
    if str(condition).strip() != "*":
        raise not_implemented("If-None-Match")
    return True


def _object_meta(fs: AbstractFileSystem, path: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ContentLength": int(raw.get("size") or 0),
        "ETag": quote_etag(etag_of(fs, path, raw)),
        "LastModified": modified(raw),
        "ContentType": str(raw.get("content_type") or raw.get("contentType") or "")
        or "binary/octet-stream",
    }


def _translate(method: str, params: Mapping[str, Any], exc: BaseException) -> S3Error:
    """The S3 error a client of the gateway gets for the target's failure ``exc``."""
    found: S3Error
    if isinstance(exc, S3Error):
        found = exc
    elif isinstance(exc, FileExistsError):
        found = precondition_failed("If-None-Match")
    elif isinstance(exc, NotImplementedError):
        found = not_implemented()
    elif isinstance(exc, _BucketMissingError) or (
        isinstance(exc, FileNotFoundError) and method in _BUCKET_CALLS
    ):
        found = no_such_bucket(str(params.get("Bucket", "")))
    elif isinstance(exc, FileNotFoundError):
        found = no_such_key(str(params.get("Key", "")))
    elif isinstance(exc, PermissionError):
        found = access_denied()
    else:
        found = translate(exc)
    return found
