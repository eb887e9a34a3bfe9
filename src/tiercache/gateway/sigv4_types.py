"""The names of SigV4 verification: payload kinds, the requests and what verifying proves.

Split from :mod:`tiercache.gateway.sigv4` so that parsing a request's claim
(:mod:`tiercache.gateway.sigv4_claims`) and checking it share them without a circle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

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
#: The query parameters of a SigV4 presigned URL (the routing also knows them).
QUERY_AUTH_PARAMS: Final = (
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
