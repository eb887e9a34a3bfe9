"""The guard: breaker state machine on a fake clock (no sleeping), bulkhead, time budget."""

from __future__ import annotations

import threading

import pytest

from tiercache.context import DEMAND
from tiercache.errors import IntegrityError, TierError, TierRejectedError, TierTimeoutError
from tiercache.guard import CircuitBreaker, Guard
from tiercache.stats import TierCounters


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 5.0, clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state.value == "closed"
    breaker.record_success()  # resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state.value == "open"
    assert not breaker.allow()


def test_breaker_half_open_admits_one_probe_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state.value == "half_open"
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state.value == "closed"
    assert breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 5.0, clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state.value == "open"
    clock.now += 4.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_released_probe_goes_back_to_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.state.value == "open"
    assert breaker.allow()  # cooldown already served: the next call may probe


def state(breaker: CircuitBreaker) -> str:
    """The state's value, through a call: mypy would narrow a property across assertions."""
    return breaker.state.value


def test_disabled_tier_is_probed_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 2.0, clock)
    assert breaker.disable()
    assert state(breaker) == "disabled"
    assert not breaker.allow()
    clock.now += 2.0
    assert breaker.allow()  # one probe: the tier tries to start again
    assert state(breaker) == "half_open"
    breaker.release_probe()  # the probe never ran: still disabled, probe again at once
    assert state(breaker) == "disabled"
    assert breaker.allow()
    assert not breaker.disable()  # still unusable (not news: no log line); a full cooldown
    assert not breaker.allow()
    clock.now += 2.0
    assert breaker.allow()
    assert breaker.record_success()  # it started: closed
    assert state(breaker) == "closed"


def test_breaker_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(0, 1.0)


def make_guard(timeout_s: float = 0.05, bulkhead: int = 2) -> Guard:
    return Guard(
        "t",
        timeout_s=timeout_s,
        breaker=CircuitBreaker(2, 60.0),
        counters=TierCounters(),
        bulkhead=bulkhead,
    )


def test_guard_passes_results_and_wraps_errors() -> None:
    guard = make_guard()
    try:
        assert guard.call(lambda x: x * 2, 21, ctx=DEMAND) == 42

        def boom() -> None:
            raise OSError("disk on fire")

        with pytest.raises(TierError, match="disk on fire") as info:
            guard.call(boom, ctx=DEMAND)
        assert isinstance(info.value.__cause__, OSError)
        assert guard.counters.snapshot()["errors"] == 1
        assert guard.breaker.state.value == "closed"
        with pytest.raises(TierError):
            guard.call(boom, ctx=DEMAND)
        assert guard.breaker.state.value == "open"
        with pytest.raises(TierRejectedError, match="open"):
            guard.call(lambda: None, ctx=DEMAND)
        assert guard.counters.snapshot()["rejected"] == 1
    finally:
        guard.close()


def test_guard_integrity_error_is_a_miss_not_a_failure() -> None:
    guard = make_guard()
    try:

        def corrupt() -> None:
            raise IntegrityError("bad checksum")

        for _ in range(5):
            with pytest.raises(IntegrityError):
                guard.call(corrupt, ctx=DEMAND)
        assert guard.breaker.state.value == "closed"
    finally:
        guard.close()


def test_guard_times_out_and_bulkhead_rejects_without_queueing() -> None:
    release = threading.Event()
    guard = make_guard(timeout_s=0.05, bulkhead=2)
    try:
        for _ in range(2):
            with pytest.raises(TierTimeoutError):
                guard.call(release.wait, ctx=DEMAND)
        assert guard.counters.snapshot()["timeouts"] == 2
        # Both workers are still stuck: the breaker is open and would reject anyway; force
        # it closed to see the bulkhead itself reject.
        guard.breaker.record_success()
        with pytest.raises(TierRejectedError, match="bulkhead"):
            guard.call(lambda: None, ctx=DEMAND)
    finally:
        release.set()
        guard.close()


def test_a_hung_tier_call_does_not_keep_the_process_from_exiting() -> None:
    import subprocess
    import sys

    program = (
        "import threading\n"
        "from tiercache.errors import TierTimeoutError\n"
        "from tiercache.guard import CircuitBreaker, Guard\n"
        "from tiercache.stats import TierCounters\n"
        "from tiercache.context import DEMAND\n"
        "g = Guard('hung', timeout_s=0.05, breaker=CircuitBreaker(1, 60.0),"
        " counters=TierCounters())\n"
        "try:\n"
        "    g.call(threading.Event().wait, ctx=DEMAND)\n"
        "except TierTimeoutError:\n"
        "    print('timed out')\n"
    )
    # A worker is stuck forever in the call; the interpreter must still exit (no join on it).
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "timed out"


def test_opening_and_recovering_log_once_each(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(
        "flaky",
        timeout_s=1.0,
        breaker=CircuitBreaker(2, 0.0),  # no cooldown: every call after opening is a probe
        counters=TierCounters(),
    )

    def boom() -> None:
        raise OSError("down")

    try:
        with caplog.at_level("INFO", logger="tiercache.guard"):
            for _ in range(6):
                with pytest.raises(TierError):
                    guard.call(boom, ctx=DEMAND)
            guard.call(lambda: None, ctx=DEMAND)
            guard.call(lambda: None, ctx=DEMAND)
        records = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert len(records) == 2, records
        assert records[0][0] == "WARNING"  # one WARNING per episode...
        assert "bypassed" in records[0][1]
        assert "down" in records[0][1]
        assert records[1] == ("INFO", "tier 'flaky' recovered: serving again")  # ...and good news
    finally:
        guard.close()
