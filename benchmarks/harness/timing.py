"""Samples over rounds, interleaved and shuffled timing, and the summaries the reports print.

Shared by ``run.py``'s scenarios and the single-purpose programs (which import it as
``harness.timing``: run as ``python benchmarks/NAME.py``, the folder is first on ``sys.path``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict


@dataclass
class Sample:
    """Per-operation latency of one case, over repeated rounds (seconds)."""

    name: str
    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.rounds) < 4:
            return 0.0
        q = statistics.quantiles(self.rounds, n=4)
        return (q[2] - q[0]) / 2 / self.median


def spread(values: list[float]) -> float:
    """Half the interquartile range, relative to the median (0 under 4 values)."""
    return Sample("", values).spread


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank, from below); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Summary(TypedDict):
    """A figure in ``results.json``: median, spread and the raw values."""

    median: float
    spread: float
    rounds: list[float]


def summary(values: list[float]) -> Summary:
    """Median, spread (half the IQR over the median) and the raw values."""
    sample = Sample("", values)
    return {"median": sample.median, "spread": sample.spread, "rounds": values}


def measure(
    cases: dict[str, Callable[[int], object]], offsets: list[int], rounds: int
) -> dict[str, Sample]:
    """Time every case over ``offsets``, interleaving the cases round by round.

    The order of the cases is shuffled every round (seeded), so that no case always runs right
    after another that warmed the CPU caches with the same bytes.
    """
    samples = {name: Sample(name, []) for name in cases}
    for fn in cases.values():  # warm up
        for offset in offsets[:20]:
            fn(offset)
    order = list(cases.items())
    shuffle = random.Random(20261124).shuffle
    for _ in range(rounds):
        shuffle(order)
        for name, fn in order:
            start = time.perf_counter()
            for offset in offsets:
                fn(offset)
            samples[name].rounds.append((time.perf_counter() - start) / len(offsets))
    return samples


def shuffled_rounds(
    rounds: int, steps: list[tuple[str, Callable[[], None]]], seed: int = 20261124
) -> None:
    """Run every step once per round, in an order shuffled every round (seeded)."""
    order = list(steps)
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        for _, step in order:
            step()
