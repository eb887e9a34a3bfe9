"""Running the doctor: start each configured tier on its own and probe it; check the origin and
a running gateway."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tiercache.build import default_tiers
from tiercache.cli.doctor.gateway import check_arguments, check_gateway
from tiercache.cli.doctor.probe import DEFAULT_TIMEOUT_S, check_tier, location, new_worker
from tiercache.cli.doctor.report import DoctorReport, TierCheck, describe, mask, secrets_of, show_ms
from tiercache.config import UNAUTHENTICATED_REDIS, Settings, redact_url
from tiercache.errors import ConfigError
from tiercache.protocol import Tier

#: Time allowed past the budget for a tier to start (open its directory, connect).
START_GRACE_S: Final = 2.0


def run_doctor(
    settings: Settings,
    url: str | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    tiers: Sequence[Tier] | None = None,
    gateway: str | None = None,
    gateway_bucket: str | None = None,
) -> DoctorReport:
    """Check every configured tier, the origin of ``url`` and the gateway at ``gateway`` if given.

    Args:
        settings: The settings to check (their tiers, budgets and secrets).
        url: An object to ``info()`` at the origin, as a chained ``tiercache::s3://bucket/key``
            URL or a plain ``s3://bucket/key`` one.
        storage_options: Options of the origin's filesystem (``endpoint_url=...``).
        tiers: Tiers to check instead of those the settings configure (closed afterwards), for
            a chain of custom tiers; built by the caller, so their start is not timed.
        gateway: A running gateway's ``http://HOST:PORT``: its health, its counters and one
            signed S3 request (:mod:`tiercache.cli.doctor.gateway`).
        gateway_bucket: A bucket the gateway's S3 check asks HeadBucket of (default: the
            check is ListBuckets).

    Returns:
        The report; it never raises for an unusable tier, origin or gateway.

    Raises:
        ConfigError: ``url`` names an unknown protocol, or its filesystem cannot be built
            from ``storage_options``; ``gateway`` is not ``http(s)://HOST:PORT``,
            ``gateway_bucket`` is given without it or is not a bucket name.
    """
    if gateway_bucket is not None and gateway is None:
        raise ConfigError("--gateway-bucket needs --gateway (the gateway to ask)")
    if gateway is not None:  # what cannot work is refused before anything is checked
        check_arguments(gateway, settings, gateway_bucket)
    started = time.monotonic()
    secrets = secrets_of(settings)
    checks: list[TierCheck] = []
    if tiers is None:
        checks.extend(_check_configured(settings, secrets))
    else:
        for tier in tiers:
            checks.append(check_tier(tier, settings, secrets, start_ms=None))
    if url is not None:
        checks.append(_check_origin(url, settings, storage_options or {}, secrets))
    if gateway is not None:
        checks.extend(check_gateway(gateway, settings, bucket=gateway_bucket))
    return DoctorReport(checks, time.monotonic() - started)


def _budget_s(settings: Settings, name: str) -> float:
    """The budget of a tier the settings configure, before it is built (to time its start)."""
    return {"disk": settings.disk_timeout_s, "redis": settings.redis_timeout_s}.get(
        name, DEFAULT_TIMEOUT_S
    )


def _check_configured(settings: Settings, secrets: Sequence[tuple[str, str]]) -> list[TierCheck]:
    """Start each configured tier on a worker (bounded), then probe it."""
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
        worker = new_worker(f"tiercache-doctor-{name}")
        began = time.monotonic()
        done, built, error = worker.run(
            functools.partial(default_tiers, only), budget + START_GRACE_S
        )
        start_ms = (time.monotonic() - began) * 1000
        if not done or error is not None or not built:
            check = TierCheck(name, where=location(settings, name), budget_ms=budget * 1000)
            check.latency_ms["start"] = start_ms
            check.reason = (
                f"did not start within {show_ms((budget + START_GRACE_S) * 1000)} (hung)"
                if not done
                else f"could not start: {describe(error)}"
            )
            check.reason = mask(check.reason, secrets)
            worker.close()
            checks.append(check)
            continue
        checks.append(check_tier(built[0], settings, secrets, start_ms=start_ms, worker=worker))
    for check in checks:
        if check.name == "redis" and settings.redis_unauthenticated:
            check.warnings.append(UNAUTHENTICATED_REDIS)
    return checks


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
    worker = new_worker("tiercache-doctor-origin")
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
            check.reason = mask(f"info failed: {describe(error)}", secrets)
        else:
            check.ok = True
            check.detail = {
                k: v for k, v in dict(info).items() if k in ("size", "type", "ETag", "etag")
            }
        return check
    finally:
        worker.close()


def _replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
