"""Object info handed to the gateway by the process that owns it: ``POST /-/seed``.

``register_delta`` knows every data file of a snapshot from the Delta log (path, size,
modification time). Handed to the gateway, that info answers the HEAD DataFusion sends for each
file without a request to the store (a round trip saved per file on a cold query), and keys the
file's blocks as the fsspec route keys them (``delta:<mtime>:<size>``).

Only immutable paths are taken (:func:`tiercache.blocks.is_immutable`: UUID-named data files,
Delta log files): such a path never holds other bytes, so info about it cannot go stale, and a
seed cannot stand in for a newer version of a mutable object. Info the gateway already holds
wins (it came from the store). The request is authenticated like any other, and in the
gateway's anonymous mode a local client may write through the gateway anyway: a seed gives it
no power it did not have. A wrong size fails reads (a short read is an error), never returns
another object's bytes: blocks are keyed by path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from tiercache.blocks import is_immutable
from tiercache.gateway.s3errors import S3Error
from tiercache.protocol import ObjectInfo

#: The most objects one seed request carries.
MAX_SEEDS = 200_000
#: The longest version string taken.
MAX_VERSION = 256


def seed_document(objects: Iterable[tuple[str, int, str, float]]) -> bytes:
    """The body of a seed request: ``(path, size, version, mtime)`` for each object, ``path``
    as ``bucket/key`` and ``mtime`` in seconds since the epoch."""
    entries = [
        {"path": path, "size": size, "version": version, "mtime": mtime}
        for path, size, version, mtime in objects
    ]
    return json.dumps({"objects": entries}, separators=(",", ":")).encode()


def parse_seeds(body: bytes) -> tuple[list[ObjectInfo], int]:
    """The infos a seed request carries, and how many of its objects were skipped (mutable
    paths).

    Raises:
        S3Error: Not a seed document, or an entry that is not ``{path, size, version, mtime}``
            with a ``bucket/key`` path, a size of 0 or more and a short version (400).
    """
    try:
        entries = json.loads(body)["objects"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _malformed(f"not a seed document: {exc}") from exc
    if not isinstance(entries, list) or len(entries) > MAX_SEEDS:
        raise _malformed(f"'objects' must be a list of at most {MAX_SEEDS} entries")
    infos, skipped = [], 0
    for entry in entries:
        info = _info(entry)
        if is_immutable(info.path):
            infos.append(info)
        else:
            skipped += 1
    return infos, skipped


def _info(entry: Any) -> ObjectInfo:
    if not isinstance(entry, dict):
        raise _malformed(f"a seed entry is not an object: {entry!r:.80}")
    path, size, version, mtime = (entry.get(k) for k in ("path", "size", "version", "mtime"))
    bucket, _, key = path.partition("/") if isinstance(path, str) else ("", "", "")
    segments: Sequence[str] = key.split("/")
    if not bucket or not key or any(s in ("", ".", "..") for s in segments):
        raise _malformed(f"a seed's path must be bucket/key: {path!r:.200}")
    size, version, modified = file_fields((size, version, mtime), ("a seed", path), _malformed)
    raw = {"name": path, "size": size, "type": "file", "LastModified": modified}
    return ObjectInfo(path=f"{bucket}/{key}", size=size, version=version, raw=raw)


def file_fields(
    fields: tuple[Any, Any, Any], where: tuple[str, Any], malformed: Callable[[str], S3Error]
) -> tuple[int, str, datetime]:
    """``(size, version, mtime)`` of a file handed to the gateway, checked: an integer of 0 or
    more, a string of 1 to :data:`MAX_VERSION` characters, seconds since the epoch (a
    datetime). ``where`` is ``(what, path)`` for the message: ``("a seed", "bkt/key")``.

    Raises:
        S3Error: ``malformed(message)`` for the first field that is not right.
    """
    (size, version, mtime), (what, path) = fields, where
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise malformed(f"{what}'s size must be an integer of 0 or more: {path}")
    if not isinstance(version, str) or not version or len(version) > MAX_VERSION:
        raise malformed(f"{what}'s version must be a string of 1 to {MAX_VERSION}: {path}")
    if not isinstance(mtime, int | float) or isinstance(mtime, bool):
        raise malformed(f"{what}'s mtime must be a number: {path}")
    try:
        return size, version, datetime.fromtimestamp(float(mtime), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise malformed(f"{what}'s mtime is out of range: {path}") from exc


def _malformed(message: str) -> S3Error:
    return S3Error("MalformedSeed", 400, message)
