"""What ``tiercache doctor`` found, and how it is shown: aligned lines, secrets masked."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from tiercache.config import Settings, redact_url


@dataclass(slots=True)
class TierCheck:
    """The verdict on one tier (or on the origin).

    Attributes:
        name: ``memory``, ``disk``, ``redis``, another tier's name, ``origin``, or a check of
            a running gateway (``gateway-health``, ``gateway-stats``, ``gateway-s3``).
        ok: Whether it is usable: ready, and every step passed in time.
        where: What was checked (directory, redacted URL), for the reader.
        ready: Whether the tier was ready after start (``None``: no such notion).
        last_error: The tier's ``last_error`` after start, if any (secrets masked).
        budget_ms: The time budget of one step, in milliseconds (``None``: in process).
        latency_ms: Milliseconds per step that ran (``start``, then the probe steps, or
            ``info`` for the origin).
        reason: Why it is not usable (``None`` when ``ok``).
        detail: Extra facts (the origin's size; a gateway's counts, with a ``summary`` shown
            after what was checked).
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


def format_report(report: DoctorReport) -> str:
    """One aligned line per check: name, OK/FAIL, step latencies, and the reason of a failure."""
    rows = []
    for check in report.checks:
        steps = "  ".join(f"{step} {show_ms(ms)}" for step, ms in check.latency_ms.items())
        note = check.reason or check.where
        if check.ok and isinstance(check.detail.get("size"), int):
            note += f" ({check.detail['size']:,} bytes)"
        if check.ok and isinstance(check.detail.get("summary"), str):
            note += f" ({check.detail['summary']})"
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


def show_ms(ms: float) -> str:
    """A duration for people: milliseconds up to 10 s, then seconds."""
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def describe(error: BaseException | None) -> str:
    """An error as its type and message (a reason still to be masked)."""
    if error is None:
        return "no result"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def secrets_of(settings: Settings) -> list[tuple[str, str]]:
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


def mask(text: str, secrets: Sequence[tuple[str, str]]) -> str:
    """``text`` with every secret of :func:`secrets_of` replaced by what is shown instead."""
    for secret, shown in secrets:
        text = text.replace(secret, shown)
    return text
