"""Parsing what a request says about its signature (header or presigned form), not yet trusted.

Every refusal is an :class:`~tiercache.gateway.sigv4_types.AuthError` with S3's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus

from tiercache.gateway.sigv4_types import (
    _EXPIRES,
    _HEADER_MALFORMED,
    _HEX_DIGEST,
    _QUERY_MALFORMED,
    _SIGNATURE,
    _SINGLE_HEADERS,
    _TIMESTAMP,
    _TIMESTAMP_FORMAT,
    ALGORITHM,
    MAX_PRESIGNED_EXPIRES_S,
    QUERY_AUTH_PARAMS,
    STREAMING_PAYLOADS,
    UNSIGNED_PAYLOAD,
    AuthError,
)


@dataclass(frozen=True)
class _Claim:
    """What the request says about its own signature, parsed but not yet trusted."""

    access_key_id: str
    date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    #: ``amz_date`` as a time.
    when: datetime
    payload: str
    #: The raw query the signature covers (a presigned URL's minus ``X-Amz-Signature``).
    query: str
    #: Presigned URLs only: their lifetime in seconds.
    expires_s: int | None

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/s3/aws4_request"


def _header_claim(headers: dict[str, list[str]], query: str) -> _Claim:
    value = headers["authorization"][0].strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            "InvalidRequest",
            400,
            f"the authorization mechanism {algorithm!r} is not supported; use {ALGORITHM}",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field = part.strip().partition("=")
        if not name and not sep:
            continue
        if not sep or name not in ("Credential", "SignedHeaders", "Signature"):
            raise AuthError(_HEADER_MALFORMED, 400, f"unexpected Authorization part {part!r}")
        if name in fields:
            raise AuthError(_HEADER_MALFORMED, 400, f"the Authorization header repeats {name}")
        fields[name] = field.strip()
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in fields:
            raise AuthError(_HEADER_MALFORMED, 400, f"the Authorization header has no {name}")
    if "x-amz-content-sha256" not in headers:
        raise AuthError(
            "MissingSecurityHeader",
            400,
            "missing required header for this request: x-amz-content-sha256",
        )
    payload = headers["x-amz-content-sha256"][0].strip()
    known = payload in STREAMING_PAYLOADS or payload == UNSIGNED_PAYLOAD
    if not known and not _HEX_DIGEST.fullmatch(payload):
        raise AuthError(
            "InvalidArgument",
            400,
            f"x-amz-content-sha256 {payload!r} is neither a SHA-256 hex digest nor one of "
            f"{UNSIGNED_PAYLOAD}, {', '.join(sorted(STREAMING_PAYLOADS))}",
        )
    return _claim(
        credential=fields["Credential"],
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        amz_date=_header_timestamp(headers),
        payload=payload,
        query=query,
        expires_s=None,
        malformed=_HEADER_MALFORMED,
    )


def _header_timestamp(headers: dict[str, list[str]]) -> str:
    """The request time: ``x-amz-date``, else the HTTP ``Date`` header (SigV4 allows either)."""
    if "x-amz-date" in headers:
        value = headers["x-amz-date"][0].strip()
        if _parse_timestamp(value) is not None:
            return value
    elif "date" in headers:
        try:
            when = parsedate_to_datetime(headers["date"][0])
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)
        except (TypeError, ValueError, OverflowError):
            pass
    raise AuthError("AccessDenied", 403, "AWS authentication requires a valid Date or x-amz-date")


def _query_claim(pairs: list[tuple[str, str]]) -> _Claim:
    params: dict[str, str] = {}
    kept: list[str] = []
    for key, value in pairs:
        name = _unquote(key)
        if name in QUERY_AUTH_PARAMS:
            if name in params:
                raise AuthError(_QUERY_MALFORMED, 400, f"the query repeats {name}")
            params[name] = _unquote(value)
        if name != "X-Amz-Signature":
            kept.append(f"{key}={value}")
    missing = [name for name in QUERY_AUTH_PARAMS if name not in params]
    if missing:
        raise AuthError(
            _QUERY_MALFORMED, 400, f"a presigned URL needs {', '.join(missing)} in its query"
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthError(
            _QUERY_MALFORMED,
            400,
            f"X-Amz-Algorithm {params['X-Amz-Algorithm']!r} is not {ALGORITHM}",
        )
    expires = params["X-Amz-Expires"]
    if not _EXPIRES.fullmatch(expires):
        raise AuthError(_QUERY_MALFORMED, 400, f"X-Amz-Expires {expires!r} is not a number")
    if int(expires) > MAX_PRESIGNED_EXPIRES_S:
        raise AuthError(
            _QUERY_MALFORMED,
            400,
            f"X-Amz-Expires must be less than a week (in seconds), that is "
            f"{MAX_PRESIGNED_EXPIRES_S}; it is {expires}",
        )
    return _claim(
        credential=params["X-Amz-Credential"],
        signed_headers=params["X-Amz-SignedHeaders"],
        signature=params["X-Amz-Signature"],
        amz_date=params["X-Amz-Date"],
        payload=UNSIGNED_PAYLOAD,
        query="&".join(kept),
        expires_s=int(expires),
        malformed=_QUERY_MALFORMED,
    )


def _claim(
    *,
    credential: str,
    signed_headers: str,
    signature: str,
    amz_date: str,
    payload: str,
    query: str,
    expires_s: int | None,
    malformed: str,
) -> _Claim:
    """Check the pieces both forms share and assemble them; ``malformed`` is the form's code."""
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0] or not parts[2] or parts[4] != "aws4_request":
        raise AuthError(
            malformed,
            400,
            f"the credential {credential!r} is not <access key>/<date>/<region>/s3/aws4_request",
        )
    access_key_id, date, region, service, _ = parts
    if service != "s3":
        raise AuthError(malformed, 400, f"the credential's service is {service!r}, not 's3'")
    when = _parse_timestamp(amz_date)
    if when is None:
        raise AuthError(malformed, 400, f"the request time {amz_date!r} is not YYYYMMDDTHHMMSSZ")
    if date != amz_date[:8]:
        raise AuthError(
            malformed,
            400,
            f"the credential's date {date!r} is not the request's date {amz_date[:8]!r}",
        )
    names = tuple(name.strip().lower() for name in signed_headers.split(";"))
    if not all(names):
        raise AuthError(malformed, 400, f"SignedHeaders {signed_headers!r} has an empty name")
    if "host" not in names:
        raise AuthError(malformed, 400, f"SignedHeaders {signed_headers!r} must include host")
    if not _SIGNATURE.fullmatch(signature):
        raise AuthError(malformed, 400, "the signature is not 64 lowercase hex digits")
    return _Claim(
        access_key_id=access_key_id,
        date=date,
        region=region,
        signed_headers=names,
        signature=signature,
        amz_date=amz_date,
        when=when,
        payload=payload,
        query=query,
        expires_s=expires_s,
    )


def _header_map(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        if not _utf8(value):
            raise AuthError("InvalidArgument", 400, f"the {name!r} header is not valid text")
        headers.setdefault(name.strip().lower(), []).append(value)
    for name in _SINGLE_HEADERS:
        count = len(headers.get(name, ()))
        if count > 1:
            raise AuthError("InvalidArgument", 400, f"the {name} header appears {count} times")
    return headers


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The raw ``key=value`` pairs of a query, still percent-encoded; empty segments dropped."""
    if not _utf8(query):
        raise AuthError("InvalidURI", 400, "the query string is not valid text")
    pairs = []
    for segment in query.split("&"):
        if segment:
            key, _, value = segment.partition("=")
            pairs.append((key, value))
    return pairs


def _unquote(text: str) -> str:
    # parse_qsl's decoding, the one the app applies to the query: "+" is a space.
    return unquote_plus(text)


def _parse_timestamp(value: str) -> datetime | None:
    if not _TIMESTAMP.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (lone surrogates do not), as signing requires."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
