"""The late rule and the origin's pace it is measured against."""

from __future__ import annotations

import pytest

from tiercache.lateness import MIN_THROUGHPUT_SAMPLE_BYTES, Pace, late_after_s

MIB = 1 << 20


@pytest.mark.parametrize(
    ("timeout_s", "expected_s", "late_s"),
    [
        (30.0, None, 7.5),  # nothing observed yet: a quarter of the deadline
        (5.0, None, 1.25),
        (30.0, 0.03, 1.0),  # a healthy origin: the floor, so a loaded one pays no extra GET
        (30.0, 0.5, 1.5),  # three times what is expected
        (30.0, 26.0, 7.5),  # a very slow origin: at most a quarter of the deadline
        (2.0, 0.01, 0.5),  # a short deadline caps even the floor
    ],
)
def test_late_after(timeout_s: float, expected_s: float | None, late_s: float) -> None:
    assert late_after_s(timeout_s, expected_s) == pytest.approx(late_s)


def test_nothing_observed_means_nothing_expected() -> None:
    assert Pace().expected_s(MIB) is None
    assert Pace().expected_s(100) is None


def test_latency_and_throughput_from_a_client_that_tells_the_first_byte() -> None:
    pace = Pace()
    pace.observe(MIB, total_s=1.02, first_byte_s=0.02)  # 1 MiB/s after 20 ms
    assert pace.expected_s(MIB) == pytest.approx(1.02)
    assert pace.expected_s(2 * MIB) == pytest.approx(2.02)
    assert pace.expected_s(100) == pytest.approx(0.02 + 100 / MIB)


def test_short_reads_give_latency_only() -> None:
    pace = Pace()
    pace.observe(100, total_s=0.05)  # no first-byte time: a short read's time is latency
    assert pace.expected_s(100) == pytest.approx(0.05)
    assert pace.expected_s(MIB) is None  # nothing known about throughput yet
    pace.observe(MIB, total_s=2.05)  # a long read: its time beyond the latency is transfer
    assert pace.expected_s(MIB) == pytest.approx(2.05)


def test_the_averages_move_towards_new_observations() -> None:
    pace = Pace()
    pace.observe(MIB, total_s=0.01, first_byte_s=0.0)
    fast = pace.expected_s(MIB)
    for _ in range(20):
        pace.observe(MIB, total_s=25.0, first_byte_s=0.0)  # the origin slowed down to 40 KiB/s
    slow = pace.expected_s(MIB)
    assert fast is not None
    assert slow is not None
    assert fast < 0.02
    assert 20.0 < slow <= 25.0


def test_a_sample_just_long_enough_counts_for_throughput() -> None:
    pace = Pace()
    pace.observe(MIN_THROUGHPUT_SAMPLE_BYTES, total_s=1.0, first_byte_s=0.0)
    assert pace.expected_s(2 * MIN_THROUGHPUT_SAMPLE_BYTES) == pytest.approx(2.0)
