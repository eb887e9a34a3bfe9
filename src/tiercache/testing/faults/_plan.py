"""The fault decisions of :class:`~tiercache.testing.HttpFaultProxy`: what to do to each request.

A :class:`FaultPlan` holds, under one lock, the request and fault counters and three kinds of
fault, each in two modes:

- *count mode*: the next *n* matching requests get the fault;
- *probability mode*: each matching request gets it with probability *p*, drawn from a
  :class:`random.Random` of its own, seeded for reproducibility.

The kinds are ``"reset"`` (close the client connection with an RST instead of answering),
``"fail"`` (answer with an injected error), ``"truncate"`` (cut the forwarded body short) and
``"delay"`` (extra seconds before the first byte; probability mode only, drawn for each answer
that is sent, after the other decisions).
Before a request is forwarded the plan decides, in this order, between: a pending reset, a pending
failure, a random reset, a random failure. Count mode thus always takes precedence while it has
faults pending. After forwarding, it decides whether to cut the body: a pending truncation, else a
random one. A probabilistic fault draws one number for each request it is asked about, that is
each matching request no earlier decision took, so the *n*-th such request gets the fault when the
*n*-th ``random()`` of ``random.Random(seed)`` is below *p*.
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

FaultKind = Literal["fail", "truncate", "reset", "delay"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("fail", "truncate", "reset", "delay")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Failure:
    """An injected error answer: its status, and the ``Retry-After`` header value, if any."""

    status: int
    retry_after: str | None = None

    @classmethod
    def of(cls, status: int, retry_after_s: float | None) -> Failure:
        """Return the failure for ``status``, with ``retry_after_s`` rounded up to whole seconds."""
        if retry_after_s is None:
            return cls(status)
        return cls(status, str(math.ceil(retry_after_s)))


@dataclass(frozen=True, slots=True)
class Reset:
    """The decision to close the client connection with an RST instead of answering."""


RESET: Final = Reset()


@dataclass(slots=True)
class _Counted(Generic[_T]):
    """Count mode: the next ``remaining`` matching requests get ``action``."""

    remaining: int
    methods: frozenset[str]
    action: _T


@dataclass(slots=True)
class _Random(Generic[_T]):
    """Probability mode: each matching request gets ``action`` with ``probability``."""

    probability: float
    methods: frozenset[str]
    action: _T
    generator: random.Random


def _counted(count: int, methods: frozenset[str], action: _T) -> _Counted[_T] | None:
    return _Counted(count, methods, action) if count > 0 else None


def _random(
    probability: float, methods: frozenset[str], action: _T, seed: int | None
) -> _Random[_T] | None:
    if probability <= 0:
        return None
    return _Random(probability, methods, action, random.Random(seed))


def _always(_: object) -> bool:
    return True


class FaultPlan:
    """The proxy's pending faults and counters, guarded by one lock; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._fail_next: _Counted[Failure] | None = None
        self._fail_random: _Random[Failure] | None = None
        self._truncate_next: _Counted[int] | None = None
        self._truncate_random: _Random[int] | None = None
        self._reset_next: _Counted[Reset] | None = None
        self._reset_random: _Random[Reset] | None = None
        self._delay_random: _Random[float] | None = None
        self._abandoned = 0

    # -- configuration (arguments are validated by the caller) ----------------------------------

    def fail_next(self, count: int, failure: Failure, methods: frozenset[str]) -> None:
        with self._lock:
            self._fail_next = _counted(count, methods, failure)

    def fail_randomly(
        self, probability: float, failure: Failure, methods: frozenset[str], seed: int | None
    ) -> None:
        with self._lock:
            self._fail_random = _random(probability, methods, failure, seed)

    def truncate_next(self, count: int, keep_bytes: int, methods: frozenset[str]) -> None:
        with self._lock:
            self._truncate_next = _counted(count, methods, keep_bytes)

    def truncate_randomly(
        self, probability: float, keep_bytes: int, methods: frozenset[str], seed: int | None
    ) -> None:
        with self._lock:
            self._truncate_random = _random(probability, methods, keep_bytes, seed)

    def reset_next(self, count: int, methods: frozenset[str]) -> None:
        with self._lock:
            self._reset_next = _counted(count, methods, RESET)

    def reset_randomly(self, probability: float, methods: frozenset[str], seed: int | None) -> None:
        with self._lock:
            self._reset_random = _random(probability, methods, RESET, seed)

    def delay_randomly(
        self, probability: float, delay_s: float, methods: frozenset[str], seed: int | None
    ) -> None:
        with self._lock:
            self._delay_random = _random(probability, methods, delay_s, seed)

    def clear(self) -> None:
        """Cancel every pending and probabilistic fault; the counters are kept."""
        with self._lock:
            self._fail_next = self._fail_random = None
            self._truncate_next = self._truncate_random = None
            self._reset_next = self._reset_random = None
            self._delay_random = None

    # -- decisions -------------------------------------------------------------------------------

    def received(self, method: str) -> None:
        """Count one request."""
        with self._lock:
            self._requests[method] += 1

    def before_forward(self, method: str) -> Failure | Reset | None:
        """Decide whether to reset or fail this request instead of forwarding it; count it."""
        with self._lock:
            decision: Failure | Reset | None = _take_counted(self._reset_next, method, _always)
            if decision is None:
                decision = _take_counted(self._fail_next, method, _always)
            if decision is None:
                decision = _take_random(self._reset_random, method, _always)
            if decision is None:
                decision = _take_random(self._fail_random, method, _always)
            if decision is not None:
                self._injected["reset" if isinstance(decision, Reset) else "fail"] += 1
            return decision

    def take_truncation(self, method: str, body_bytes: int) -> int | None:
        """Decide whether to cut this body; return the bytes to keep, or ``None``; count it.

        Only a truncation that keeps fewer bytes than the body has applies.
        """

        def cuts(keep_bytes: int) -> bool:
            return body_bytes > keep_bytes

        with self._lock:
            keep = _take_counted(self._truncate_next, method, cuts)
            if keep is None:
                keep = _take_random(self._truncate_random, method, cuts)
            if keep is not None:
                self._injected["truncate"] += 1
            return keep

    def take_delay(self, method: str) -> float:
        """Decide the extra seconds before this answer's first byte (0: none); count it."""
        with self._lock:
            delay_s = _take_random(self._delay_random, method, _always)
            if delay_s is None:
                return 0.0
            self._injected["delay"] += 1
            return delay_s

    def abandon(self) -> None:
        """Count one answer the client gave up on (closed its connection) before its first byte."""
        with self._lock:
            self._abandoned += 1

    # -- counters --------------------------------------------------------------------------------

    def requests(self, method: str | None) -> int:
        with self._lock:
            if method is None:
                return self._requests.total()
            return self._requests[method.upper()]

    def injected(self, kind: FaultKind | None) -> int:
        with self._lock:
            if kind is None:
                return self._injected.total()
            return self._injected[kind]

    def abandoned(self) -> int:
        with self._lock:
            return self._abandoned

    def reset_counters(self) -> None:
        with self._lock:
            self._requests.clear()
            self._injected.clear()
            self._abandoned = 0


def _take_counted(
    rule: _Counted[_T] | None, method: str, applies: Callable[[_T], bool]
) -> _T | None:
    if rule is None or rule.remaining == 0 or method not in rule.methods:
        return None
    if not applies(rule.action):
        return None
    rule.remaining -= 1
    return rule.action


def _take_random(rule: _Random[_T] | None, method: str, applies: Callable[[_T], bool]) -> _T | None:
    if rule is None or method not in rule.methods or not applies(rule.action):
        return None
    return rule.action if rule.generator.random() < rule.probability else None
