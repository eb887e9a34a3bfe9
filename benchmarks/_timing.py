"""Shared by the benchmark programs: samples over rounds, and interleaved, shuffled timing.

Imported as ``_timing`` by the programs in this folder (run as ``python benchmarks/NAME.py``, the
folder is first on ``sys.path``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


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
