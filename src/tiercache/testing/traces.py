"""Synthetic block traces to compare RAM policies: Zipf, and a hot set interleaved with a scan.

Used by the RAM policy's tests and by the ``scan`` benchmark scenario. A trace is a list of
``(key id, phase)``; :func:`replay` reads it through a tier (a miss stores the block, as the chain
does) and counts hits per phase. Keys are :class:`~tiercache.protocol.BlockKey` built by
:func:`block_key`, 64 blocks per object.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from tiercache.protocol import BlockKey

#: Phases of :func:`scan_trace`: the hot set warms, the scan runs through it, the hot set after.
WARM, SCAN, AFTER = "warm", "scan", "after"
#: Phase of every reference of :func:`zipf_trace`.
ALL = "all"
#: Key ids of the scan start here (hot keys are below).
SCAN_BASE = 1 << 40


class BlockCache(Protocol):
    def get(self, key: BlockKey, /) -> bytes | None: ...

    def put(self, key: BlockKey, data: bytes, /) -> None: ...


def block_key(key_id: int, block_size: int = 4096) -> BlockKey:
    """The block key of a trace's key id (64 blocks per object)."""
    return BlockKey("trace", f"obj/{key_id // 64}", "v1", block_size, key_id % 64)


def zipf_trace(keys: int, length: int, alpha: float, *, seed: int = 0) -> list[tuple[int, str]]:
    """``length`` references to ``keys`` keys, key ``i`` with weight ``1 / (i + 1) ** alpha``.

    The ranks are shuffled onto key ids, so that popular keys are spread over objects.
    """
    rng = random.Random(seed)
    ids = list(range(keys))
    rng.shuffle(ids)
    weights = [1.0 / (rank + 1) ** alpha for rank in range(keys)]
    return [(key, ALL) for key in rng.choices(ids, weights=weights, k=length)]


def scan_trace(
    budget_blocks: int,
    *,
    hot_share: float = 0.5,
    scan_factor: float = 4.0,
    scan_per_hot: int = 2,
    passes: int = 3,
) -> list[tuple[int, str]]:
    """A hot set read round-robin, then interleaved with one pass of a scan, then alone again.

    The hot set is ``hot_share`` of the budget (in blocks), the scan ``scan_factor`` times the
    budget, every block read once; ``scan_per_hot`` scan blocks come between two hot reads, so
    that an LRU of the budget loses every hot block (the reuse distance of a hot block, hot set
    plus the scan blocks read meanwhile, exceeds the budget). ``passes`` passes over the hot set
    warm it, and as many follow the scan.
    """
    hot = max(1, int(budget_blocks * hot_share))
    scan = int(budget_blocks * scan_factor)
    trace = [(i % hot, WARM) for i in range(passes * hot)]
    turn = 0
    for index in range(scan):
        trace.append((SCAN_BASE + index, SCAN))
        if index % scan_per_hot == scan_per_hot - 1:
            trace.append((turn % hot, SCAN))
            turn += 1
    trace += [(i % hot, AFTER) for i in range(passes * hot)]
    return trace


def replay(
    tier: BlockCache,
    trace: Iterable[tuple[int, str]],
    *,
    size_of: Callable[[int], int] | None = None,
    block_size: int = 4096,
    counted: Callable[[int], bool] | None = None,
) -> dict[str, tuple[int, int]]:
    """Read the trace through ``tier``; return ``{phase: (hits, references)}``.

    A miss stores the block (``size_of(key id)`` bytes, else ``block_size``). ``counted``
    selects the references that are counted (all by default; e.g. the hot keys only).
    """
    blobs: dict[int, bytes] = {}
    counts: dict[str, list[int]] = {}
    for key_id, phase in trace:
        key = block_key(key_id, block_size)
        hit = tier.get(key) is not None
        if not hit:
            size = block_size if size_of is None else size_of(key_id)
            blob = blobs.get(size)
            if blob is None:
                blob = blobs[size] = bytes(size)
            tier.put(key, blob)
        if counted is None or counted(key_id):
            entry = counts.setdefault(phase, [0, 0])
            entry[0] += hit
            entry[1] += 1
    return {phase: (hits, refs) for phase, (hits, refs) in counts.items()}


def hit_ratio(counts: dict[str, tuple[int, int]], phases: Sequence[str] | None = None) -> float:
    """The hit ratio over ``phases`` (all by default) of a :func:`replay` result."""
    chosen = [counts[p] for p in (phases or list(counts)) if p in counts]
    refs = sum(r for _, r in chosen)
    return sum(h for h, _ in chosen) / refs if refs else 0.0


def is_hot(key_id: int) -> bool:
    """Whether a key id of :func:`scan_trace` belongs to the hot set."""
    return key_id < SCAN_BASE
