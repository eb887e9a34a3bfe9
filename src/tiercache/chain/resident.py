"""Reads answered from RAM alone, never waiting: for callers on an event loop (the gateway).

:func:`resident_range` returns the bytes of a range when every block of it is in the chain's
front (in-process) tier, and None otherwise, without asking any other tier, the origin, or
anything that blocks. Found blocks are counted as the chain's hot path counts them (one tally
per block, ``fast_meta`` / ``fast_data``, and the shadow cache's sample); a range not wholly
resident counts nothing here: the caller reads it the usual way, which counts it.
"""

from __future__ import annotations

from typing import Protocol

from tiercache.protocol import BlockKey, ObjectInfo
from tiercache.shadow import MASK as SHADOW_MASK
from tiercache.shadow import ShadowCache
from tiercache.stats import Tally

from .slots import TierSlot

_new_key = tuple.__new__


class Chain(Protocol):
    """What a resident read uses of :class:`~tiercache.chain.core.TierChain` (a protocol: the
    chain's own hot path calls these functions, so this module does not import it)."""

    front: TierSlot | None
    block_size: int
    target: str
    shadow: ShadowCache | None
    fast_meta: Tally
    fast_data: Tally


def resident_range(chain: Chain, info: ObjectInfo, start: int, end: int) -> bytes | None:
    """``[start, end)`` of the object ``info`` describes, from RAM only, or None.

    ``0 <= start < end <= info.size`` is the caller's to check.
    """
    parts = resident_parts(chain, info, start, end)
    if parts is None:
        return None
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(parts)


def resident_parts(
    chain: Chain, info: ObjectInfo, start: int, end: int
) -> list[bytes | memoryview] | None:
    """:func:`resident_range` as the blocks' own buffers, in order, none copied: whole blocks
    as they are, the first and last cut with memoryviews (a caller writing them to a socket
    one after another sends the range without joining it)."""
    front = chain.front
    if front is None:
        return None
    bs = chain.block_size
    first, last = start // bs, (end - 1) // bs
    found = []
    for index in range(first, last + 1):
        key = _new_key(BlockKey, (chain.target, info.path, info.version, bs, index))
        block = front.tier.get(key)
        if block is None:
            return None
        found.append((key, index, block))
    shadow = chain.shadow
    parts: list[bytes | memoryview] = []
    for key, index, block in found:
        if shadow is not None and (hash(key) & SHADOW_MASK) < shadow.threshold:
            shadow.access(hash(key), len(block))
        if (index + 1) * bs > info.metadata_from:
            chain.fast_meta.add(len(block))
        else:
            chain.fast_data.add(len(block))
        offset = index * bs
        lo, hi = max(start - offset, 0), min(end - offset, len(block))
        parts.append(block if (lo, hi) == (0, len(block)) else memoryview(block)[lo:hi])
    return parts
