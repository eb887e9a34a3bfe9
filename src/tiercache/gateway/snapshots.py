"""Snapshot views: a directory the gateway makes up that lists exactly a Delta snapshot's files.

DataFusion reads a directory as a listing table: it lists it once, keeps the listing for the
session (its list-files cache) and then sends no request per query but the data's. Pointed at a
Delta table's folder it would read what the folder holds, not the snapshot. ``register_delta``
hands the gateway the snapshot's files (``POST /-/snapshot``); the gateway answers with a
directory of its own, ``<root>/_tiercache_snapshot/<token>/``, whose listing (ListObjectsV2,
answered here, never by the store) has one ``p<N>/`` subdirectory per partition and in it
exactly that partition's files, each under a name of its own that the gateway maps to the real
key for HEAD and GET. The token is a digest of the snapshot: registering the same snapshot twice
gives the same directory.

A view lives as long as the gateway process (at most :data:`MAX_VIEWS` views and
:data:`MAX_TOTAL_FILES` files in all, the oldest dropped):
a session registered on a gateway that was restarted must register again. A real object under a
``_tiercache_snapshot/`` directory is hidden behind a view of that name (Delta, like Spark,
ignores directories whose name starts with ``_``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tiercache.gateway.deltalog import LogPage, page_token, resume_after
from tiercache.gateway.httpsemantics import quote_etag
from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.s3xml import ListedObject
from tiercache.gateway.seeds import file_fields

#: The directory name of every view (under the table's root).
SNAPSHOT_DIR = "_tiercache_snapshot"
#: Views kept at most (one per table registration; the oldest is dropped).
MAX_VIEWS = 512
#: Files one view holds at most.
MAX_FILES = 200_000
#: Files all views hold together at most (the oldest views are dropped beyond).
MAX_TOTAL_FILES = 1_000_000
_MARKER = f"{SNAPSHOT_DIR}/"


@dataclass(frozen=True)
class _View:
    prefix: str  # "<root>/_tiercache_snapshot/<token>/"
    listed: list[ListedObject]  # by virtual key, sorted
    real: dict[str, str]  # virtual key -> real key


class Snapshots:
    """The views this gateway answers for."""

    def __init__(self) -> None:
        self._views: OrderedDict[tuple[str, str], _View] = OrderedDict()
        self._files = 0
        self._lock = threading.Lock()

    def add(self, body: bytes) -> dict[str, str]:
        """Take a ``POST /-/snapshot`` body; return ``{"prefix": ...}``, the view's directory.

        The body: ``{"bucket": b, "root": "path/to/table", "groups": [[{"key": real key,
        "size": n, "version": v, "mtime": seconds}, ...], ...]}``, one group per partition.

        Raises:
            S3Error: A malformed body (400 ``MalformedSnapshot``).
        """
        try:
            document = json.loads(body)
            bucket, root, groups = document["bucket"], document["root"], document["groups"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _malformed(f"not a snapshot document: {exc}") from exc
        if not isinstance(bucket, str) or not bucket or not isinstance(root, str):
            raise _malformed("'bucket' must be a name and 'root' a path")
        if not isinstance(groups, list) or sum(map(_length, groups)) > MAX_FILES:
            raise _malformed(f"'groups' must be lists of at most {MAX_FILES} files in all")
        token = hashlib.sha256(
            json.dumps([bucket, root, groups], sort_keys=True).encode()
        ).hexdigest()[:32]
        base = f"{root.strip('/')}/" if root.strip("/") else ""
        prefix = f"{base}{_MARKER}{token}/"
        listed, real = [], {}
        for number, group in enumerate(groups):
            for index, entry in enumerate(group):
                key, size, version, modified = _entry(entry)
                virtual = f"{prefix}p{number}/{index:06d}.parquet"
                real[virtual] = key
                listed.append(ListedObject(virtual, size, quote_etag(version), modified))
        listed.sort(key=lambda item: item.key.encode())
        with self._lock:
            self._views[(bucket, prefix)] = _View(prefix, listed, real)
            self._views.move_to_end((bucket, prefix))
            self._files = sum(len(view.real) for view in self._views.values())
            while len(self._views) > MAX_VIEWS or (
                self._files > MAX_TOTAL_FILES and len(self._views) > 1
            ):
                _, dropped = self._views.popitem(last=False)
                self._files -= len(dropped.real)
        return {"prefix": prefix}

    def resolve(self, bucket: str, key: str) -> str | None:
        """The real key behind a view's file, or None (not a view's key)."""
        view = self._view(bucket, key)
        return None if view is None else view.real.get(key)

    def page(self, bucket: str, query: Mapping[str, str], max_keys: int) -> LogPage | None:
        """A ListObjectsV2 page of a view (None: the prefix is not in one)."""
        prefix = query.get("prefix", "")
        view = self._view(bucket, prefix)
        if view is None:
            return None
        after = query.get("start-after", "")
        token = query.get("continuation-token")
        if token:
            resumed = resume_after(token)
            if resumed is None:
                raise S3Error("InvalidArgument", 400, "the continuation token is not valid")
            after = max(after, resumed)
        delimiter = query.get("delimiter") or None
        objects: list[ListedObject] = []
        prefixes: list[str] = []
        for item in view.listed:
            if not item.key.startswith(prefix) or item.key.encode() <= after.encode():
                continue
            rest = item.key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if common not in prefixes and common.encode() > after.encode():
                    prefixes.append(common)
                continue
            objects.append(item)
        entries = sorted([*((o.key, o) for o in objects), *((p, None) for p in prefixes)])
        shown = entries[:max_keys]
        truncated = len(entries) > len(shown)
        return LogPage(
            objects=[o for _, o in shown if o is not None],
            is_truncated=truncated,
            next_token=page_token(shown[-1][0]) if truncated and shown else None,
            common_prefixes=[k for k, o in shown if o is None],
        )

    def _view(self, bucket: str, key: str) -> _View | None:
        at = key.find(_MARKER)
        if at < 0:
            return None
        end = key.find("/", at + len(_MARKER))
        if end < 0:
            return None
        with self._lock:
            return self._views.get((bucket, key[: end + 1]))


def _length(group: Any) -> int:
    if not isinstance(group, list):
        raise _malformed("each group must be a list of files")
    return len(group)


def _entry(entry: Any) -> tuple[str, int, str, datetime]:
    if not isinstance(entry, dict):
        raise _malformed(f"a file is not an object: {entry!r:.80}")
    key, size, version, mtime = (entry.get(k) for k in ("key", "size", "version", "mtime"))
    if not isinstance(key, str) or not key or any(s in ("", ".", "..") for s in key.split("/")):
        raise _malformed(f"a file's key must be a key: {key!r:.200}")
    checked = file_fields((size, version, mtime), ("a file", key), _malformed)
    return (key, *checked)


def _malformed(message: str) -> S3Error:
    return S3Error("MalformedSnapshot", 400, message)
