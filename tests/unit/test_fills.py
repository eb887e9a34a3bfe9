"""The fill queue: bounded in jobs and in bytes, never waited for, bytes always released."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tiercache.context import DEMAND
from tiercache.fills import FillQueue

KIB = 1024


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Cleared: every job blocks on it (the workers are busy). Set on the way out."""
    event = threading.Event()
    yield event
    event.set()


def blocked(
    gate: threading.Event, started: threading.Semaphore | None = None
) -> Callable[[], None]:
    def job() -> None:
        if started is not None:
            started.release()
        assert gate.wait(10)

    return job


def noop() -> None:
    pass


def fail() -> None:
    raise OSError("tier broken")


def test_a_fill_over_the_byte_budget_is_dropped_at_once_while_the_workers_are_blocked(
    gate: threading.Event,
) -> None:
    fills = FillQueue(maxsize=100, max_bytes=100 * KIB, workers=2)
    started = threading.Semaphore(0)
    for _ in range(2):  # both workers take one and block in it
        assert fills.submit(blocked(gate, started), 30 * KIB, ctx=DEMAND)
    for _ in range(2):
        assert started.acquire(timeout=5)
    assert fills.submit(
        blocked(gate), 30 * KIB, ctx=DEMAND
    )  # waits in the queue: 90 KiB held in all
    assert fills.pending_bytes == 90 * KIB

    t0 = time.perf_counter()
    assert (
        fills.submit(blocked(gate), 20 * KIB, ctx=DEMAND) is False
    )  # 110 KiB would pass the budget
    assert time.perf_counter() - t0 < 0.1  # refused, not waited for
    assert fills.submit(noop, 10 * KIB, ctx=DEMAND)  # exactly the budget still fits

    counts = fills.counters.snapshot()
    assert counts["queued"] == 4
    assert counts["dropped"] == 1
    assert counts["dropped_bytes"] == 20 * KIB
    assert fills.pending_bytes == 100 * KIB
    gate.set()
    assert fills.join(5)
    assert fills.pending_bytes == 0
    fills.close()


def test_a_full_job_count_drops_even_with_bytes_to_spare(gate: threading.Event) -> None:
    fills = FillQueue(maxsize=1, max_bytes=1 << 30, workers=1)
    started = threading.Semaphore(0)
    assert fills.submit(blocked(gate, started), 1, ctx=DEMAND)
    assert started.acquire(timeout=5)
    assert fills.submit(blocked(gate), 2, ctx=DEMAND)  # the one job that may wait
    assert fills.submit(noop, 4, ctx=DEMAND) is False
    assert fills.counters.snapshot()["dropped_bytes"] == 4
    assert fills.pending_bytes == 3  # the dropped job's bytes were never held
    gate.set()
    assert fills.join(5)
    fills.close()


def test_bytes_are_released_after_success_and_after_failure() -> None:
    fills = FillQueue(maxsize=10, max_bytes=64 * KIB)
    assert fills.submit(noop, 64 * KIB, ctx=DEMAND)
    assert fills.join(5)
    assert fills.pending_bytes == 0
    assert fills.submit(
        fail, 64 * KIB, ctx=DEMAND
    )  # the whole budget again: the first job gave it back
    assert fills.join(5)
    assert fills.pending_bytes == 0
    counts = fills.counters.snapshot()
    assert (counts["queued"], counts["done"], counts["failed"], counts["dropped"]) == (2, 1, 1, 0)
    fills.close()


def test_a_fill_larger_than_the_whole_budget_is_dropped() -> None:
    fills = FillQueue(maxsize=10, max_bytes=64 * KIB)
    ran = threading.Event()
    assert fills.submit(ran.set, 64 * KIB + 1, ctx=DEMAND) is False
    assert fills.join(5)
    assert not ran.is_set()
    assert fills.counters.snapshot()["dropped_bytes"] == 64 * KIB + 1
    assert fills.pending_bytes == 0
    fills.close()


def test_a_zero_budget_drops_every_fill_but_those_of_zero_bytes() -> None:
    fills = FillQueue(maxsize=10, max_bytes=0)
    assert fills.submit(noop, 1, ctx=DEMAND) is False
    assert fills.submit(noop, 0, ctx=DEMAND)  # holds nothing: nothing to bound
    assert fills.join(5)
    fills.close()


def test_closing_with_jobs_waiting_discards_them_and_releases_their_bytes(
    gate: threading.Event,
) -> None:
    fills = FillQueue(maxsize=10, max_bytes=100 * KIB, workers=1)
    started = threading.Semaphore(0)
    ran = threading.Event()
    assert fills.submit(blocked(gate, started), 10 * KIB, ctx=DEMAND)
    assert started.acquire(timeout=5)
    assert fills.submit(ran.set, 20 * KIB, ctx=DEMAND)
    assert fills.submit(ran.set, 30 * KIB, ctx=DEMAND)
    fills.close(timeout_s=0.05)  # the worker is still blocked: the waiting jobs are discarded
    assert fills.pending_bytes == 10 * KIB  # the running job's, until it ends
    counts = fills.counters.snapshot()
    assert counts["dropped"] == 2
    assert counts["dropped_bytes"] == 50 * KIB
    assert fills.submit(noop, 1, ctx=DEMAND) is False  # closed
    gate.set()
    assert fills.join(5)  # the worker finished its job, then took its stop signal
    assert fills.pending_bytes == 0
    assert not ran.is_set()


def test_negative_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        FillQueue(maxsize=1, max_bytes=-1)
    fills = FillQueue(maxsize=1, max_bytes=1)
    with pytest.raises(ValueError, match="nbytes"):
        fills.submit(noop, -1, ctx=DEMAND)
    fills.close()
