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
is ours. This module is the gateway's only importer of botocore; it also signs the requests
``tiercache doctor --gateway`` sends (:func:`sign_request`), as boto3 would.

Every refusal is an :class:`AuthError` carrying the S3 error code and HTTP status the app sends
back; a malformed request never raises anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials as _BotocoreCredentials

from tiercache.gateway.sigv4_claims import (
    _Claim,
    _header_claim,
    _header_map,
    _query_claim,
    _query_pairs,
    _unquote,
    _utf8,
)
from tiercache.gateway.sigv4_types import (
    _ORIGIN,
    _QUERY_AUTH_SIGNALS,
    _TIMESTAMP_FORMAT,
    ALGORITHM,
    MAX_PRESIGNED_EXPIRES_S,
    STREAMING_PAYLOADS,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    AuthError,
    Credentials,
    IncomingRequest,
    Verified,
)

__all__ = [
    "ALGORITHM",
    "MAX_PRESIGNED_EXPIRES_S",
    "STREAMING_PAYLOADS",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "AuthError",
    "Credentials",
    "IncomingRequest",
    "Verified",
    "payload_matches",
    "sign_request",
    "signing_key",
    "verify",
]


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


def sign_request(
    method: str,
    url: str,
    credentials: Credentials,
    *,
    region: str = "us-east-1",
    body: bytes = b"",
) -> dict[str, str]:
    """The headers of an S3 request to ``url`` with ``body`` signed with SigV4, as boto3 signs
    it (the body's SHA-256 in ``x-amz-content-sha256``).

    ``Host`` is among them (signed, as botocore takes it from the URL): send exactly these.
    """
    host = urlsplit(url).netloc
    request = AWSRequest(method=method, url=url, headers={"Host": host}, data=body)
    signer = S3SigV4Auth(
        _BotocoreCredentials(credentials.access_key_id, credentials.secret_access_key), "s3", region
    )
    signer.add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}


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
