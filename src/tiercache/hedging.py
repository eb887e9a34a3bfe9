"""Hedged origin reads: when a read is late to its first byte, send one more identical request.

Object-store first-byte latency has a long tail: a few requests in a hundred wait far longer than
the rest, and a second identical request usually answers at the ordinary pace (docs/reliability.md,
"Hedged reads"). :func:`race` runs one read (a coroutine factory); if it has not finished by the
threshold of :class:`Hedging`, it starts the same read again and takes the first answer,
cancelling the other (its response is released, its connection closed).

- **Threshold** (:meth:`Hedging.threshold_s`): the 95th percentile of the last
  :data:`WINDOW` first-byte latencies the origin observed, at least twice their median, at least
  twice the median of the last :data:`RECENT` (an origin that became slow for everyone lifts it
  within a few reads) and at least :data:`MIN_THRESHOLD_S` (a fast loopback store is not hedged
  on jitter); no hedging before :data:`MIN_SAMPLES` samples.
- **Budget**: a token bucket, full at first; every read adds ``budget`` tokens (0.05 by
  default), a hedge takes one, the bucket holds at most :data:`BURST` tokens. Over any run of
  reads the hedges are at most ``budget`` of them plus the burst, so an origin slow for everyone
  is not doubled. The burst lets late requests that come close together all be hedged: with a
  tail as frequent as the budget, a smaller bucket runs dry in every cluster of them.
- **Counting**: the hedges issued and won, and the reads cancelled before their answer came,
  go to the origin call's :class:`~tiercache.attempts.Attempts` (``hedges``, ``hedges_won``,
  ``unanswered``), from which the origin counts requests and the ``hedges`` counters.

The first copy to finish decides, an error included: a 412 from either copy is
:class:`~tiercache.errors.ObjectChangedError` as without hedging, and a transient error is the
attempt's error, retried by the origin. Both copies carry the same version pin, so whichever
answers with bytes answers with the bytes of that version: never a mix.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from .attempts import current

T = TypeVar("T")

#: First-byte samples the threshold is computed over (the most recent).
WINDOW: Final = 256
#: No hedging before this many samples.
MIN_SAMPLES: Final = 20
#: Never hedge a read that waited less than this for its first byte.
MIN_THRESHOLD_S: Final = 0.05
#: The threshold is at least this multiple of the median first-byte latency.
MEDIAN_FACTOR: Final = 2.0
#: The percentile of the window the threshold is taken at.
PERCENTILE: Final = 0.95
#: The threshold is also at least twice the median of this many most recent samples.
RECENT: Final = 8
#: Most hedges the budget lets through back to back (5% of 200 reads).
BURST: Final = 10.0
#: How long a cancelled loser may take to close before the winner returns anyway.
_CANCEL_WAIT_S: Final = 0.25


class Hedging:
    """When to hedge an origin read: the threshold and the budget, shared by an origin's reads.

    Thread-safe. Fed with first-byte latencies by :meth:`observe` (the origin's
    :class:`~tiercache.lateness.Pace` forwards them).

    Args:
        enabled: ``TIERCACHE_ORIGIN_HEDGE``; False: :func:`race` never hedges.
        budget: ``TIERCACHE_ORIGIN_HEDGE_BUDGET``: tokens each read adds (the share of reads
            that may be hedged).
        burst: Most tokens the bucket holds.
    """

    def __init__(self, *, enabled: bool = True, budget: float = 0.05, burst: float = BURST):
        self.enabled = enabled
        self.budget = budget
        self.burst = burst
        self._lock = threading.Lock()
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._tokens = burst

    def observe(self, first_byte_s: float) -> None:
        """Count one read's time to its first byte (its response headers)."""
        with self._lock:
            self._samples.append(max(0.0, first_byte_s))

    def threshold_s(self) -> float | None:
        """Return how long a read may wait for its first byte before it is hedged; None: never
        (hedging off, or too few samples yet)."""
        if not self.enabled:
            return None
        with self._lock:
            samples = sorted(self._samples)
            recent = sorted(list(self._samples)[-RECENT:])
        if len(samples) < MIN_SAMPLES:
            return None
        p95 = samples[min(len(samples) - 1, int(PERCENTILE * len(samples)))]
        median = max(samples[len(samples) // 2], recent[len(recent) // 2])
        return max(p95, MEDIAN_FACTOR * median, MIN_THRESHOLD_S)

    def note_read(self) -> None:
        """Count one read: it adds ``budget`` tokens, up to the burst."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + self.budget)

    def take(self) -> bool:
        """Take a token for one hedge; False when the budget is spent."""
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


async def race(
    make: Callable[[asyncio.Event], Awaitable[T]], hedging: Hedging | None, timeout_s: float
) -> T:
    """Run ``make(event)``; if it has no first byte at the threshold, run it again; the first
    answer (bytes or an error) is the read's, the other copy is cancelled.

    Args:
        make: Starts one read (one request); it sets the event it is given when the response
            headers come. Called once, or twice when hedged.
        hedging: The origin's policy; None: no hedging.
        timeout_s: The time left for the read: a threshold at or beyond it is not waited for.
    """
    threshold = hedging.threshold_s() if hedging is not None else None
    if hedging is not None:
        hedging.note_read()
    if hedging is None or threshold is None or threshold >= timeout_s:
        return await make(asyncio.Event())
    answered = [asyncio.Event()]
    tasks: list[asyncio.Task[T]] = [asyncio.ensure_future(make(answered[0]))]
    try:
        headers = asyncio.ensure_future(answered[0].wait())
        try:
            await asyncio.wait(
                [tasks[0], headers], timeout=threshold, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            headers.cancel()
        if not answered[0].is_set() and not tasks[0].done() and hedging.take():
            answered.append(asyncio.Event())
            tasks.append(asyncio.ensure_future(make(answered[1])))
            _count("hedges")
        return await _first_answer(tasks)
    finally:
        unanswered = await _cancel(tasks, answered)
        if unanswered:
            _count("unanswered", unanswered)


def _count(name: str, amount: int = 1) -> None:
    """Add to a hedging count of the origin call's recording (none outside an origin call)."""
    attempts = current()
    if attempts is not None:
        setattr(attempts, name, getattr(attempts, name) + amount)


async def _first_answer(tasks: list[asyncio.Task[T]]) -> T:
    """Wait for the first of ``tasks`` to finish: its result, or its error."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    # Two done at once: the first one started answered first (the hedge did not win).
    task = min(done, key=tasks.index)
    if task is not tasks[0] and task.exception() is None:
        _count("hedges_won")
    return task.result()


async def _cancel(tasks: list[asyncio.Task[T]], answered: list[asyncio.Event]) -> int:
    """Cancel the tasks still running, wait (briefly) for them to close their requests; return
    how many of them were cancelled before their answer came."""
    losers = [task for task in tasks if not task.done()]
    for task in losers:
        task.cancel()
    if losers:
        await asyncio.wait(losers, timeout=_CANCEL_WAIT_S)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a loser's failure is not an unhandled error
    return sum(not answered[tasks.index(task)].is_set() for task in losers)
