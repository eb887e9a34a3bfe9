"""What a piece of work is counted as: its purpose and its block class, passed explicitly.

Every counter and histogram of tiercache is kept apart by **purpose** (``demand``: what the
application asked for; ``prefetch``: reads made ahead of it, such as warmup) and by **block
class** (``metadata``: footers, Delta log files, small objects and object info; ``data``: the
rest, see :func:`tiercache.blocks.classify`). A :class:`ReadContext` names both. The chain
creates one per read and derives one per block; it hands the context to whatever counts on its
behalf (a tier's guard, the origin, the fill queue), including work that runs on other threads.
Nothing is read from thread-local state, so work handed to a pool is counted where it belongs
without any wrapping.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

from .blocks import BlockKind

Purpose = Literal["demand", "prefetch"]

PURPOSES: Final[tuple[Purpose, ...]] = ("demand", "prefetch")
KINDS: Final[tuple[BlockKind, ...]] = ("metadata", "data")


class ReadContext(NamedTuple):
    """The purpose and block class a counter update belongs to.

    A NamedTuple: it is the key of every counter cell, hashed on each update. Use the four
    interned instances (:func:`context_of`, :data:`DEMAND`, :data:`PREFETCH`); they compare by
    value, so any equal tuple works too.
    """

    purpose: Purpose
    kind: BlockKind

    def as_kind(self, kind: BlockKind) -> ReadContext:
        """The same purpose, counted in ``kind``."""
        return _CONTEXTS[self.purpose, kind]

    @property
    def prefetch(self) -> bool:
        """Whether this is work ahead of demand."""
        return self.purpose == "prefetch"


_CONTEXTS: Final = {(p, k): ReadContext(p, k) for p in PURPOSES for k in KINDS}

#: Demand reads: what the application asked for (the class is set per block).
DEMAND: Final = _CONTEXTS["demand", "data"]
#: Reads ahead of demand (warmup, ``TieredFileSystem.prefetch_range``).
PREFETCH: Final = _CONTEXTS["prefetch", "data"]


def context_of(purpose: Purpose, kind: BlockKind) -> ReadContext:
    """The interned context of ``purpose`` and ``kind``."""
    return _CONTEXTS[purpose, kind]


def wanted(ctx: ReadContext, purpose: str | None, kind: str | None) -> bool:
    """Whether counts made in ``ctx`` belong to ``purpose`` and ``kind`` (None: any)."""
    return (purpose is None or ctx.purpose == purpose) and (kind is None or ctx.kind == kind)
