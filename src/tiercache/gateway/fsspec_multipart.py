"""S3 multipart uploads kept in a local directory, for origins that have none (any fsspec target).

Each upload is a directory ``<root>/<upload id>/`` holding ``meta.json`` (bucket, key, when
initiated) and one file per part, ``<part number>.<md5>.part`` (the MD5 is the part's ETag, as
S3 gives it). A part is written to a temporary file and renamed into place, so a part uploaded
again replaces the old one whole. Completing concatenates the listed parts into one local file,
which the caller writes to the target in one call; the directory is removed after.

The state is on local disk, not in memory: the gateway's worker processes on one host share it
(``tiercache serve --workers``), and parts cost no RAM. An upload that is never completed nor
aborted stays until its directory is removed (by hand, or by the system's temporary-file
cleaning: the default root is under the system's temporary directory).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tiercache.gateway.s3errors import (
    S3Error,
    invalid_part,
    invalid_part_order,
    no_such_upload,
)
from tiercache.tiers.safedir import UnsafePathError, private_problem

_UPLOAD_ID = re.compile("[0-9a-f]{32}")
_PART = re.compile(r"(\d{5})\.([0-9a-f]{32})\.part")


def default_root() -> Path:
    """Where uploads are kept by default: ``tiercache-multipart-<uid>`` in the temporary
    directory (one per user: the temporary directory is shared, and parts are data)."""
    return Path(tempfile.gettempdir()) / f"tiercache-multipart-{os.geteuid()}"


def private_root(root: Path) -> Path:
    """Create ``root`` (and its parent, the per-user directory) private to this user (0700),
    or check that what is there already is: a directory, not a symlink, owned by this user, not
    writable by group or others; its mode is then narrowed to 0700 (parts are data).

    Raises:
        UnsafePathError: Something another user could have planted or can read and write is
            there (the message names the path and the problem).
    """
    euid = os.geteuid()
    for path in (root.parent, root) if root.parent == default_root() else (root,):
        with suppress(FileExistsError):
            os.mkdir(path, 0o700)
        problem = private_problem(str(path), os.lstat(path), euid=euid, directory=True)
        if problem is not None:
            raise UnsafePathError(f"multipart uploads not kept: {problem}")
        os.chmod(path, 0o700, follow_symlinks=False)
    return root


class Uploads:
    """The multipart uploads in progress, under ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_root()

    def create(self, bucket: str, key: str) -> str:
        """Start an upload of ``bucket``/``key``; returns its id."""
        upload_id = uuid.uuid4().hex
        directory = private_root(self.root) / upload_id
        directory.mkdir(mode=0o700)
        meta = {"bucket": bucket, "key": key, "initiated": datetime.now(UTC).isoformat()}
        (directory / "meta.json").write_text(json.dumps(meta))
        return upload_id

    def add_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Keep part ``number`` of the upload; returns its ETag (the MD5, hex).

        Raises:
            S3Error: 404 NoSuchUpload.
        """
        directory = self._directory(bucket, key, upload_id)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, directory / f"{number:05d}.{etag}.part")
        for name, _, path in self._parts(directory):
            if name == number and path.name != f"{number:05d}.{etag}.part":
                path.unlink(missing_ok=True)
        return etag

    def parts(self, bucket: str, key: str, upload_id: str) -> list[dict[str, Any]]:
        """The parts uploaded so far, by number, as botocore's ``Parts`` items."""
        directory = self._directory(bucket, key, upload_id)
        found = []
        for number, etag, path in sorted(self._parts(directory)):
            stat = path.stat()
            found.append(
                {
                    "PartNumber": number,
                    "ETag": f'"{etag}"',
                    "Size": stat.st_size,
                    "LastModified": datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                }
            )
        return found

    def assemble(
        self, bucket: str, key: str, upload_id: str, listed: Sequence[Mapping[str, Any]]
    ) -> Path:
        """Concatenate the parts ``listed`` (CompleteMultipartUpload's) into one local file.

        Raises:
            S3Error: 404 NoSuchUpload; 400 InvalidPartOrder, InvalidPart (a part not uploaded,
                or another ETag); 400 InvalidRequest: no part is listed.
        """
        directory = self._directory(bucket, key, upload_id)
        numbers = [int(p["PartNumber"]) for p in listed]
        if not numbers:
            raise S3Error("InvalidRequest", 400, "You must specify at least one part", resource=key)
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise invalid_part_order(upload_id)
        kept = {number: (etag, path) for number, etag, path in self._parts(directory)}
        target = directory / "assembled.bin"
        with target.open("wb") as out:
            for item in listed:
                number, etag = int(item["PartNumber"]), str(item.get("ETag", "")).strip('"')
                if number not in kept or kept[number][0] != etag:
                    raise invalid_part(upload_id, number, str(item.get("ETag", "")))
                with kept[number][1].open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        return target

    def remove(self, bucket: str, key: str, upload_id: str) -> None:
        """Forget the upload and its parts (complete, abort).

        Raises:
            S3Error: 404 NoSuchUpload.
        """
        shutil.rmtree(self._directory(bucket, key, upload_id), ignore_errors=True)

    def uploads(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """The uploads in progress of ``bucket`` under ``prefix``, by key then id, as botocore's
        ``Uploads`` items."""
        found: list[dict[str, Any]] = []
        for directory in private_root(self.root).iterdir():
            meta = _meta(directory)
            if meta is None or meta["bucket"] != bucket or not meta["key"].startswith(prefix):
                continue
            found.append(
                {
                    "Key": meta["key"],
                    "UploadId": directory.name,
                    "Initiated": datetime.fromisoformat(meta["initiated"]),
                    "StorageClass": "STANDARD",
                }
            )
        found.sort(key=lambda u: (u["Key"], u["UploadId"]))
        return found

    def _directory(self, bucket: str, key: str, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise no_such_upload(upload_id)
        directory = private_root(self.root) / upload_id
        meta = _meta(directory)
        if meta is None or meta["bucket"] != bucket or meta["key"] != key:
            raise no_such_upload(upload_id)
        return directory

    @staticmethod
    def _parts(directory: Path) -> Iterator[tuple[int, str, Path]]:
        for path in directory.iterdir():
            match = _PART.fullmatch(path.name)
            if match:
                yield int(match.group(1)), match.group(2), path


def _meta(directory: Path) -> dict[str, str] | None:
    try:
        meta: dict[str, str] = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta
