"""Verify AWS Signature Version 4 on incoming S3 requests: pure functions, no server.

Two forms are accepted, both with the ``AWS4-HMAC-SHA256`` algorithm, any region and the
``s3`` service:

- the ``Authorization`` header (``Credential=…, SignedHeaders=…, Signature=…``), whose
  ``x-amz-content-sha256`` header names the payload: a hex digest the app checks with
  :func:`payload_matches`, ``UNSIGNED-PAYLOAD``, or a ``STREAMING-…`` aws-chunked body the app
  decodes with :class:`tiercache.gateway.chunked.ChunkedDecoder`;
- a presigned URL (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``,
  ``X-Amz-SignedHeaders``, ``X-Amz-Signature`` in the query), whose payload is always
  ``UNSIGNED-PAYLOAD``.

The canonical request, string to sign and signature are botocore's own (``S3SigV4Auth``), the
code every boto3 client signs with, so the two cannot drift apart. Only the choice of headers
(exactly the client's ``SignedHeaders``) and of the timestamp (the request's, not the clock's)
is ours. This module is the gateway's only importer of botocore.

Every refusal is an :class:`AuthError` carrying the S3 error code and HTTP status the app sends
back; a malformed request never raises anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote, unquote_plus, unquote_to_bytes, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials as _BotocoreCredentials

ALGORITHM: Final = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_PAYLOADS: Final = frozenset(
    {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
#: S3's ceiling on ``X-Amz-Expires``: seven days.
MAX_PRESIGNED_EXPIRES_S: Final = 604_800

_TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_EXPIRES = re.compile(r"\d{1,10}")
# A placeholder authority: botocore reads the path and query from a URL, never its host (the
# host header is taken from the request like every other signed header).
_ORIGIN: Final = "http://gateway.invalid"
# Headers whose single value decides how the request is authenticated or framed: a second
# copy would leave it ambiguous which one was meant.
_SINGLE_HEADERS: Final = (
    "authorization",
    "host",
    "date",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-decoded-content-length",
)
_QUERY_AUTH_PARAMS: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
# Any of these in the query makes it a presigned URL (X-Amz-Date and the others may be plain
# parameters of a request signed in its header).
_QUERY_AUTH_SIGNALS: Final = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
_HEADER_MALFORMED: Final = "AuthorizationHeaderMalformed"
_QUERY_MALFORMED: Final = "AuthorizationQueryParametersError"


@dataclass(frozen=True)
class Credentials:
    """One access key the gateway accepts, with its secret."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of an HTTP request a signature covers, as received.

    ``path`` and ``query`` are the raw request target, still percent-encoded and never decoded
    (ASGI's ``raw_path`` and ``query_string``); characters outside ASCII are taken as UTF-8.
    ``headers`` may repeat names and use any case.
    """

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Verified:
    """What a verified request proved, and what decoding its body needs."""

    access_key_id: str
    #: The payload the signature covers: a hex SHA-256 of the body, ``UNSIGNED-PAYLOAD`` or a
    #: ``STREAMING-…`` aws-chunked variant.
    payload: str
    #: The request signature, which seeds an aws-chunked body's chain of chunk signatures.
    seed_signature: str
    #: The SigV4 signing key of the request's date, region and service.
    signing_key: bytes
    #: ``date/region/s3/aws4_request``.
    scope: str
    #: The request time the signature covers, ``YYYYMMDDTHHMMSSZ``.
    amz_date: str

    @property
    def streaming(self) -> bool:
        """Whether the body is aws-chunked and must go through a ``ChunkedDecoder``."""
        return self.payload in STREAMING_PAYLOADS

    def __repr__(self) -> str:
        return (
            f"Verified(access_key_id={self.access_key_id!r}, payload={self.payload!r}, "
            f"scope={self.scope!r}, amz_date={self.amz_date!r})"
        )


class AuthError(Exception):
    """A request is refused. Carries the S3 error ``code`` and HTTP ``status`` to answer with."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message


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


def verify(
    request: IncomingRequest,
    credentials: Sequence[Credentials],
    *,
    now: datetime | None = None,
    max_skew_s: float = 900.0,
) -> Verified:
    """Check the request's SigV4 signature (header or presigned form) against ``credentials``.

    Args:
        request: the request as received.
        credentials: the access keys the gateway accepts.
        now: the server's time, timezone-aware; defaults to the clock.
        max_skew_s: how far (seconds) a signed request's time may be from ``now``; a presigned
            URL may be dated this far in the future. Default 900, as S3.

    Returns:
        The verified identity, payload and what an aws-chunked body's verification needs.

    Raises:
        AuthError: the request is unsigned, malformed, expired, skewed, signed with an unknown
            key, or its signature does not match.
        ValueError: ``now`` is naive.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _utf8(request.path):
        raise AuthError("InvalidURI", 400, "the request path is not valid text")
    headers = _header_map(request.headers)
    pairs = _query_pairs(request.query)
    in_query = any(_unquote(key) in _QUERY_AUTH_SIGNALS for key, _ in pairs)
    if "authorization" in headers and in_query:
        raise AuthError(
            "InvalidArgument",
            400,
            "only one auth mechanism allowed: the Authorization header or the X-Amz-* query "
            "parameters, not both",
        )
    if in_query:
        claim = _query_claim(pairs)
    elif "authorization" in headers:
        claim = _header_claim(headers, request.query)
    else:
        raise AuthError(
            "AccessDenied", 403, "anonymous request: no Authorization header, no X-Amz-Signature"
        )
    secret = _secret(claim.access_key_id, credentials)
    _check_time(claim, now, max_skew_s)
    _check_headers(claim, headers)
    if not _signature_matches(claim, secret, request.method, request.path, headers):
        raise AuthError(
            "SignatureDoesNotMatch",
            403,
            "the request signature we calculated does not match the signature you provided; "
            "check your key and signing method",
        )
    return Verified(
        access_key_id=claim.access_key_id,
        payload=claim.payload,
        seed_signature=claim.signature,
        signing_key=signing_key(secret, claim.date, claim.region),
        scope=claim.scope,
        amz_date=claim.amz_date,
    )


def payload_matches(verified: Verified, body: bytes) -> bool:
    """Whether ``body`` is the payload the signature covers (always so for an unsigned payload).

    Raises:
        ValueError: the payload is aws-chunked; decode it with ``ChunkedDecoder``, which checks
            it chunk by chunk.
    """
    if verified.payload == UNSIGNED_PAYLOAD:
        return True
    if verified.streaming:
        raise ValueError(
            f"payload {verified.payload} is aws-chunked: decode the body with ChunkedDecoder"
        )
    return hmac.compare_digest(hashlib.sha256(body).hexdigest(), verified.payload.lower())


def signing_key(secret_access_key: str, date: str, region: str, service: str = "s3") -> bytes:
    """Derive the SigV4 signing key of one day, region and service.

    botocore derives it inside ``SigV4Auth.signature`` and never hands it out; aws-chunked
    bodies need it for every chunk, so these four HMACs are spelled out once here.
    """
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class _ClaimSigner(S3SigV4Auth):  # type: ignore[misc]  # botocore ships no type information
    """botocore's S3 signer, signing exactly the headers the client says it signed."""

    def __init__(self, claim: _Claim, secret: str, headers: dict[str, list[str]]) -> None:
        super().__init__(_BotocoreCredentials(claim.access_key_id, secret), "s3", claim.region)
        self._claim = claim
        self._headers = headers

    def headers_to_sign(self, request: Any) -> Any:
        # botocore would pick every header but a short deny list, and add a host from the URL:
        # the server must instead take the client's list, with every value each name arrived
        # with (botocore joins repeated values with commas, as SigV4 says).
        chosen = HTTPHeaders()
        for name in self._claim.signed_headers:
            for value in self._headers[name]:
                chosen[name] = value
        return chosen

    def signature_of(self, method: str, url: str, params: list[tuple[str, str]]) -> str:
        """botocore's signature of one canonical form of the request."""
        request = AWSRequest(
            method=method,
            url=url,
            headers={"X-Amz-Content-SHA256": self._claim.payload},
            params=params,
        )
        request.context["timestamp"] = self._claim.amz_date
        string_to_sign = self.string_to_sign(request, self.canonical_request(request))
        return str(self.signature(string_to_sign, request))


def _signature_matches(
    claim: _Claim, secret: str, method: str, path: str, headers: dict[str, list[str]]
) -> bool:
    signer = _ClaimSigner(claim, secret, headers)
    signatures = {signer.signature_of(method, url, params) for url, params in _forms(path, claim)}
    return any(hmac.compare_digest(claim.signature, signature) for signature in signatures)


def _forms(path: str, claim: _Claim) -> list[tuple[str, list[tuple[str, str]]]]:
    """The canonical forms of the request target a client may have signed.

    SDKs send the target as they signed it (botocore, the S3 rule: each key byte outside
    ``A-Za-z0-9-_.~/`` percent-encoded once), so the target as received comes first. Some
    clients sign that strict encoding yet send a looser one (botocore's own ``params`` go out
    through ``urlencode``, a space as ``+``); the strict re-encoding of the decoded target is
    the second form. Both decode to the same path and query, the ones the app acts on (the path
    with ``unquote``, the query with ``parse_qsl``), so neither lets a signature cover another
    object.
    """
    path = path or "/"
    url = f"{_ORIGIN}{path}?{claim.query}" if claim.query else f"{_ORIGIN}{path}"
    # botocore reads the path and query back out of the URL: they must survive the trip.
    if not path.startswith("/") or urlsplit(url)[2:4] != (path, claim.query):
        raise AuthError("InvalidURI", 400, f"cannot parse the request target {path!r}")
    strict_path = quote(unquote_to_bytes(path), safe="/~")
    # botocore canonicalizes ``params`` itself (quote with safe "-_.~", sorted); an empty list
    # makes it read the raw query from the URL instead.
    decoded = [(_unquote(key), _unquote(value)) for key, value in _query_pairs(claim.query)]
    forms: list[tuple[str, list[tuple[str, str]]]] = [(url, [])]
    if decoded:
        forms.append((url, decoded))
    if strict_path != path:
        strict_url = f"{_ORIGIN}{strict_path}"
        forms += [(f"{strict_url}?{claim.query}" if claim.query else strict_url, [])]
        if decoded:
            forms.append((strict_url, decoded))
    return forms


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
        if name in _QUERY_AUTH_PARAMS:
            if name in params:
                raise AuthError(_QUERY_MALFORMED, 400, f"the query repeats {name}")
            params[name] = _unquote(value)
        if name != "X-Amz-Signature":
            kept.append(f"{key}={value}")
    missing = [name for name in _QUERY_AUTH_PARAMS if name not in params]
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


def _secret(access_key_id: str, credentials: Sequence[Credentials]) -> str:
    for candidate in credentials:
        if candidate.access_key_id == access_key_id:
            return candidate.secret_access_key
    raise AuthError(
        "InvalidAccessKeyId", 403, f"the access key {access_key_id!r} is not known to the gateway"
    )


def _check_time(claim: _Claim, now: datetime, max_skew_s: float) -> None:
    skew_s = (claim.when - now).total_seconds()
    if claim.expires_s is None:
        if abs(skew_s) > max_skew_s:
            raise AuthError(
                "RequestTimeTooSkewed",
                403,
                f"the request time {claim.amz_date} is {abs(skew_s):.0f} s from the server's "
                f"{now.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)}; at most {max_skew_s:.0f} s",
            )
    elif skew_s > max_skew_s:
        raise AuthError("AccessDenied", 403, f"Request is not valid yet: dated {claim.amz_date}")
    elif -skew_s > claim.expires_s:
        raise AuthError(
            "AccessDenied",
            403,
            f"Request has expired: dated {claim.amz_date}, valid {claim.expires_s} s",
        )


def _check_headers(claim: _Claim, headers: dict[str, list[str]]) -> None:
    for name in claim.signed_headers:
        if name not in headers:
            raise AuthError(
                "SignatureDoesNotMatch", 403, f"the signed header {name!r} is not in the request"
            )
    unsigned = sorted(
        name for name in headers if name.startswith("x-amz-") and name not in claim.signed_headers
    )
    if unsigned:
        raise AuthError(
            "AccessDenied",
            403,
            "there were headers present in the request which were not signed: "
            + ", ".join(unsigned),
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
