"""The small protocols and value types every part of tiercache speaks.

A :class:`Tier` stores blocks (and, optionally, encoded object info) under versioned
:class:`BlockKey` keys. An :class:`Origin` is where the bytes really live. Both are
`typing.Protocol` classes: a user-written tier needs no base class, only these methods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .blocks import BlockKind, metadata_start
from .context import ReadContext
from .stats import Histogram, OriginCounters

__all__ = [
    "BlockKey",
    "BlockKind",  # defined in blocks (pure, no import of this module); public here too
    "BudgetedTier",
    "DocumentTier",
    "InProcessTier",
    "InfoTier",
    "ObjectInfo",
    "Origin",
    "ReportingTier",
    "SizedTier",
    "StartableTier",
    "ThreadBoundTier",
    "Tier",
    "WarningTier",
]


class BlockKey(NamedTuple):
    """The identity of one cached block.

    A NamedTuple, not a dataclass: it is hashed on every lookup of the read path, and tuple
    hashing is done in C.

    Attributes:
        target: Digest of the target filesystem's identity (protocol and endpoint); never
            credentials.
        path: The object's path on the target, without protocol.
        version: The object's version (ETag, generation, version id, or ``size:mtime``).
        block_size: Block size in bytes. Part of the key, so changing the block size can
            never serve a block cut at other borders.
        block_index: Block number: the block covers
            ``[block_index * block_size, (block_index + 1) * block_size)``.
    """

    target: str
    path: str
    version: str
    block_size: int
    block_index: int

    def digest(self) -> str:
        """Return a stable hex digest of the key, for tiers that need flat string keys."""
        text = "\x00".join(
            (self.target, self.path, self.version, str(self.block_size), str(self.block_index))
        )
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What tiercache knows of one object: enough to key and pin its blocks.

    Attributes:
        path: The object's path on the target.
        size: Size in bytes.
        version: The version string used in block keys.
        etag: The ETag to pin reads to (S3 ``If-Match``), when the store has one.
        raw: The target's own ``info`` dict, returned unchanged by ``fs.info``.
    """

    path: str
    size: int
    version: str
    etag: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: Blocks ending after this offset are ``metadata`` (see :func:`tiercache.blocks.classify`);
    #: computed once here so that the hot path classifies a block with one comparison.
    metadata_from: int = field(default=-1, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.metadata_from < 0:
            object.__setattr__(self, "metadata_from", metadata_start(self.path, self.size))


@runtime_checkable
class Tier(Protocol):
    """One cache tier. A miss returns ``None``; a failure raises (the chain makes it a miss).

    Tiers other than the in-process memory tier are always called through a guard (time budget,
    circuit breaker, bulkhead), so an implementation may block; it must never return bytes it
    cannot vouch for.
    """

    name: str

    def accepts(self, kind: BlockKind, /) -> bool:
        """Return whether blocks of this class belong in this tier."""
        ...

    def get(self, key: BlockKey, /) -> bytes | None:
        """Return the block stored under ``key``, or ``None`` on a miss."""
        ...

    def put(self, key: BlockKey, data: bytes, /) -> None:
        """Store ``data`` under ``key``; may silently decline (too large, no space)."""
        ...

    def delete_object(self, target: str, path: str, /) -> None:
        """Forget every block (all versions) of one object."""
        ...

    def close(self) -> None:
        """Release the tier's resources. Called once, when the chain closes."""
        ...


# -- optional tier capabilities -------------------------------------------------------------
#
# A tier needs only the Tier methods. Each of these small protocols is one thing a tier may
# also offer; the chain (and `tiercache doctor`) checks for it with isinstance, so mypy checks
# every implementation, and examples/custom_tier.py shows them.


@runtime_checkable
class InProcessTier(Protocol):
    """A tier that runs in the process and never blocks (the RAM tier): no guard around it.

    Declare ``in_process = True``; the chain then calls it directly, and a first tier that does
    is probed inline on the hot path.
    """

    in_process: bool


@runtime_checkable
class BudgetedTier(Protocol):
    """A tier with a time budget of its own for one call (the guard's timeout).

    Without it the tier gets the chain's default budget. The built-in tiers declare theirs:
    ``TIERCACHE_DISK_TIMEOUT``, ``TIERCACHE_REDIS_TIMEOUT``.
    """

    @property
    def timeout_s(self) -> float:
        """Seconds one call may take before the guard gives up on it (a miss)."""
        ...


@runtime_checkable
class StartableTier(Protocol):
    """A tier that may be unusable when it is built (an unreachable server, a bad directory).

    A tier not ``ready`` at start is ``disabled`` (its breaker probes it after each cooldown),
    with ``last_error`` as the reason in the log, ``stats()`` and ``tiercache doctor``.
    """

    @property
    def ready(self) -> bool:
        """Whether the tier can serve calls now."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the tier is not usable (no secret in it), or None."""
        ...


@runtime_checkable
class ThreadBoundTier(Protocol):
    """A tier that keeps per-thread resources (the disk tier's SQLite connections)."""

    def release_thread(self) -> None:
        """Release what the calling thread holds; called on each guard thread as it ends."""
        ...


@runtime_checkable
class SizedTier(Protocol):
    """A tier with a byte budget: the shadow cache estimates its hit ratio at other sizes."""

    @property
    def capacity_bytes(self) -> int:
        """The tier's budget in bytes."""
        ...


@runtime_checkable
class ReportingTier(Protocol):
    """A tier with figures of its own, merged into ``stats()["tiers"][name]``.

    Called on the caller's thread, outside the guard: it must not block (no I/O).
    """

    def stats(self) -> Mapping[str, object]:
        """Tier-specific figures; the chain's own counters win on a name clash."""
        ...


@runtime_checkable
class WarningTier(Protocol):
    """A tier that can work but be unsafe (the disk tier in a directory others may write to)."""

    @property
    def warnings(self) -> Sequence[str]:
        """What works but is unsafe, for ``tiercache doctor``; empty when nothing is."""
        ...


@runtime_checkable
class DocumentTier(Protocol):
    """A tier that also shares documents between processes (the Redis tier does): object info,
    and Delta log listings stored under the directory's path with a trailing ``/``
    (:mod:`tiercache.documents`)."""

    def get_info(self, target: str, path: str, /) -> bytes | None:
        """Return the verified document stored for ``path``, or ``None``."""
        ...

    def put_info(self, target: str, path: str, document: bytes, /) -> None:
        """Store a document (see :func:`tiercache.documents.info_document`)."""
        ...


#: The former name of :class:`DocumentTier` (it stores listings too); kept for one release.
InfoTier = DocumentTier


class Origin(Protocol):
    """The source of truth: an object store (or any fsspec filesystem) behind the tiers.

    Every request is counted by the origin itself in :attr:`counters` and :attr:`latency`, in
    the :class:`~tiercache.context.ReadContext` the chain passes with it (purpose and block
    class). :class:`~tiercache.origin.FsspecOrigin` is the implementation tiercache builds.
    """

    @property
    def target(self) -> str:
        """Digest of the target identity (protocol, endpoint), used in block keys."""
        ...

    @property
    def protocol(self) -> str:
        """The target's protocol ("s3", "gcs", "file", ...), for labels and messages."""
        ...

    @property
    def can_discover(self) -> bool:
        """Whether :meth:`read_discover` can learn an object's info from a ranged read."""
        ...

    @property
    def timeout_s(self) -> float:
        """The deadline of one read, retries included (``TIERCACHE_ORIGIN_TIMEOUT``)."""
        ...

    @property
    def counters(self) -> OriginCounters:
        """Requests, bytes, retries, errors... (:mod:`tiercache.stats`), by purpose and class."""
        ...

    @property
    def latency(self) -> Histogram:
        """Latency of each request, by purpose and class."""
        ...

    def expected_s(self, nbytes: int, /) -> float | None:
        """How long a read of ``nbytes`` should take, from the reads seen; None if unknown.

        The chain decides from it when a block fetch is late (:mod:`tiercache.lateness`).
        """
        ...

    def info(self, path: str, /, *, deadline: float | None = None, ctx: ReadContext) -> ObjectInfo:
        """Return the object's info (one metadata request, retried)."""
        ...

    def read(
        self,
        info: ObjectInfo,
        start: int,
        end: int,
        /,
        *,
        deadline: float | None = None,
        ctx: ReadContext,
    ) -> bytes:
        """Return exactly ``[start, end)`` of the object version described by ``info``.

        ``deadline`` is an absolute :func:`time.monotonic` time by which the read, retries
        included, must end; None: :attr:`timeout_s` from now.

        Raises:
            ObjectChangedError: The object is no longer at that version.
        """
        ...

    def read_discover(
        self,
        path: str,
        start: int,
        end: int,
        /,
        *,
        deadline: float | None = None,
        ctx: ReadContext,
    ) -> tuple[bytes, ObjectInfo]:
        """Read ``[start, end)`` (clipped at EOF) without knowing the object first.

        Returns the bytes and the object's info learnt from the same response, so a cold
        read costs one request, not a HEAD and a GET. ``deadline`` as for :meth:`read`.
        Only called when :attr:`can_discover`.
        """
        ...

    def read_object(
        self, path: str, start: int | None, end: int | None, /, *, ctx: ReadContext
    ) -> bytes:
        """Return ``[start, end)`` (slice semantics) of a path that is not a file, unpinned."""
        ...

    def forget(self, path: str, /) -> None:
        """Drop what the origin itself caches for ``path`` (the object changed under a read)."""
        ...
