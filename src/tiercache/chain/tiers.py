"""The tiers in lookup order: ask each for a block, promote hits upward, fill behind the read.

The first tier, when it runs in process (RAM), is the *front*: asked inline, without a guard or
the per-block class check. The others are asked through their slots (guard, breaker, time
budget) when they take the block's class, the path is trusted in them, and they have not failed
earlier in the same read. Every tier asked counts a hit or a miss, in the read's purpose and
the block's class; a tier that fails counts a miss (and, in its guard, the error or timeout).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from tiercache.blocks import block_bounds, classify
from tiercache.context import DEMAND, ReadContext
from tiercache.errors import IntegrityError, TierError
from tiercache.fills import FillQueue
from tiercache.protocol import BlockKey, BlockKind, ObjectInfo
from tiercache.shadow import MASK as SHADOW_MASK
from tiercache.shadow import ShadowCache

from .slots import ReadScope, TierSlot

logger = logging.getLogger(__name__)


class TierWalk:
    """Lookups, stores and invalidations across the chain's tiers.

    Args:
        slots: The tiers' slots in lookup order.
        fills: The background fill queue for the slower tiers.
        shadow: The shadow cache shown every lookup of the front tier (None: off).
    """

    def __init__(
        self, slots: Sequence[TierSlot], fills: FillQueue, shadow: ShadowCache | None
    ) -> None:
        self.slots = list(slots)
        self.front = self.slots[0] if self.slots and self.slots[0].guard is None else None
        self.lower = [s for s in self.slots if s is not self.front]
        self.fills = fills
        self.shadow = shadow

    def lookup(self, key: BlockKey, info: ObjectInfo, scope: ReadScope) -> bytes | None:
        """Ask the tiers in order; promote a lower-tier hit upward. Failures are misses.

        Every tier asked counts a hit or a miss, in the read's purpose and the block's class.
        """
        kind: BlockKind = (
            "metadata" if (key.block_index + 1) * key.block_size > info.metadata_from else "data"
        )
        ctx = scope.ctx(kind)
        front = self.front
        if front is not None:
            # The hot path asked already for this key in this read: its miss is this lookup's.
            block = None if key == scope.front_missed else front.tier.get(key)
            shadow = self.shadow
            if shadow is not None and (hash(key) & SHADOW_MASK) < shadow.threshold:
                shadow.access(hash(key), len(block) if block is not None else _length(key, info))
            if block is not None:
                front.counters.hit(len(block), ctx=ctx)
                return block
            front.counters.add("misses", ctx=ctx)
        above: list[TierSlot] = []
        for slot in self.lower:
            if not slot.tier.accepts(kind) or info.path in slot.untrusted or slot in scope.failed:
                continue
            try:
                block = cast("bytes | None", slot.call(slot.tier.get, key, ctx=ctx))
            except IntegrityError as exc:  # the tier has dropped the bad value
                slot.corrupt(exc, ctx)
                block = None
            except TierError:  # counted by the guard (errors, timeouts, rejected)
                scope.failed.add(slot)
                block = None
            if block is not None and len(block) != _length(key, info):
                slot.corrupt("a block of the wrong length", ctx)  # never served
                block = None
            if block is None:
                slot.counters.add("misses", ctx=ctx)
                above.append(slot)
                continue
            slot.counters.hit(len(block), ctx=ctx)
            if front is not None:
                put_front(front.tier, key, block, ctx)
                front.counters.add("bytes_written", len(block), ctx=ctx)
            for upper in above:
                self.fill(upper, key, block, ctx)
            return block
        return None

    def store(self, key: BlockKey, block: bytes, info: ObjectInfo, ctx: ReadContext) -> None:
        """Keep a block fetched from the origin: the memory tier now, slower tiers behind."""
        kind = classify(info.path, key.block_index, key.block_size, info.size)
        ctx = ctx.as_kind(kind)
        front = self.front
        if front is not None:
            put_front(front.tier, key, block, ctx)
            front.counters.add("bytes_written", len(block), ctx=ctx)
        for slot in self.lower:
            if slot.tier.accepts(kind) and info.path not in slot.untrusted:
                self.fill(slot, key, block, ctx)

    def fill(self, slot: TierSlot, key: BlockKey, block: bytes, ctx: ReadContext) -> None:
        """Write a block into a slower tier behind the read (the fill queue)."""

        def job() -> None:
            try:
                slot.call(slot.tier.put, key, block, read=False, ctx=ctx)
            except TierError:
                return
            slot.counters.add("bytes_written", len(block), ctx=ctx)

        self.fills.submit(job, len(block), ctx=ctx)

    # -- the shadow cache ----------------------------------------------------------------------

    def invalidate(self, target: str, path: str) -> None:
        """Forget what every reachable tier holds for ``path``; a tier that cannot is bypassed
        for that path from now on."""
        for slot in self.slots:
            try:
                slot.call(slot.tier.delete_object, target, path, read=False, ctx=DEMAND)
            except TierError:
                slot.untrusted.add(path)
                logger.warning(
                    "tier %r could not invalidate %r; it is bypassed for that path", slot.name, path
                )
            else:
                slot.untrusted.discard(path)


def _length(key: BlockKey, info: ObjectInfo) -> int:
    """The length a block of ``info`` must have."""
    lo, hi = block_bounds(key.block_index, key.block_size, info.size)
    return hi - lo


def put_front(tier: Any, key: BlockKey, block: bytes, ctx: ReadContext) -> None:
    """Put a block into the RAM tier; one fetched ahead of demand goes in as such where the
    policy tells the two apart (S3-FIFO's ``put_prefetched``: its first read is not a reuse)."""
    if ctx.prefetch:
        put_prefetched = getattr(tier, "put_prefetched", None)
        if put_prefetched is not None:
            put_prefetched(key, block)
            return
    tier.put(key, block)
