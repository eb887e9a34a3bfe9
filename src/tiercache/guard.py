"""Time budget + circuit breaker + bulkhead: one reusable wrapper around a tier.

:class:`CircuitBreaker` is a pure state machine over an injected clock (unit-tested without
sleeping)::

    closed ──N consecutive failures──▶ open ──cooldown elapsed──▶ half_open (one probe)
      ▲                                 ▲                              │
      └──────────── probe succeeds ─────┼──────────────────────────────┘
                                        └──────── probe fails ─────────┘

:class:`Guard` runs each call on a small thread pool of its own (the bulkhead): a call that
finds every worker busy is rejected at once instead of queueing, and a call that exceeds the
time budget is abandoned (its worker finishes in the background and frees its slot). A hung
tier therefore costs one time budget per call until the breaker opens, then nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from enum import StrEnum
from typing import TypeVar

from .context import ReadContext
from .deadline import DaemonPool
from .errors import (
    IntegrityError,
    TierError,
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from .stats import Histogram, TierCounters

logger = logging.getLogger(__name__)

#: A flapping tier logs its breaker opening at WARNING at most this often.
WARNING_INTERVAL_S = 60.0

T = TypeVar("T")
Clock = Callable[[], float]


class BreakerState(StrEnum):
    """The states reported in ``stats()["tiers"][name]["state"]``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; lets one probe through after ``cooldown_s``.

    Args:
        failures: Consecutive failures or timeouts that open the breaker (>= 1).
        cooldown_s: Seconds an open breaker waits before letting one probe through.
        clock: Monotonic clock in seconds; injected by tests.
    """

    def __init__(self, failures: int, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        self._failures = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._before_probe = BreakerState.OPEN
        self._transitions: dict[str, int] = {}

    def _move(self, state: BreakerState) -> None:
        """Change state (the lock held), counting the transition."""
        if state is not self._state:
            name = f"{self._state.value}->{state.value}"
            self._transitions[name] = self._transitions.get(name, 0) + 1
            self._state = state

    def transitions(self) -> dict[str, int]:
        """Return how often each state change happened, e.g. ``{"closed->open": 2}``."""
        with self._lock:
            return dict(self._transitions)

    @property
    def cooldown_s(self) -> float:
        """Seconds an open breaker waits before a probe."""
        return self._cooldown_s

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its cooldown still reads ``open``)."""
        return self._state

    def allow(self) -> bool:
        """Return whether a call may proceed now; in ``open`` past cooldown, admit one probe."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state in (BreakerState.OPEN, BreakerState.DISABLED) and (
                self._clock() - self._opened_at >= self._cooldown_s
            ):
                self._before_probe = self._state
                self._move(BreakerState.HALF_OPEN)
                return True
            return False

    def record_success(self) -> bool:
        """Close the breaker and reset the failure count; return whether it was not closed."""
        with self._lock:
            recovered = self._state is not BreakerState.CLOSED
            self._move(BreakerState.CLOSED)
            self._consecutive = 0
            return recovered

    def record_failure(self) -> bool:
        """Count a failure; open the breaker at the threshold or when a probe fails.

        Returns:
            Whether this failure opened a closed breaker (the moment worth one log line).
        """
        with self._lock:
            self._consecutive += 1
            if (
                self._state in (BreakerState.HALF_OPEN, BreakerState.DISABLED)
                or self._consecutive >= self._failures
            ):
                opened = self._state is BreakerState.CLOSED
                self._move(BreakerState.OPEN)
                self._opened_at = self._clock()
                return opened
            return False

    def release_probe(self) -> None:
        """Return an admitted probe that never ran (bulkhead full): back to ``open``, no wait."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._move(self._before_probe)  # the cooldown stays served: probe again next

    def disable(self) -> bool:
        """Mark the tier ``disabled`` (it cannot start); a probe is let through after cooldown.

        Returns:
            Whether the tier was not disabled before (the moment worth one log line).
        """
        with self._lock:
            newly = self._state not in (BreakerState.DISABLED, BreakerState.HALF_OPEN)
            self._move(BreakerState.DISABLED)
            self._opened_at = self._clock()
            return newly


class Guard:
    """Run tier calls under a time budget, a circuit breaker and a bulkhead.

    Args:
        name: The tier's name, for thread names and messages.
        timeout_s: Time budget of one call, in seconds.
        breaker: The tier's circuit breaker.
        counters: Where timeouts, errors and rejections are counted.
        bulkhead: Concurrent calls allowed; one more is rejected at once (no queue).
        on_thread_exit: Called on each worker thread as it ends (a tier's ``release_thread``:
            diskcache keeps one SQLite connection per thread).
    """

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float,
        breaker: CircuitBreaker,
        counters: TierCounters,
        bulkhead: int = 8,
        on_thread_exit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.counters = counters
        #: Latency of read calls as the reader saw it (thread hop and timeouts included).
        self.latency = Histogram()
        self._slots = threading.BoundedSemaphore(bulkhead)
        self._pool = DaemonPool(bulkhead, f"tiercache-tier-{name}", on_thread_exit)
        self._last_warning = -WARNING_INTERVAL_S
        self._warned = False

    def call(self, fn: Callable[..., T], *args: object, read: bool = True, ctx: ReadContext) -> T:
        """Call ``fn(*args)`` on the bulkhead within the time budget.

        Args:
            fn: The tier method.
            *args: Its arguments.
            read: Whether this is a read. Only reads prove the tier healthy: a tier whose reads
                hang while its writes succeed must still open its breaker. Failures of any
                call count against it.
            ctx: What the call is counted as (purpose and block class).

        Raises:
            TierRejectedError: The breaker is open or every bulkhead slot is busy.
            TierTimeoutError: The call exceeded the time budget, or the tier reported a
                timeout of its own (counted as a timeout either way).
            IntegrityError: The tier found a corrupt value (a miss; the breaker is not charged).
            TierError: The call raised; the original exception is the cause.
        """
        if not self.breaker.allow():
            self.counters.add("rejected", ctx=ctx)
            raise TierRejectedError(f"tier {self.name!r}: circuit breaker is open")
        if not self._slots.acquire(blocking=False):
            self.breaker.release_probe()
            self.counters.add("rejected", ctx=ctx)
            raise TierRejectedError(f"tier {self.name!r}: bulkhead full")
        began = time.perf_counter()
        try:
            future: Future[T] = self._pool.submit(fn, *args)
        except RuntimeError as exc:  # the pool was closed by close()
            self._slots.release()
            self.breaker.release_probe()
            raise TierRejectedError(f"tier {self.name!r} is closed") from exc
        future.add_done_callback(lambda _: self._slots.release())
        try:
            result = future.result(timeout=self.timeout_s)
            if read:
                self.latency.observe(time.perf_counter() - began, ctx=ctx)
        except FutureTimeoutError as exc:
            if read:
                self.latency.observe(time.perf_counter() - began, ctx=ctx)
            self.counters.add("timeouts", ctx=ctx)
            error: TierError = TierTimeoutError(
                f"tier {self.name!r}: no answer within {self.timeout_s * 1000:.0f} ms"
            )
            self._failed(error)
            raise error from exc
        except IntegrityError:
            self._succeeded(read)  # the tier answered; its value was bad
            raise
        except TierUnavailableError as exc:
            # The breaker probes it after each cooldown; one WARNING per episode.
            if self.breaker.disable():
                self.warn(f"tier {self.name!r} unavailable: {exc}")
            raise
        except TierTimeoutError as exc:  # the tier's own timeout (a Redis socket timeout)
            self.counters.add("timeouts", ctx=ctx)
            error = TierTimeoutError(f"tier {self.name!r}: {exc}")
            self._failed(error)
            raise error from exc
        except Exception as exc:
            self.counters.add("errors", ctx=ctx)
            # A tier that translates its backend's errors says what failed; others are named.
            what = str(exc) if isinstance(exc, TierError) else f"{type(exc).__name__}: {exc}"
            error = TierError(f"tier {self.name!r}: {what}")
            self._failed(error)
            raise error from exc
        self._succeeded(read)
        return result

    def warn(self, message: str) -> None:
        """Log a degradation of this tier: WARNING at most once per ``WARNING_INTERVAL_S``
        (one per episode, whichever part of tiercache noticed it first), DEBUG otherwise."""
        now = time.monotonic()
        self._warned = now - self._last_warning >= WARNING_INTERVAL_S
        if self._warned:
            self._last_warning = now
        logger.log(logging.WARNING if self._warned else logging.DEBUG, "%s", message)

    def _failed(self, error: TierError) -> None:
        # One WARNING when the breaker opens, not one per failed call; the recovery is INFO. A
        # flapping tier logs at WARNING at most once per WARNING_INTERVAL_S, at DEBUG in between:
        # one WARNING per episode, no log floods.
        if self.breaker.record_failure():
            self.warn(
                f"tier {self.name!r} bypassed for {self.breaker.cooldown_s:.1f} s "
                f"after repeated failures: {error}"
            )

    def _succeeded(self, read: bool) -> None:
        if not read:
            self.breaker.release_probe()  # a write that got through proves nothing of reads
            return
        if self.breaker.record_success():
            level = logging.INFO if self._warned else logging.DEBUG
            self._warned = False
            logger.log(level, "tier %r recovered: serving again", self.name)

    def close(self) -> None:
        """Stop accepting calls; wait up to one time budget for the running ones to finish.

        A call hung past that keeps running in the background (its worker is a daemon thread),
        so closing never waits for a hung tier longer than its budget.
        """
        self._pool.close(wait_s=self.timeout_s)
