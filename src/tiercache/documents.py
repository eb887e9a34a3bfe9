"""The documents shared through a tier besides blocks: object info and directory listings.

A document is JSON bytes that a :class:`~tiercache.protocol.DocumentTier` (Redis) stores framed
and authenticated like a block (:mod:`tiercache.tiers.framing`). Each carries the wall-clock time
it was fetched, inside the HMAC, so that a reader trusts it only for its own TTL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .protocol import ObjectInfo


def info_document(info: ObjectInfo, fetched_at: float) -> bytes:
    """Serialise object info (with the wall-clock time it was fetched) for a shared tier."""
    document = {
        "path": info.path,
        "size": info.size,
        "version": info.version,
        "etag": info.etag,
        "raw": _json_safe(info.raw),
        "fetched_at": fetched_at,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def parse_info_document(data: bytes) -> tuple[ObjectInfo, float]:
    """Inverse of :func:`info_document`: the info and the time it was fetched.

    Raises:
        ValueError: Not a document :func:`info_document` wrote.
    """
    try:
        doc = json.loads(data)
        info = ObjectInfo(
            path=str(doc["path"]),
            size=int(doc["size"]),
            version=str(doc["version"]),
            etag=None if doc["etag"] is None else str(doc["etag"]),
            raw=dict(doc["raw"]),
        )
        return info, float(doc["fetched_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an object-info document: {exc}") from exc


def listing_key(path: str) -> str:
    """The path a directory listing is shared under: ``path`` with a trailing ``/``, a name no
    object of an object store has (so a listing never collides with an object's info)."""
    return path.rstrip("/") + "/"


def listing_document(path: str, entries: Sequence[Mapping[str, Any]], fetched_at: float) -> bytes:
    """Serialise a directory listing (fsspec ``ls(detail=True)`` entries) for a shared tier.

    Values that JSON cannot carry (an S3 ``LastModified`` datetime) are kept as strings.
    """
    doc = {"path": path, "entries": [_json_safe(e) for e in entries], "fetched_at": fetched_at}
    return json.dumps(doc, separators=(",", ":")).encode()


def _json_safe(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A target's info or listing entry with every value JSON can carry kept, others as text."""
    return {
        k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
        for k, v in mapping.items()
    }


def parse_listing_document(data: bytes) -> tuple[str, list[dict[str, Any]], float]:
    """Inverse of :func:`listing_document`: the path, the entries and the time of the listing.

    Raises:
        ValueError: Not a document :func:`listing_document` wrote.
    """
    try:
        doc = json.loads(data)
        entries = [dict(entry) for entry in doc["entries"]]
        return str(doc["path"]), entries, float(doc["fetched_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a listing document: {exc}") from exc
