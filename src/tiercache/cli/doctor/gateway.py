"""Checking a running gateway (``tiercache doctor --gateway URL``): three checks, three lines.

1. ``gateway-health``: ``GET /-/health`` answers 200 within :data:`HEALTH_BUDGET_S` (what a
   Kubernetes probe asks). When nothing answers there (refused, no such host, no answer in
   time) this is the only line: the other two could say nothing more.
2. ``gateway-stats``: ``GET /-/stats`` (signed) answers the gateway's JSON; its request counts
   (all, 4xx, 5xx) and bytes sent are shown, a 5xx count as a warning.
3. ``gateway-s3``: one signed S3 request, as a client makes it: ListBuckets, or HeadBucket of
   ``--gateway-bucket``. It reaches the origin, so it proves the whole way.

Requests are signed with SigV4 by botocore (:func:`tiercache.gateway.sigv4.sign_request`), with
``TIERCACHE_GATEWAY_ACCESS_KEY_ID`` / ``TIERCACHE_GATEWAY_SECRET_ACCESS_KEY`` when set, else with
the pair the embedded gateway hands out (a gateway without credentials accepts any signature).
The stats and S3 requests get ``TIERCACHE_ORIGIN_TIMEOUT`` (the gateway's own bound on an origin
call). Every request runs on a worker thread abandoned ``HANG_GRACE_S`` past its bound: the doctor
never hangs on a frozen gateway.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from tiercache.cli.doctor.probe import HANG_GRACE_S, new_worker
from tiercache.cli.doctor.report import TierCheck, describe, show_ms
from tiercache.config import Settings, redact_url
from tiercache.errors import ConfigError

#: The time ``GET /-/health`` may take (a probe's timeout).
HEALTH_BUDGET_S: Final = 2.0
#: The most of an answer's body read.
MAX_BODY_BYTES: Final = 1 << 20
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_USAGE = "expected http://HOST:PORT (or https://), e.g. http://127.0.0.1:9000"


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def gateway_url(url: str) -> SplitResult:
    """``url`` checked: ``http(s)://HOST:PORT``, nothing else.

    Raises:
        ConfigError: Another scheme, no host, a user, a path, a query or a bad port.
    """
    shown = redact_url(url)  # a password in it is never printed
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--gateway {shown!r}: {exc}; {_USAGE}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(f"--gateway {shown!r}: {_USAGE}")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--gateway {shown!r}: only the scheme, host and port; {_USAGE}")
    return parts


def check_arguments(url: str, settings: Settings, bucket: str | None = None) -> None:
    """Refuse what :func:`check_gateway` cannot work with, before anything is checked.

    Raises:
        ConfigError: ``url`` is not ``http(s)://HOST:PORT``, ``bucket`` is not a bucket name,
            or botocore (to sign with) is not installed.
    """
    _signer(settings, gateway_url(url))
    if bucket is not None and not _BUCKET.fullmatch(bucket):
        raise ConfigError(
            f"--gateway-bucket {bucket!r} is not a bucket name (letters, digits, '.', '-', '_')"
        )


def check_gateway(url: str, settings: Settings, *, bucket: str | None = None) -> list[TierCheck]:
    """Check the gateway at ``url``: health, stats and one signed S3 request.

    Raises:
        ConfigError: As :func:`check_arguments`.
    """
    check_arguments(url, settings, bucket)
    base = gateway_url(url)
    sign = _signer(settings, base)
    where = f"{base.scheme}://{base.netloc}"
    health = _check_health(base, where)
    if health.detail.get("unreachable"):
        return [health]
    return [
        health,
        _check_stats(base, where, sign, settings),
        _check_s3(base, where, sign, settings, bucket),
    ]


def _signer(settings: Settings, base: SplitResult) -> Callable[[str, str], dict[str, str]]:
    try:
        from tiercache.gateway.embedded import ANONYMOUS
        from tiercache.gateway.sigv4 import Credentials, sign_request
    except ImportError as exc:
        raise ConfigError(
            f"--gateway signs its requests with botocore, which is not installed ({exc}): "
            "pip install 'tiercache[gateway]'"
        ) from exc
    key, secret = settings.gateway_access_key_id, settings.gateway_secret_access_key
    credentials = Credentials(*((key, secret) if key and secret else ANONYMOUS))

    def sign(method: str, path: str) -> dict[str, str]:
        return sign_request(method, f"{base.scheme}://{base.netloc}{path}", credentials)

    return sign


def _request(
    base: SplitResult, method: str, path: str, headers: Mapping[str, str], timeout_s: float
) -> _Answer:
    connection_type = (
        http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(base.hostname or "", base.port, timeout=timeout_s)
    try:
        connection.request(method, path, headers=dict(headers))
        response = connection.getresponse()
        body = b"" if method == "HEAD" else response.read(MAX_BODY_BYTES)
        found = {name.lower(): value for name, value in response.getheaders()}
        return _Answer(response.status, found, body)
    finally:
        connection.close()


def _call(
    base: SplitResult, method: str, path: str, headers: Mapping[str, str], timeout_s: float
) -> tuple[bool, _Answer | None, BaseException | None, float]:
    """The request on a worker thread, abandoned ``HANG_GRACE_S`` past ``timeout_s``:
    (finished, the answer, the error, milliseconds)."""
    worker = new_worker("tiercache-doctor-gateway")
    began = time.monotonic()
    try:
        done, answer, error = worker.run(
            lambda: _request(base, method, path, headers, timeout_s), timeout_s + HANG_GRACE_S
        )
    finally:
        worker.close()
    return done, answer, error, (time.monotonic() - began) * 1000


def _unreachable(error: BaseException | None, done: bool, where: str, timeout_s: float) -> str:
    """Why nothing answered, in one line."""
    if not done or isinstance(error, TimeoutError):
        return f"no answer from {where} within {show_ms(timeout_s * 1000)}"
    if isinstance(error, ConnectionRefusedError):
        return f"unreachable: {where} refused the connection (is the gateway running there?)"
    if isinstance(error, socket.gaierror):
        return f"unreachable: cannot resolve the host of {where} ({error.strerror or error})"
    if isinstance(error, http.client.HTTPException):
        return f"{where} did not answer HTTP: {describe(error)}"
    return f"unreachable: {where}: {describe(error)}"


def _check_health(base: SplitResult, where: str) -> TierCheck:
    check = TierCheck("gateway-health", where=f"{where}/-/health", budget_ms=HEALTH_BUDGET_S * 1000)
    done, answer, error, ms = _call(base, "GET", "/-/health", {}, HEALTH_BUDGET_S)
    check.latency_ms["health"] = ms
    if answer is None:
        check.reason = _unreachable(error, done, where, HEALTH_BUDGET_S)
        check.detail["unreachable"] = True
    elif answer.status != 200:
        check.reason = (
            f"GET /-/health answered {answer.status}, not 200: is it a tiercache gateway?"
        )
    elif ms > HEALTH_BUDGET_S * 1000:
        check.reason = (
            f"GET /-/health took {show_ms(ms)}, over the {show_ms(HEALTH_BUDGET_S * 1000)} budget"
        )
    else:
        check.ok = True
    return check


def _check_stats(
    base: SplitResult, where: str, sign: Callable[[str, str], dict[str, str]], settings: Settings
) -> TierCheck:
    check = TierCheck("gateway-stats", where=f"{where}/-/stats")
    timeout_s = settings.origin_timeout_s
    done, answer, error, ms = _call(base, "GET", "/-/stats", sign("GET", "/-/stats"), timeout_s)
    check.latency_ms["stats"] = ms
    if answer is None:
        check.reason = _unreachable(error, done, where, timeout_s)
        return check
    if answer.status != 200:
        check.reason = f"GET /-/stats answered {answer.status}{_refusal(answer, settings)}"
        return check
    try:
        counts = _counts(json.loads(answer.body))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        check.reason = f"GET /-/stats did not answer the gateway's counters: {describe(exc)}"
        return check
    check.ok = True
    check.detail = counts
    check.detail["summary"] = (
        f"requests: {counts['requests']:,}, 4xx: {counts['4xx']:,}, 5xx: {counts['5xx']:,}, "
        f"bytes sent: {counts['bytes_out']:,}"
    )
    if counts["5xx"]:
        check.warnings.append(
            f"{counts['5xx']:,} requests answered 5xx since the gateway started (origin "
            "failures its clients retried, or its own: see its log)"
        )
    return check


def _counts(document: Any) -> dict[str, Any]:
    """The request counts of a ``GET /-/stats`` document."""
    gateway = document["gateway"]
    by_operation: dict[str, dict[str, int]] = {
        str(operation): {str(status): int(n) for status, n in statuses.items()}
        for operation, statuses in gateway["requests"].items()
    }
    counts = [(int(s), n) for statuses in by_operation.values() for s, n in statuses.items()]
    return {
        "requests": sum(n for _, n in counts),
        "4xx": sum(n for status, n in counts if 400 <= status < 500),
        "5xx": sum(n for status, n in counts if status >= 500),
        "bytes_out": int(gateway["bytes_out"]),
        "by_operation": by_operation,
    }


def _check_s3(
    base: SplitResult,
    where: str,
    sign: Callable[[str, str], dict[str, str]],
    settings: Settings,
    bucket: str | None,
) -> TierCheck:
    method, path = ("GET", "/") if bucket is None else ("HEAD", f"/{bucket}")
    operation = "ListBuckets" if bucket is None else f"HeadBucket {bucket}"
    check = TierCheck("gateway-s3", where=f"{operation} through {where}")
    timeout_s = settings.origin_timeout_s
    done, answer, error, ms = _call(base, method, path, sign(method, path), timeout_s)
    check.latency_ms["s3"] = ms
    if answer is None:
        check.reason = _unreachable(error, done, where, timeout_s)
        return check
    if answer.status != 200:
        check.reason = f"{operation} answered {answer.status}{_refusal(answer, settings)}"
        return check
    if bucket is None:
        try:
            root = ET.fromstring(answer.body)
        except ET.ParseError as exc:
            check.reason = f"ListBuckets answered 200 but not S3's XML: {describe(exc)}"
            return check
        buckets = sum(1 for element in root.iter() if element.tag.rpartition("}")[2] == "Bucket")
        check.detail = {"buckets": buckets, "summary": f"buckets: {buckets:,}"}
    check.ok = True
    return check


def _refusal(answer: _Answer, settings: Settings) -> str:
    """What an answer other than 200 said: the S3 error's `` Code: Message`` (a HEAD has no
    body: the code S3 means by its status), and how the doctor signed when it was refused."""
    fields: dict[str, str] = {}
    with contextlib.suppress(ET.ParseError):
        fields = {e.tag.rpartition("}")[2]: e.text or "" for e in ET.fromstring(answer.body)}
    code = fields.get("Code") or _HEAD_CODES.get(answer.status, "")
    message = fields.get("Message", "")
    said = f" {code}: {message}" if code and message else f" {code or message}".rstrip()
    if answer.status not in (401, 403):
        return said
    key = settings.gateway_access_key_id
    signed = (
        f"signed as TIERCACHE_GATEWAY_ACCESS_KEY_ID={key!r}"
        if key
        else "signed with no client credentials: TIERCACHE_GATEWAY_ACCESS_KEY_ID is unset"
    )
    return f"{said} ({signed})"


#: What S3 means by the status of a HEAD answer, which has no body.
_HEAD_CODES = {403: "AccessDenied", 404: "NoSuchBucket"}
