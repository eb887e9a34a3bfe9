"""A real botocore S3 client whose HTTP answers are the test's: what boto3 makes of our bytes.

botocore serializes each request as it would for S3 (the test reads it: headers, query, body),
then, instead of sending it, takes the test's status, headers and body and runs its whole
response path on them: the REST-XML parser with the S3 service model, error parsing, and the
S3 handlers (``encoding-type=url`` decoding, GetBucketLocation, 200-with-error detection).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config


class _Raw:
    """The urllib3 response surface botocore reads: ``stream`` for XML, ``read`` for bodies."""

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._body.read()

    def read(self, amt: int | None = None) -> bytes:
        return self._body.read(amt)

    def close(self) -> None:
        self._body.close()


@dataclass
class Sent:
    """One request as botocore would have sent it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Wire:
    """The client, the next answer to give it, and the requests it sent."""

    client: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: list[Sent] = field(default_factory=list)

    def answer(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Set the answer to the next request."""
        self.status, self.body, self.headers = status, body, dict(headers or {})

    @property
    def last(self) -> Sent:
        """The request sent last."""
        return self.sent[-1]

    def _send(self, request: Any, **_: object) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        self.sent.append(
            Sent(
                method=request.method,
                path=url.path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers={
                    k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
                },
                body=body or b"",
            )
        )
        headers = {"x-amz-request-id": "REQ123", **self.headers}
        return AWSResponse(request.url, self.status, headers, _Raw(self.body))


def make_wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Build a client isolated from the machine's AWS configuration, retries off."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    session = botocore.session.get_session()
    client = session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://gateway.test",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    wire = Wire(client)
    client.meta.events.register("before-send.s3", wire._send)
    return wire
