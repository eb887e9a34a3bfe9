"""Listings of a Delta log reused under ``TIERCACHE_DELTA_LOG_TTL``, for clients of the gateway.

delta-rs opens a table by listing ``<table>/_delta_log/`` (ListObjectsV2, no delimiter, often
with ``start-after``). By default every such listing reaches the store: the latest version is
the store's. With ``TIERCACHE_DELTA_LOG_TTL`` above 0, a listing of the log made at most that
long ago, by this gateway or by any process sharing the Redis tier, answers instead (the
snapshot a client opens is then at most that old), exactly as the fsspec route's
``open_table`` did. A write through the gateway to a key under the log drops the kept listing
(``TieredFileSystem.invalidate_cache``), so a commit made through this gateway is seen at once.

Only a log directory with no subdirectory is answered this way (a recursive S3 listing would
include the subdirectory's keys, which a directory listing does not have); anything else goes
to the store.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tiercache.fs import TieredFileSystem
from tiercache.gateway.httpsemantics import quote_etag
from tiercache.gateway.s3xml import ListedObject

#: The prefix of the continuation tokens this module hands out (the store's never start so).
TOKEN_PREFIX = "tiercache-log:"
_LOG = "_delta_log/"


@dataclass(frozen=True)
class LogPage:
    """One page of a listing the gateway answers itself (a kept log listing, a snapshot view)."""

    objects: list[ListedObject]
    is_truncated: bool
    next_token: str | None
    common_prefixes: list[str] = field(default_factory=list)


class KeptLogListings:
    """Answers ListObjectsV2 of a Delta log from a listing at most ``delta_log_ttl_s`` old."""

    def __init__(self, fs: TieredFileSystem) -> None:
        self.fs = fs
        self.ttl_s = fs.settings.delta_log_ttl_s

    def page(self, bucket: str, query: Mapping[str, str], max_keys: int) -> LogPage | None:
        """The page ``query`` asks for, or None when the store must answer (no TTL set, not a
        log prefix, a delimiter, a continuation token of the store's, a log with
        subdirectories)."""
        if self.ttl_s <= 0:
            return None
        prefix = query.get("prefix", "")
        if not (prefix == _LOG or prefix.endswith(f"/{_LOG}")) or query.get("delimiter"):
            return None
        after = query.get("start-after", "")
        token = query.get("continuation-token")
        if token:
            resumed = resume_after(token)
            if resumed is None:
                return None
            after = max(after, resumed)
        directory = f"{bucket}/{prefix.rstrip('/')}"
        entries = self.fs.chain.cached_listing(directory, self.ttl_s)
        if entries is not None:
            self.fs.seed_listing(entries)  # reading a log file then costs no request for its info
        else:
            entries = self._list(directory)
        if entries is None or any(entry.get("type") != "file" for entry in entries):
            return None
        objects = sorted(
            (_listed(bucket, entry) for entry in entries),
            key=lambda item: item.key.encode(),
        )
        remaining = [item for item in objects if item.key.encode() > after.encode()]
        shown = remaining[:max_keys]
        truncated = len(remaining) > len(shown)
        next_token = page_token(shown[-1].key) if truncated and shown else None
        return LogPage(shown, truncated, next_token)

    def _list(self, directory: str) -> list[dict[str, Any]] | None:
        """A fresh listing of ``directory``, kept and shared; None when there is none (the
        store then answers the request itself: an empty page)."""
        self.fs.target.invalidate_cache(directory)
        try:
            entries: list[dict[str, Any]] = self.fs.ls(directory, detail=True)  # seeds info
        except FileNotFoundError:
            return None
        self.fs.chain.share_listing(directory, entries)
        return entries


def _listed(bucket: str, entry: Mapping[str, Any]) -> ListedObject:
    name = str(entry["name"])
    return ListedObject(
        key=name.removeprefix(f"{bucket}/"),
        size=int(entry.get("size") or 0),
        etag=quote_etag(str(entry.get("ETag", ""))),
        last_modified=_when(entry.get("LastModified")),
        storage_class=str(entry.get("StorageClass") or "STANDARD"),
    )


def _when(value: object) -> datetime:
    """An entry's ``LastModified``: a datetime, or its text once it went through Redis."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def page_token(last_key: str) -> str:
    """A continuation token of the gateway's own, resuming after ``last_key``."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(last_key.encode()).decode()


def resume_after(token: str) -> str | None:
    """The last key a token of ours carries, or None for the store's token."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(token.removeprefix(TOKEN_PREFIX).encode()).decode()
    except ValueError:
        return None
