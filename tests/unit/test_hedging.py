"""Hedging: the threshold from first-byte samples, the token budget, and the race itself.

Deterministic: the samples are given, not timed; a read that must lose waits on an event that is
never set, so what the race does does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tiercache.attempts import Attempts, recording
from tiercache.errors import ObjectChangedError
from tiercache.hedging import BURST, MIN_SAMPLES, MIN_THRESHOLD_S, RECENT, Hedging, race


def fed(samples: list[float], **kwargs: float) -> Hedging:
    hedging = Hedging(**kwargs)  # type: ignore[arg-type]
    for sample in samples:
        hedging.observe(sample)
    return hedging


def test_no_threshold_before_enough_samples_nor_when_off() -> None:
    assert fed([0.1] * (MIN_SAMPLES - 1)).threshold_s() is None
    assert fed([0.1] * MIN_SAMPLES).threshold_s() == pytest.approx(0.2)  # 2x the median
    off = Hedging(enabled=False)
    for _ in range(MIN_SAMPLES):
        off.observe(0.1)
    assert off.threshold_s() is None


def test_threshold_is_the_p95_when_the_tail_is_wide() -> None:
    # 100 samples, every tenth 0.3 s, the others 10 ms: p95 = 0.3 s, 2x the median = 20 ms.
    hedging = fed(([0.01] * 9 + [0.3]) * 10)
    assert hedging.threshold_s() == pytest.approx(0.3)


def test_threshold_never_below_the_floor_on_a_fast_store() -> None:
    assert fed([0.001] * 100).threshold_s() == MIN_THRESHOLD_S


def test_threshold_follows_a_recent_window() -> None:
    hedging = fed([0.01] * 300 + [0.5] * 256)  # the window holds the last 256 only
    assert hedging.threshold_s() == pytest.approx(1.0)


def test_an_origin_slow_for_everyone_lifts_the_threshold_within_a_few_reads() -> None:
    hedging = fed([0.02] * 200)
    assert hedging.threshold_s() == MIN_THRESHOLD_S
    for _ in range(RECENT // 2 - 1):
        hedging.observe(0.3)
    assert hedging.threshold_s() == MIN_THRESHOLD_S  # not yet: a few late reads are a tail
    hedging.observe(0.3)  # now half the recent samples are slow
    assert hedging.threshold_s() == pytest.approx(0.6)


def test_budget_grants_a_share_of_reads_plus_a_burst() -> None:
    hedging = Hedging(budget=0.05)
    assert sum(hedging.take() for _ in range(100)) == int(BURST)  # full at first
    granted = 0
    for _ in range(1000):
        hedging.note_read()
        granted += hedging.take()
    assert granted == 50  # one per 20 reads: 0.05 of them

    idle = Hedging(budget=0.05)
    for _ in range(10_000):
        idle.note_read()  # a long quiet run fills the bucket only up to the burst
    assert sum(idle.take() for _ in range(10)) == int(BURST)


def slow_then_fast(
    payload: bytes, stuck: list[asyncio.Event]
) -> Callable[[asyncio.Event], Awaitable[bytes]]:
    """The first read never answers; every later one answers at once."""
    calls = 0

    async def make(answered: asyncio.Event) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            never = asyncio.Event()
            stuck.append(never)
            await never.wait()
        answered.set()
        return payload

    return make


def ready(budget: float = 1.0) -> Hedging:
    hedging = fed([0.001] * MIN_SAMPLES, budget=budget)  # threshold: the 50 ms floor
    hedging.note_read()
    return hedging


def test_a_stuck_read_is_hedged_and_the_hedge_wins() -> None:
    attempts = Attempts()
    stuck: list[asyncio.Event] = []

    async def main() -> bytes:
        with recording(attempts):
            return await race(slow_then_fast(b"abc", stuck), ready(), 30.0)

    assert asyncio.run(main()) == b"abc"
    assert (attempts.hedges, attempts.hedges_won, attempts.unanswered) == (1, 1, 1)


def test_no_hedge_without_budget_or_when_the_deadline_comes_first() -> None:
    async def answers(answered: asyncio.Event) -> bytes:
        answered.set()
        return b"x"

    attempts = Attempts()

    async def main() -> None:
        with recording(attempts):
            assert await race(answers, ready(budget=0.0), 30.0) == b"x"
            assert await race(answers, ready(), MIN_THRESHOLD_S / 2) == b"x"
            assert await race(answers, None, 30.0) == b"x"

    asyncio.run(main())
    assert attempts.hedges == 0


def test_a_read_whose_headers_came_is_not_hedged() -> None:
    release = asyncio.Event()
    attempts = Attempts()

    async def slow_body(answered: asyncio.Event) -> bytes:
        answered.set()  # headers in at once; the body takes longer than the threshold
        await release.wait()
        return b"body"

    async def main() -> bytes:
        with recording(attempts):
            asyncio.get_running_loop().call_later(MIN_THRESHOLD_S * 3, release.set)
            return await race(slow_body, ready(), 30.0)

    assert asyncio.run(main()) == b"body"
    assert attempts.hedges == 0


def test_the_first_answer_decides_even_a_412_from_the_hedge() -> None:
    calls = 0

    async def changed(answered: asyncio.Event) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # never answers: hedged
        answered.set()
        raise ObjectChangedError("412")

    attempts = Attempts()

    async def main() -> bytes:
        with recording(attempts):
            return await race(changed, ready(), 30.0)

    with pytest.raises(ObjectChangedError):
        asyncio.run(main())
    assert (attempts.hedges, attempts.hedges_won, attempts.unanswered) == (1, 0, 1)


def test_the_outer_deadline_cancels_both_copies() -> None:
    cancelled: list[int] = []
    started: list[int] = []

    async def never(answered: asyncio.Event) -> bytes:
        started.append(1)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise
        return b""

    async def main() -> None:
        task = asyncio.ensure_future(race(never, ready(), 30.0))
        while len(started) < 2:  # the read and its hedge
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(cancelled) == 2
