"""Probing one started tier: write, read back, delete, gone; each step timed and bounded.

Every step of a tier outside the process runs on a worker thread under the tier's time budget;
a step that has not ended ``HANG_GRACE_S`` after the budget is abandoned (the doctor never hangs
on a frozen server or disk), and so is its worker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from tiercache.cli.doctor.report import TierCheck, describe, mask, show_ms
from tiercache.config import Settings, redact_url
from tiercache.deadline import DaemonPool
from tiercache.protocol import (
    BlockKey,
    BudgetedTier,
    InProcessTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
    WarningTier,
)

T = TypeVar("T")

#: Time allowed past a step's budget before the step is abandoned as hung.
HANG_GRACE_S: Final = 0.5
#: Budget of a tier whose name has no setting (as :class:`~tiercache.chain.TierChain`).
DEFAULT_TIMEOUT_S: Final = 0.1
#: The target of every probe key: no object store's identity digest looks like it.
PROBE_TARGET: Final = "tiercache-doctor"
PROBE_BYTES: Final = 64
STEPS: Final = ("write", "read", "delete", "gone")


def _tier_budget_s(tier: Tier) -> float:
    """The budget of a built tier: its own (as the chain's guard takes it), else the default."""
    return tier.timeout_s if isinstance(tier, BudgetedTier) else DEFAULT_TIMEOUT_S


def check_tier(
    tier: Tier,
    settings: Settings,
    secrets: Sequence[tuple[str, str]],
    *,
    start_ms: float | None,
    worker: DaemonPool | None = None,
) -> TierCheck:
    """Probe one started tier, then close it (closing is bounded too)."""
    name = tier.name
    in_process = isinstance(tier, InProcessTier) and tier.in_process
    budget = None if in_process else _tier_budget_s(tier)
    check = TierCheck(
        name, where=location(settings, name), budget_ms=None if budget is None else budget * 1000
    )
    if start_ms is not None:
        check.latency_ms["start"] = start_ms
    if worker is None and not in_process:
        worker = new_worker(f"tiercache-doctor-{name}")
    healthy = True  # whether the worker is free (no abandoned step on it)
    try:
        last_error = None
        if isinstance(tier, StartableTier):
            check.ready = tier.ready
            last_error = tier.last_error
        check.last_error = None if last_error is None else mask(str(last_error), secrets)
        if isinstance(tier, WarningTier):
            check.warnings.extend(mask(text, secrets) for text in tier.warnings)
        if check.ready is False:
            check.reason = f"not ready after start: {check.last_error or 'no reason given'}"
            return check
        healthy, check.reason = _probe(
            tier,
            check,
            worker=None if in_process else worker,
            budget=budget,
            secrets=secrets,
            settings=settings,
        )
        check.ok = check.reason is None
        return check
    finally:
        _close(tier, worker, healthy=healthy, budget=budget)


def _probe(
    tier: Tier,
    check: TierCheck,
    *,
    worker: DaemonPool | None,
    budget: float | None,
    secrets: Sequence[tuple[str, str]],
    settings: Settings,
) -> tuple[bool, str | None]:
    """Run write, read, delete, gone; return (worker still free, reason of a failure or None)."""
    size = min(PROBE_BYTES, settings.redis_max_value_bytes) if tier.name == "redis" else PROBE_BYTES
    payload = os.urandom(size)
    key = BlockKey(PROBE_TARGET, f"doctor/{uuid.uuid4().hex}", "probe", size, 0)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("write", lambda: tier.put(key, payload)),
        ("read", lambda: tier.get(key)),
        ("delete", lambda: tier.delete_object(key.target, key.path)),
        ("gone", lambda: tier.get(key)),
    ]
    wrote = False
    for step, call in calls:
        began = time.monotonic()
        if worker is None:  # in process: cannot hang, no budget
            done, result, error = _call_inline(call)
        else:
            assert budget is not None
            done, result, error = worker.run(call, budget + HANG_GRACE_S)
        elapsed_ms = (time.monotonic() - began) * 1000
        check.latency_ms[step] = elapsed_ms
        reason = _verdict(
            step,
            (done, result, error),
            elapsed_ms=elapsed_ms,
            budget=budget,
            payload=payload,
            tier=tier,
        )
        if step == "write" and done and error is None:
            wrote = True
        if reason is not None:
            if wrote and step in ("read", "write") and done:
                _cleanup(tier, key, worker, budget)  # leave no probe block behind
            return done, mask(reason, secrets)
    return True, None


def _verdict(
    step: str,
    outcome: tuple[bool, Any, BaseException | None],
    *,
    elapsed_ms: float,
    budget: float | None,
    payload: bytes,
    tier: Tier,
) -> str | None:
    """Why one probe step failed, or None if it passed."""
    done, result, error = outcome
    if not done:
        return f"{step} hung: no answer within {show_ms(elapsed_ms)}"
    if error is not None:
        return f"{step} failed: {describe(error)}"
    if budget is not None and elapsed_ms > budget * 1000:
        return (
            f"{step} took {show_ms(elapsed_ms)}, over the {show_ms(budget * 1000)} budget "
            "(reads would count it a timeout)"
        )
    if step == "read":
        return _read_back(result, payload, tier)
    if step == "gone" and result is not None:
        return "the probe block was still there after delete_object"
    return None


def _read_back(result: bytes | None, payload: bytes, tier: Tier) -> str | None:
    if result is None:
        last = tier.last_error if isinstance(tier, StartableTier) else None
        return "read back nothing: the write was declined or lost" + (f" ({last})" if last else "")
    if result != payload:
        return f"read back {len(result)} bytes that differ from the {len(payload)} written"
    return None


def _cleanup(tier: Tier, key: BlockKey, worker: DaemonPool | None, budget: float | None) -> None:
    def forget() -> None:
        tier.delete_object(key.target, key.path)

    if worker is None:
        _call_inline(forget)
    else:
        assert budget is not None
        worker.run(forget, budget + HANG_GRACE_S)


def _close(tier: Tier, worker: DaemonPool | None, *, healthy: bool, budget: float | None) -> None:
    """Close the tier, bounded in time: on its worker when that is free (diskcache keeps one
    connection per thread, released there), else on a fresh one; let the workers end."""

    def close() -> None:
        if isinstance(tier, ThreadBoundTier):
            tier.release_thread()
        tier.close()

    runner = (
        worker if worker is not None and healthy else new_worker(f"tiercache-close-{tier.name}")
    )
    runner.run(close, (budget or DEFAULT_TIMEOUT_S) + HANG_GRACE_S)
    runner.close()
    if worker is not None and worker is not runner:
        worker.close()  # a stuck worker ends when (if ever) its call returns


def _call_inline(fn: Callable[[], T]) -> tuple[bool, Any, BaseException | None]:
    try:
        return True, fn(), None
    except Exception as exc:
        return True, None, exc


def location(settings: Settings, name: str) -> str:
    """What the check of the tier ``name`` is about, for the reader (the Redis URL redacted)."""
    if name == "memory":
        return f"{settings.memory_bytes:,} bytes of RAM"
    if name == "disk" and settings.disk_dir is not None:
        return settings.disk_dir
    if name == "redis" and settings.redis_url is not None:
        return redact_url(settings.redis_url)
    return ""


def new_worker(name: str) -> DaemonPool:
    """One daemon thread running a tier's steps in turn (diskcache keeps one connection per
    thread, released on it); a worker stuck in a call is abandoned, never reused."""
    return DaemonPool(1, name)
