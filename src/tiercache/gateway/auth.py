"""Who may use the gateway, and what their bodies must match.

With client credentials configured (``TIERCACHE_GATEWAY_ACCESS_KEY_ID`` /
``TIERCACHE_GATEWAY_SECRET_ACCESS_KEY``), every request must carry a valid SigV4 signature
(header or presigned query) by one of them (:mod:`tiercache.gateway.sigv4`), and a body must
match the digest it was signed with; a streaming (``aws-chunked``) body is decoded and each chunk's
signature checked (:mod:`tiercache.gateway.chunked`). Without credentials, the server binds
loopback addresses only and any signature is accepted; streaming bodies are still decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tiercache.gateway.chunked import ChunkedDecoder
from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.sigv4 import (
    STREAMING_UNSIGNED_TRAILER,
    AuthError,
    Credentials,
    IncomingRequest,
    Verified,
    payload_matches,
    verify,
)

__all__ = ["Authenticator", "Credentials", "decode_body"]

_STREAMING = "STREAMING-"
# What decoding an aws-chunked body needs when nobody verified the request: no chunk signature
# is checked (there is no secret to check it with), the framing and checksums are.
_UNVERIFIED = Verified(
    access_key_id="",
    payload=STREAMING_UNSIGNED_TRAILER,
    seed_signature="",
    signing_key=b"",
    scope="",
    amz_date="",
)


class SignedRequest(Protocol):
    """What verifying a request reads of it (gateway.app's ``Request`` has it)."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def header_list(self) -> list[tuple[str, str]]: ...


class Authenticator:
    """Verifies requests against the gateway's client credentials."""

    def __init__(self, credentials: Sequence[Credentials]) -> None:
        if not credentials:
            raise ValueError("an Authenticator needs at least one pair of client credentials")
        self.credentials = list(credentials)

    def __call__(self, request: SignedRequest) -> Verified:
        """The verified signature of ``request``.

        Raises:
            S3Error: The signature is missing, malformed, expired or wrong (403 / 400).
        """
        incoming = IncomingRequest(
            method=request.method,
            path=request.raw_path,
            query=request.query_string,
            headers=request.header_list,
        )
        try:
            return verify(incoming, self.credentials)
        except AuthError as exc:
            raise S3Error(exc.code, exc.status, exc.message) from exc


def decode_body(headers: Mapping[str, str], body: bytes, verified: Any) -> bytes:
    """The payload of a request body: decoded from ``aws-chunked`` framing when it is streamed
    (chunk signatures checked when the request was verified), checked against its signed digest
    otherwise.

    Raises:
        S3Error: A chunk signature or the digest does not match, or the framing is broken.
    """
    payload = headers.get("x-amz-content-sha256", "")
    streamed = payload.startswith(_STREAMING) or "aws-chunked" in headers.get(
        "content-encoding", ""
    )
    declared = headers.get("x-amz-decoded-content-length")
    length = int(declared) if declared is not None and declared.isdigit() else None
    trailers = [n for n in headers.get("x-amz-trailer", "").split(",") if n.strip()]
    try:
        if streamed:
            if not isinstance(verified, Verified):  # no credentials: the framing only
                verified = _UNVERIFIED
            decoder = ChunkedDecoder(verified, decoded_length=length, trailer_names=trailers)
            payload_bytes = decoder.feed(body)
            decoder.finish()
            return payload_bytes
    except AuthError as exc:
        raise S3Error(exc.code, exc.status, exc.message) from exc
    except ValueError as exc:
        raise S3Error(
            getattr(exc, "code", "IncompleteBody"), int(getattr(exc, "status", 400)), str(exc)
        ) from exc
    if isinstance(verified, Verified) and not payload_matches(verified, body):
        raise S3Error(
            "XAmzContentSHA256Mismatch", 400, "the body does not match x-amz-content-sha256"
        )
    return body
