"""Version-pinned reads, one implementation per store: a read never mixes two versions.

:func:`pinned_reads_for` picks the :class:`PinnedReads` of a target filesystem: S3 (s3fs) reads
carry ``If-Match: <ETag>`` (or the ``VersionId``); GCS (gcsfs) reads name the generation
(:mod:`tiercache.origin_gcs`); Azure Blob Storage (adlfs) reads carry ``If-Match`` too
(:mod:`tiercache.origin_azure`). A store without one here is read with the target's own
``cat_file``, unpinned; its version (size, mtime, ...) is only checked by
:meth:`~tiercache.origin.FsspecOrigin.info`. docs/architecture.md lists what each store's
version is made of and how it is pinned.

An implementation raises :class:`~tiercache.errors.ObjectChangedError` when the store says the
object is no longer at the version read (a failed precondition, or an answer that names another
version); the chain then forgets the info, counts the change and reads the new version whole.
"""

from __future__ import annotations

from typing import Protocol

from fsspec import AbstractFileSystem

from .hedging import Hedging
from .lateness import Pace
from .origin_azure import AzureReads, is_azure
from .origin_gcs import GcsReads, is_gcs
from .origin_s3 import S3Reads, is_s3
from .protocol import ObjectInfo


class PinnedReads(Protocol):
    """Ranged reads of one target filesystem, each pinned to the version an info names."""

    def can_pin(self, info: ObjectInfo, /) -> bool:
        """Whether ``info`` names a version this store can pin a read to."""
        ...

    def read(self, info: ObjectInfo, start: int, end: int, timeout_s: float, /) -> bytes:
        """Return ``[start, end)`` of the version ``info`` names (one request, the client's own
        retries aside), reporting its timing to the origin's pace.

        Raises:
            ObjectChangedError: The object is no longer at that version.
        """
        ...


class S3Pinned:
    """S3: ``If-Match`` with the ETag the info was read with (the ``VersionId`` when the path
    names one)."""

    def __init__(self, reads: S3Reads) -> None:
        self.reads = reads

    def can_pin(self, info: ObjectInfo, /) -> bool:
        return bool(info.etag)

    def read(self, info: ObjectInfo, start: int, end: int, timeout_s: float, /) -> bytes:
        data, _ = self.reads.get(info.path, start, end, info.etag, timeout_s)
        return data


def pinned_reads_for(
    fs: AbstractFileSystem, protocol: str, pace: Pace, hedging: Hedging | None = None
) -> PinnedReads | None:
    """The pinned reads of ``fs`` (whose protocol is ``protocol``), or None: reads go through
    the target's ``cat_file``, unpinned. ``hedging``: when a late read is sent again."""
    if is_s3(fs, protocol):
        return S3Pinned(S3Reads(fs, pace, hedging))
    if is_azure(fs, protocol):
        return AzureReads(fs, pace, hedging)
    if is_gcs(fs, protocol):
        return GcsReads(fs, pace, hedging)
    return None
