"""``tiercache doctor``: is every configured tier usable, and how fast is it, right now?

For each tier the settings configure (memory unless ``TIERCACHE_MEMORY_BYTES=0``, disk with
``TIERCACHE_DISK_DIR``, Redis with ``TIERCACHE_REDIS_URL``), :func:`run_doctor` builds the tier
exactly as a reader would (:func:`tiercache.fs.default_tiers`), checks that it is ready after
start (a disk directory that is not a directory or not writable, an unreachable Redis: the tier
starts unavailable, with ``last_error``), then probes it through its own ``put`` / ``get`` /
``delete_object`` with a :class:`~tiercache.protocol.BlockKey` of a probe object no reader uses:

1. ``write``: ``put`` a small random block (framed, with the HMAC tag when a key is set),
2. ``read``: ``get`` it back and compare the bytes (the tier checks header, checksum and tag),
3. ``delete``: ``delete_object`` the probe object,
4. ``gone``: ``get`` again, which must miss.

Every step of a tier outside the process runs on a worker thread under the tier's time budget
(``TIERCACHE_DISK_TIMEOUT``, ``TIERCACHE_REDIS_TIMEOUT``: the budget reads get from the guard).
A step that ends after the budget fails as *slow* (reads would count it a timeout); a step that
has not ended ``HANG_GRACE_S`` after the budget is abandoned and fails as *hung*: the doctor never
hangs on a frozen server or disk. Starting a tier has ``START_GRACE_S`` on top of its budget.
Optionally the origin is checked too: ``info()`` of a URL, within ``TIERCACHE_ORIGIN_TIMEOUT``.

Nothing here prints a secret: the Redis URL is redacted, and the URL's password and the HMAC
key are masked in every reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from tiercache.config import UNAUTHENTICATED_REDIS, Settings, redact_url
from tiercache.deadline import DaemonPool
from tiercache.errors import ConfigError
from tiercache.protocol import (
    BlockKey,
    BudgetedTier,
    InProcessTier,
    StartableTier,
    ThreadBoundTier,
    Tier,
    WarningTier,
)

__all__ = ["DoctorReport", "TierCheck", "format_report", "run_doctor"]

T = TypeVar("T")

#: Time allowed past a step's budget before the step is abandoned as hung.
HANG_GRACE_S: Final = 0.5
#: Time allowed past the budget for a tier to start (open its directory, connect).
START_GRACE_S: Final = 2.0
#: Budget of a tier whose name has no setting (as :class:`~tiercache.chain.TierChain`).
DEFAULT_TIMEOUT_S: Final = 0.1
#: The target of every probe key: no object store's identity digest looks like it.
PROBE_TARGET: Final = "tiercache-doctor"
PROBE_BYTES: Final = 64
STEPS: Final = ("write", "read", "delete", "gone")


@dataclass(slots=True)
class TierCheck:
    """The verdict on one tier (or on the origin).

    Attributes:
        name: ``memory``, ``disk``, ``redis``, another tier's name, or ``origin``.
        ok: Whether it is usable: ready, and every step passed in time.
        where: What was checked (directory, redacted URL), for the reader.
        ready: Whether the tier was ready after start (``None``: no such notion).
        last_error: The tier's ``last_error`` after start, if any (secrets masked).
        budget_ms: The time budget of one step, in milliseconds (``None``: in process).
        latency_ms: Milliseconds per step that ran (``start``, then the probe steps, or
            ``info`` for the origin).
        reason: Why it is not usable (``None`` when ``ok``).
        detail: Extra facts (the origin's size).
        warnings: What works but is unsafe (a Redis tier without an HMAC key).
    """

    name: str
    ok: bool = False
    where: str = ""
    ready: bool | None = None
    last_error: str | None = None
    budget_ms: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    detail: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "ok": self.ok,
            "status": "OK" if self.ok else "FAIL",
            "where": self.where,
            "ready": self.ready,
            "last_error": self.last_error,
            "budget_ms": self.budget_ms,
            "latency_ms": {step: round(ms, 3) for step, ms in self.latency_ms.items()},
            "reason": self.reason,
            "detail": self.detail,
            "warnings": list(self.warnings),
        }


@dataclass(slots=True)
class DoctorReport:
    """What :func:`run_doctor` found: one :class:`TierCheck` per tier, then the origin's."""

    checks: list[TierCheck]
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every configured tier (and the origin, if checked) is usable."""
        return all(check.ok for check in self.checks)

    @property
    def exit_status(self) -> int:
        """0 when everything checked is usable, else 1."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "exit_status": self.exit_status,
            "duration_s": round(self.duration_s, 3),
            "checks": [check.to_dict() for check in self.checks],
        }


def run_doctor(
    settings: Settings,
    url: str | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    tiers: Sequence[Tier] | None = None,
) -> DoctorReport:
    """Check every configured tier, and the origin of ``url`` if given.

    Args:
        settings: The settings to check (their tiers, budgets and secrets).
        url: An object to ``info()`` at the origin, as a chained ``tiercache::s3://bucket/key``
            URL or a plain ``s3://bucket/key`` one.
        storage_options: Options of the origin's filesystem (``endpoint_url=...``).
        tiers: Tiers to check instead of those the settings configure (closed afterwards), for
            a chain of custom tiers; built by the caller, so their start is not timed.

    Returns:
        The report; it never raises for an unusable tier or origin.

    Raises:
        ConfigError: ``url`` names an unknown protocol, or its filesystem cannot be built
            from ``storage_options``.
    """
    started = time.monotonic()
    secrets = _secrets(settings)
    checks: list[TierCheck] = []
    if tiers is None:
        checks.extend(_check_configured(settings, secrets))
    else:
        for tier in tiers:
            checks.append(_check_tier(tier, settings, secrets, start_ms=None))
    if url is not None:
        checks.append(_check_origin(url, settings, storage_options or {}, secrets))
    return DoctorReport(checks, time.monotonic() - started)


def format_report(report: DoctorReport) -> str:
    """One aligned line per check: name, OK/FAIL, step latencies, and the reason of a failure."""
    rows = []
    for check in report.checks:
        steps = "  ".join(f"{step} {_ms(ms)}" for step, ms in check.latency_ms.items())
        note = check.reason or check.where
        if check.ok and isinstance(check.detail.get("size"), int):
            note += f" ({check.detail['size']:,} bytes)"
        rows.append((check.name, "OK" if check.ok else "FAIL", steps, note))
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines += [
        f"WARNING: {check.name}: {text}" for check in report.checks for text in check.warnings
    ]
    usable = sum(check.ok for check in report.checks)
    lines.append(
        f"{usable} of {len(report.checks)} usable in {report.duration_s * 1000:.0f} ms: "
        + ("ok" if report.ok else "FAIL")
    )
    return "\n".join(line.rstrip() for line in lines)


# -- tiers -------------------------------------------------------------------------------------


def _budget_s(settings: Settings, name: str) -> float:
    """The budget of a tier the settings configure, before it is built (to time its start)."""
    return {"disk": settings.disk_timeout_s, "redis": settings.redis_timeout_s}.get(
        name, DEFAULT_TIMEOUT_S
    )


def _tier_budget_s(tier: Tier) -> float:
    """The budget of a built tier: its own (as the chain's guard takes it), else the default."""
    return tier.timeout_s if isinstance(tier, BudgetedTier) else DEFAULT_TIMEOUT_S


def _check_configured(settings: Settings, secrets: Sequence[tuple[str, str]]) -> list[TierCheck]:
    """Start each configured tier on a worker (bounded), then probe it."""
    from tiercache.fs import default_tiers  # fs imports most of the package: only when run

    checks = []
    # One settings object per tier, so that each tier is started (and timed) on its own.
    alone: dict[str, dict[str, Any]] = {
        "memory": {"disk_dir": None, "redis_url": None},
        "disk": {"memory_bytes": 0, "redis_url": None},
        "redis": {"memory_bytes": 0, "disk_dir": None},
    }
    wanted = [
        name
        for name, on in (
            ("memory", settings.memory_bytes > 0),
            ("disk", settings.disk_dir is not None),
            ("redis", settings.redis_url is not None),
        )
        if on
    ]
    for name in wanted:
        budget = _budget_s(settings, name)
        only = _replace(settings, **alone[name])
        worker = _worker(f"tiercache-doctor-{name}")
        began = time.monotonic()
        done, built, error = worker.run(
            functools.partial(default_tiers, only), budget + START_GRACE_S
        )
        start_ms = (time.monotonic() - began) * 1000
        if not done or error is not None or not built:
            check = TierCheck(name, where=_where(settings, name), budget_ms=budget * 1000)
            check.latency_ms["start"] = start_ms
            check.reason = (
                f"did not start within {_ms((budget + START_GRACE_S) * 1000)} (hung)"
                if not done
                else f"could not start: {_describe(error)}"
            )
            check.reason = _mask(check.reason, secrets)
            worker.close()
            checks.append(check)
            continue
        checks.append(_check_tier(built[0], settings, secrets, start_ms=start_ms, worker=worker))
    for check in checks:
        if check.name == "redis" and settings.redis_unauthenticated:
            check.warnings.append(UNAUTHENTICATED_REDIS)
    return checks


def _check_tier(
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
        name, where=_where(settings, name), budget_ms=None if budget is None else budget * 1000
    )
    if start_ms is not None:
        check.latency_ms["start"] = start_ms
    if worker is None and not in_process:
        worker = _worker(f"tiercache-doctor-{name}")
    healthy = True  # whether the worker is free (no abandoned step on it)
    try:
        last_error = None
        if isinstance(tier, StartableTier):
            check.ready = tier.ready
            last_error = tier.last_error
        check.last_error = None if last_error is None else _mask(str(last_error), secrets)
        if isinstance(tier, WarningTier):
            check.warnings.extend(_mask(text, secrets) for text in tier.warnings)
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
            return done, _mask(reason, secrets)
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
        return f"{step} hung: no answer within {_ms(elapsed_ms)}"
    if error is not None:
        return f"{step} failed: {_describe(error)}"
    if budget is not None and elapsed_ms > budget * 1000:
        return (
            f"{step} took {_ms(elapsed_ms)}, over the {_ms(budget * 1000)} budget "
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

    runner = worker if worker is not None and healthy else _worker(f"tiercache-close-{tier.name}")
    runner.run(close, (budget or DEFAULT_TIMEOUT_S) + HANG_GRACE_S)
    runner.close()
    if worker is not None and worker is not runner:
        worker.close()  # a stuck worker ends when (if ever) its call returns


# -- origin ------------------------------------------------------------------------------------


def _check_origin(
    url: str,
    settings: Settings,
    storage_options: Mapping[str, Any],
    secrets: Sequence[tuple[str, str]],
) -> TierCheck:
    import fsspec

    target_url = url.removeprefix("tiercache::")
    check = TierCheck("origin", where=redact_url(target_url))
    deadline = settings.origin_timeout_s
    worker = _worker("tiercache-doctor-origin")
    try:

        def build() -> tuple[Any, str]:
            fs, path = fsspec.core.url_to_fs(target_url, **storage_options)
            return fs, path

        began = time.monotonic()
        info: Any = None
        done, built, error = worker.run(build, deadline)
        if done and isinstance(error, ValueError | ImportError | TypeError):
            raise ConfigError(f"--url {redact_url(url)!r}: {error}") from error
        if done and error is None and built is not None:
            fs, path = built
            remaining = max(0.0, deadline - (time.monotonic() - began))  # one deadline for both
            done, info, error = worker.run(lambda: fs.info(path), remaining)
        check.latency_ms["info"] = (time.monotonic() - began) * 1000
        if not done:
            check.reason = f"info hung: no answer within TIERCACHE_ORIGIN_TIMEOUT ({deadline} s)"
        elif error is not None:
            check.reason = _mask(f"info failed: {_describe(error)}", secrets)
        else:
            check.ok = True
            check.detail = {
                k: v for k, v in dict(info).items() if k in ("size", "type", "ETag", "etag")
            }
        return check
    finally:
        worker.close()


# -- helpers -----------------------------------------------------------------------------------


def _call_inline(fn: Callable[[], T]) -> tuple[bool, Any, BaseException | None]:
    try:
        return True, fn(), None
    except Exception as exc:
        return True, None, exc


def _replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


def _where(settings: Settings, name: str) -> str:
    if name == "memory":
        return f"{settings.memory_bytes:,} bytes of RAM"
    if name == "disk" and settings.disk_dir is not None:
        return settings.disk_dir
    if name == "redis" and settings.redis_url is not None:
        return redact_url(settings.redis_url)
    return ""


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no result"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _secrets(settings: Settings) -> list[tuple[str, str]]:
    """(secret, shown instead) for the texts no reason may show: the Redis URL (shown redacted),
    its password (or lone user part, which :func:`redact_url` treats as a secret), the HMAC key."""
    pairs: list[tuple[str, str]] = []
    url = settings.redis_url
    if url and redact_url(url) != url:
        pairs.append((url, redact_url(url)))
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            secret = parts.password if parts.password is not None else parts.username
            if secret:
                pairs.extend((text, "***") for text in {secret, unquote(secret)})
    if settings.redis_hmac_key:
        pairs.append((settings.redis_hmac_key, "***"))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)  # the URL before its parts


def _mask(text: str, secrets: Sequence[tuple[str, str]]) -> str:
    for secret, shown in secrets:
        text = text.replace(secret, shown)
    return text


def _ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _worker(name: str) -> DaemonPool:
    """One daemon thread running a tier's steps in turn (diskcache keeps one connection per
    thread, released on it); a worker stuck in a call is abandoned, never reused."""
    return DaemonPool(1, name)
