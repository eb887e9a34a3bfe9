"""S3's object listings (ListObjectsV2, ListObjects) emulated over an fsspec filesystem.

Object stores have no directories: S3 lists the keys under a prefix in lexicographic (UTF-8
byte) order, and a delimiter folds the keys that hold it after the prefix into common prefixes,
each counted once against ``max-keys``. :func:`list_entries` reads the keys under a prefix from
the target (one recursive ``find`` of the deepest directory the prefix names, directories and
pseudo-directory entries left out); :func:`page` cuts one page from them, S3's way. A page ends
at its last key or common prefix, which is what the next page starts after: the continuation
token (:func:`encode_token`) and version 1's ``NextMarker`` name it.

Every page lists the directory again (there is no server-side cursor to resume): a listing of
``n`` keys in pages of 1000 costs ``n / 1000`` finds of the whole prefix.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from tiercache.gateway.s3errors import invalid_argument
from tiercache.localversion import local_version
from tiercache.origin_info import info_from_raw

#: The name prefix of the temporary files a local write goes through (never listed).
TEMP_PREFIX = ".tiercache-put-"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One object of a listing, as S3 names it."""

    key: str
    size: int
    etag: str
    last_modified: datetime

    def as_contents(self) -> dict[str, Any]:
        """The entry as botocore's ``Contents`` item."""
        return {
            "Key": self.key,
            "Size": self.size,
            "ETag": self.etag,
            "LastModified": self.last_modified,
            "StorageClass": "STANDARD",
        }


@dataclass(frozen=True)
class Page:
    """One page of a listing: its objects and common prefixes, and where the next starts."""

    entries: list[Entry]
    common_prefixes: list[str]
    is_truncated: bool
    last: str | None
    """The last key or common prefix of the page (what the next page starts after)."""


def bucket_root(fs: AbstractFileSystem, bucket: str) -> str:
    """The target's path of ``bucket`` (``/bucket`` on a memory filesystem)."""
    return str(fs._strip_protocol(bucket)).rstrip("/")


def list_entries(fs: AbstractFileSystem, bucket: str, prefix: str) -> list[Entry]:
    """The objects of ``bucket`` whose keys start with ``prefix``, sorted by key (UTF-8 bytes).

    Raises:
        FileNotFoundError: The target has no such directory (callers tell a missing bucket).
    """
    base = bucket_root(fs, bucket)
    directory = prefix.rpartition("/")[0]
    root = f"{base}/{directory}" if directory else base
    fs.invalidate_cache(root)  # the store's answer, not a listing the target kept
    try:
        found: Mapping[str, Mapping[str, Any]] = fs.find(root, detail=True, withdirs=False)
    except (FileNotFoundError, NotADirectoryError):
        found = {}
    entries = []
    for name, raw in found.items():
        if raw.get("type", "file") != "file":  # gcsfs / adlfs pseudo-directories
            continue
        path = str(fs._strip_protocol(raw.get("name") or name))
        if not path.startswith(base + "/"):
            continue
        key = path[len(base) + 1 :]
        if key.startswith(prefix) and not key.rpartition("/")[2].startswith(TEMP_PREFIX):
            # A memory filesystem's find says "created" as a float, its info (the reads') as a
            # datetime: the ETag comes from the info, as the reads' does.
            details = fs.info(path) if isinstance(fs, MemoryFileSystem) else raw
            entries.append(entry(fs, key, path, details))
    entries.sort(key=lambda e: e.key.encode("utf-8", "surrogatepass"))
    return entries


def entry(fs: AbstractFileSystem, key: str, path: str, raw: Mapping[str, Any]) -> Entry:
    """The listing entry of the object at ``path`` whose target info is ``raw``."""
    return Entry(key, int(raw.get("size") or 0), etag_of(fs, path, raw), modified(raw))


def etag_of(fs: AbstractFileSystem, path: str, raw: Mapping[str, Any]) -> str:
    """The ETag the gateway's reads give the object (the store's ETag, else its generation or
    version id, else ``size:mtime``; a local file's version), so that a listing, a HEAD and a
    GET agree."""
    info = info_from_raw(path, {"size": 0, **raw})
    if isinstance(fs, LocalFileSystem) and raw.get("type") == "file":
        version = local_version(path, raw)
        if version is not None:
            return version
    return str(info.etag or info.version).strip('"')


def modified(raw: Mapping[str, Any]) -> datetime:
    """The time the target's info says the object was last written (the epoch if none)."""
    for name in ("LastModified", "last_modified", "mtime", "updated", "created", "ctime"):
        value = raw.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str) and value:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _EPOCH


def page(
    entries: Iterable[Entry],
    *,
    prefix: str = "",
    delimiter: str = "",
    after: str = "",
    max_keys: int = 1000,
) -> Page:
    """Cut one page from ``entries`` (sorted, all starting with ``prefix``), S3's way.

    Args:
        entries: The objects, sorted by key.
        prefix: The listing's prefix.
        delimiter: Folds the keys holding it after ``prefix`` into common prefixes.
        after: Start after this key or common prefix (``start-after``, a marker, a token).
        max_keys: Keys and common prefixes on the page, together.
    """
    objects: list[Entry] = []
    prefixes: list[str] = []
    last: str | None = None
    for item in entries:
        if item.key <= after and after:
            continue
        group = _group(item.key, prefix, delimiter)
        if group is not None and group in (after, last):
            continue  # the common prefix is on this page already, or on the one before
        if len(objects) + len(prefixes) >= max_keys:
            return Page(objects, prefixes, True, last)
        if group is None:
            objects.append(item)
            last = item.key
        else:
            prefixes.append(group)
            last = group
    return Page(objects, prefixes, False, last)


def _group(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def encode_token(last: str) -> str:
    """The continuation token of a page that ended at ``last``."""
    return base64.urlsafe_b64encode(last.encode("utf-8", "surrogatepass")).decode("ascii")


def decode_token(token: str) -> str:
    """The key or common prefix a continuation token names.

    Raises:
        S3Error: 400 InvalidArgument: not a token this gateway handed out.
    """
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogatepass")
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise invalid_argument(
            "continuation-token", token, "The continuation token provided is incorrect"
        ) from exc


def listing_v2(fs: AbstractFileSystem, params: Mapping[str, Any]) -> dict[str, Any]:
    """ListObjectsV2's botocore answer for ``params`` (botocore's parameter names)."""
    bucket, prefix = str(params["Bucket"]), str(params.get("Prefix") or "")
    after = str(params.get("StartAfter") or "")
    token = params.get("ContinuationToken")
    if token:
        after = max(after, decode_token(str(token)))
    found = _listed(fs, bucket, prefix, after, params)
    answer: dict[str, Any] = {
        "Name": bucket,
        "Prefix": prefix,
        "MaxKeys": int(params.get("MaxKeys", 1000)),
        "KeyCount": len(found.entries) + len(found.common_prefixes),
        "IsTruncated": found.is_truncated,
        "Contents": [e.as_contents() for e in found.entries],
        "CommonPrefixes": [{"Prefix": p} for p in found.common_prefixes],
    }
    if found.is_truncated and found.last is not None:
        answer["NextContinuationToken"] = encode_token(found.last)
    return answer


def listing_v1(fs: AbstractFileSystem, params: Mapping[str, Any]) -> dict[str, Any]:
    """ListObjects' (version 1) botocore answer for ``params``."""
    bucket, prefix = str(params["Bucket"]), str(params.get("Prefix") or "")
    found = _listed(fs, bucket, prefix, str(params.get("Marker") or ""), params)
    answer: dict[str, Any] = {
        "Name": bucket,
        "Prefix": prefix,
        "MaxKeys": int(params.get("MaxKeys", 1000)),
        "IsTruncated": found.is_truncated,
        "Contents": [e.as_contents() for e in found.entries],
        "CommonPrefixes": [{"Prefix": p} for p in found.common_prefixes],
    }
    if found.is_truncated and found.last is not None:
        answer["NextMarker"] = found.last
    return answer


def _listed(
    fs: AbstractFileSystem, bucket: str, prefix: str, after: str, params: Mapping[str, Any]
) -> Page:
    entries = list_entries(fs, bucket, prefix)
    if not entries and not fs.exists(bucket_root(fs, bucket)):
        raise FileNotFoundError(bucket)
    return page(
        entries,
        prefix=prefix,
        delimiter=str(params.get("Delimiter") or ""),
        after=after,
        max_keys=int(params.get("MaxKeys", 1000)),
    )
