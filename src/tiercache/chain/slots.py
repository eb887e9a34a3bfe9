"""A tier in the chain: the tier, its counters, its guard (with its own time budget).

The chain calls every tier through its :class:`TierSlot`. A tier that runs in process (the RAM
tier, :class:`~tiercache.protocol.InProcessTier`) is called directly; any other gets a
:class:`~tiercache.guard.Guard` with the tier's own time budget
(:class:`~tiercache.protocol.BudgetedTier`), a circuit breaker and a bulkhead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tiercache.blocks import BlockKind
from tiercache.context import Purpose, ReadContext, context_of
from tiercache.guard import WARNING_INTERVAL_S, BreakerState, CircuitBreaker, Guard
from tiercache.protocol import (
    BlockKey,
    BudgetedTier,
    InProcessTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
)
from tiercache.stats import TierCounters

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class TierSlot:
    """One tier in the chain with its counters and, unless it runs in process, its guard."""

    tier: Tier
    counters: TierCounters
    guard: Guard | None
    # Paths whose invalidation failed in this tier: it is not trusted for them any more.
    untrusted: set[str] = field(default_factory=set)
    _last_corrupt_warning: float = -WARNING_INTERVAL_S

    @property
    def name(self) -> str:
        return self.tier.name

    @property
    def state(self) -> BreakerState:
        return BreakerState.CLOSED if self.guard is None else self.guard.breaker.state

    def corrupt(self, reason: object, ctx: ReadContext) -> None:
        """Count a value that failed its checks; one WARNING per interval, not one per value."""
        self.counters.add("corrupt", ctx=ctx)
        now = time.monotonic()
        if now - self._last_corrupt_warning >= WARNING_INTERVAL_S:
            self._last_corrupt_warning = now
            logger.warning("tier %r served a bad value (%s); it was dropped", self.name, reason)

    def call(
        self, fn: Callable[..., Any], *args: object, read: bool = True, ctx: ReadContext
    ) -> Any:
        """Call a tier method, through the guard when there is one."""
        if self.guard is None:
            return fn(*args)
        return self.guard.call(fn, *args, read=read, ctx=ctx)


@dataclass(eq=False)
class ReadScope:
    """One read in progress: its purpose, and the tiers that failed during it.

    A tier that fails once is not asked again during the read, so a hung tier costs one time
    budget per read, not one per block: the breaker needs ``TIERCACHE_BREAKER_FAILURES`` reads
    to open, and until then no read pays twice. Passed down explicitly; work the read hands to
    other threads gets the contexts it needs with it.
    """

    purpose: Purpose
    failed: set[TierSlot] = field(default_factory=set)
    #: The block the hot path looked for in the RAM tier and missed, before this scope began:
    #: the RAM tier is not asked for it twice (one lookup, one miss).
    front_missed: BlockKey | None = None
    #: The fetcher's resolutions when that lookup was made (None: no hot-path lookup). Before
    #: fetching, the RAM tier is asked again if a fetch finished since (Fetcher.fetch).
    since: int | None = None

    def ctx(self, kind: BlockKind) -> ReadContext:
        """What work of this read on a block of class ``kind`` is counted as."""
        return context_of(self.purpose, kind)


def budget_of(tier: Tier, by_name: Mapping[str, float], default_s: float) -> float:
    """The guard's time budget for ``tier``: given by name, else the tier's own, else default.

    The tier's own (:class:`~tiercache.protocol.BudgetedTier`) comes with the tier, so a user's
    tier that happens to be named "disk" never gets the disk tier's budget.
    """
    if tier.name in by_name:
        return by_name[tier.name]
    return tier.timeout_s if isinstance(tier, BudgetedTier) else default_s


def make_slots(
    tiers: Sequence[Tier],
    *,
    timeouts_s: Mapping[str, float],
    default_timeout_s: float,
    breaker_failures: int,
    breaker_cooldown_s: float,
) -> list[TierSlot]:
    """A slot per tier, in lookup order; a tier that could not start begins disabled.

    Raises:
        ValueError: Two tiers have the same name.
    """
    names = [tier.name for tier in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"tier names must be unique, got {names}")
    slots: list[TierSlot] = []
    for tier in tiers:
        counters = TierCounters()
        guard = None
        if not (isinstance(tier, InProcessTier) and tier.in_process):
            guard = Guard(
                tier.name,
                timeout_s=budget_of(tier, timeouts_s, default_timeout_s),
                breaker=CircuitBreaker(breaker_failures, breaker_cooldown_s),
                counters=counters,
                on_thread_exit=(tier.release_thread if isinstance(tier, ThreadBoundTier) else None),
            )
        if guard is not None and isinstance(tier, StartableTier) and not tier.ready:
            guard.breaker.disable()  # it could not start; probed after each cooldown
            reason = tier.last_error or "not ready"
            guard.warn(f"tier {tier.name!r} disabled at start ({reason}); reads go on")
        slots.append(TierSlot(tier, counters, guard))
    return slots
