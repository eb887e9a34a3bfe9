"""SigV4 verification against botocore's own signers: boto3 clients, presigned URLs, raw signers.

Requests are signed for real (a boto3 client whose ``before-send`` hook captures the request
instead of sending it, ``generate_presigned_url``, ``S3SigV4Auth``), then verified as received,
then tampered with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercache.gateway.sigv4 import (
    UNSIGNED_PAYLOAD,
    AuthError,
    Credentials,
    IncomingRequest,
    Verified,
    payload_matches,
    sign_request,
    signing_key,
    verify,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
KEY = Credentials("AKIDGATEWAY", "gateway/secret+key")
OTHER = Credentials("AKIDOTHER", "another-secret")
CREDENTIALS = (OTHER, KEY)
REGION = "eu-west-3"
ENDPOINT = "http://gateway.test:9000"
KEYS = [
    "plain.parquet",
    "a b/ü+=,;.parquet",
    "dir/~tilde!$&'()*@:.bin",
    "日本語/emoji😀.txt",
    "percent%20literal+plus",
    "double//slash/./dot/../x",
]


class Captured(Exception):
    """Raised by the ``before-send`` hook: the signed request, never sent."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **kwargs: Any) -> None:
    raise Captured(request)


def make_client(endpoint: str = ENDPOINT, region: str = REGION, key: Credentials = KEY) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    client.meta.events.register("before-send.s3", _capture)
    return client


@pytest.fixture(scope="module")
def s3() -> Any:
    return make_client()


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    """Make botocore sign at ``at``."""
    naive = at.astimezone(UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        yield


def sent(call: Callable[[], object], at: datetime = NOW) -> Any:
    """The request a boto3 call would have sent."""
    with clock(at), pytest.raises(Captured) as captured:
        call()
    return captured.value.request


def incoming(prepared: Any) -> IncomingRequest:
    """What a server receives for a prepared botocore request (the HTTP client adds Host)."""
    parts = urlsplit(prepared.url)
    headers = [("Host", parts.netloc)]
    for name, value in prepared.headers.items():
        headers.append((name, value.decode("latin-1") if isinstance(value, bytes) else value))
    return IncomingRequest(prepared.method, parts.path, parts.query, headers)


def presigned(url: str, method: str = "GET") -> IncomingRequest:
    parts = urlsplit(url)
    return IncomingRequest(method, parts.path, parts.query, [("Host", parts.netloc)])


def raw_signed(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]] = (),
    *,
    params: dict[str, str] | None = None,
    body: bytes = b"",
    at: datetime = NOW,
) -> IncomingRequest:
    """Sign with ``S3SigV4Auth`` directly; repeated headers kept, params sent as botocore sends
    them (``urlencode``)."""
    request = AWSRequest(method=method, url=url, data=body, params=params or {})
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    auth = S3SigV4Auth(BotocoreCredentials(KEY.access_key_id, KEY.secret_access_key), "s3", REGION)
    with clock(at):
        auth.add_auth(request)
    parts = urlsplit(request.prepare().url)
    return IncomingRequest(
        method,
        parts.path,
        parts.query,
        [("Host", parts.netloc), *request.headers.items()],
    )


def refused(
    request: IncomingRequest,
    code: str,
    status: int,
    *,
    credentials: Sequence[Credentials] = CREDENTIALS,
    now: datetime = NOW,
) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify(request, credentials, now=now)
    assert (info.value.code, info.value.status) == (code, status), info.value.message
    return info.value


def with_headers(
    request: IncomingRequest,
    *,
    drop: Sequence[str] = (),
    replace: dict[str, str] | None = None,
    add: Sequence[tuple[str, str]] = (),
) -> IncomingRequest:
    replace = {name.lower(): value for name, value in (replace or {}).items()}
    headers = []
    for name, value in request.headers:
        if name.lower() in drop:
            continue
        headers.append((name, replace.get(name.lower(), value)))
    return dataclasses.replace(request, headers=[*headers, *add])


def header(request: IncomingRequest, name: str) -> str:
    return next(value for key, value in request.headers if key.lower() == name)


# --- real clients' requests verify --------------------------------------------------------


OPERATIONS: dict[str, Callable[[Any, str], object]] = {
    "get": lambda c, k: c.get_object(Bucket="bucket", Key=k),
    "ranged-get": lambda c, k: c.get_object(Bucket="bucket", Key=k, Range="bytes=0-99"),
    "head": lambda c, k: c.head_object(Bucket="bucket", Key=k),
    "put": lambda c, k: c.put_object(
        Bucket="bucket", Key=k, Body=b"payload", Metadata={"owner": "x  y"}, ContentType="a/b"
    ),
    "list": lambda c, k: c.list_objects_v2(Bucket="bucket", Prefix=k, Delimiter="/"),
    "copy": lambda c, k: c.copy_object(Bucket="bucket", Key=k, CopySource=f"src/{k}"),
    "delete-objects": lambda c, k: c.delete_objects(
        Bucket="bucket", Delete={"Objects": [{"Key": k}]}
    ),
    "multipart-part": lambda c, k: c.upload_part(
        Bucket="bucket", Key=k, UploadId="up/1+2", PartNumber=3, Body=b"part"
    ),
}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_boto3_requests_verify(s3: Any, operation: str, key: str) -> None:
    prepared = sent(lambda: OPERATIONS[operation](s3, key))
    verified = verify(incoming(prepared), CREDENTIALS, now=NOW)
    authorization = prepared.headers["Authorization"].decode()
    assert verified.access_key_id == KEY.access_key_id
    assert verified.seed_signature == authorization.rsplit("Signature=", 1)[1]
    assert verified.scope == f"20260101/{REGION}/s3/aws4_request"
    assert verified.amz_date == "20260101T120000Z"
    assert verified.signing_key == signing_key(KEY.secret_access_key, "20260101", REGION)
    assert verified.payload == prepared.headers["X-Amz-Content-SHA256"].decode()
    assert not verified.streaming


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-2", "a-private-region"])
def test_any_region_verifies(region: str) -> None:
    client = make_client(region=region)
    prepared = sent(lambda: client.get_object(Bucket="bucket", Key="k"))
    assert verify(incoming(prepared), CREDENTIALS, now=NOW).scope == (
        f"20260101/{region}/s3/aws4_request"
    )


def test_the_signed_digest_is_checked_against_the_body(s3: Any) -> None:
    body = b"the object's bytes"
    prepared = sent(lambda: s3.put_object(Bucket="bucket", Key="k", Body=body))
    verified = verify(incoming(prepared), CREDENTIALS, now=NOW)
    assert verified.payload == hashlib.sha256(body).hexdigest()
    assert payload_matches(verified, body)
    assert not payload_matches(verified, body + b"!")


def test_unsigned_and_streaming_payloads_in_payload_matches() -> None:
    verified = Verified("AKID", UNSIGNED_PAYLOAD, "0" * 64, b"k", "s", "20260101T000000Z")
    assert payload_matches(verified, b"anything")
    streaming = dataclasses.replace(verified, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert streaming.streaming
    with pytest.raises(ValueError, match="ChunkedDecoder"):
        payload_matches(streaming, b"")


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("operation", ["get_object", "put_object", "head_object"])
def test_presigned_urls_verify(s3: Any, operation: str, key: str) -> None:
    with clock(NOW):
        url = s3.generate_presigned_url(
            operation, Params={"Bucket": "bucket", "Key": key}, ExpiresIn=3600
        )
    method = {"get_object": "GET", "put_object": "PUT", "head_object": "HEAD"}[operation]
    verified = verify(presigned(url, method), CREDENTIALS, now=NOW + timedelta(seconds=3599))
    assert verified.payload == UNSIGNED_PAYLOAD
    assert verified.seed_signature == dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]


def test_a_date_header_stands_in_for_x_amz_date() -> None:
    request = raw_signed("GET", f"{ENDPOINT}/bucket/k", [("Date", "Thu, 01 Jan 2026 12:00:00 GMT")])
    assert not any(name.lower() == "x-amz-date" for name, _ in request.headers)
    assert verify(request, CREDENTIALS, now=NOW).amz_date == "20260101T120000Z"


def test_repeated_headers_are_signed_joined_in_order() -> None:
    request = raw_signed(
        "GET", f"{ENDPOINT}/bucket/k", [("x-amz-meta-tag", "one"), ("x-amz-meta-tag", "two")]
    )
    assert [value for name, value in request.headers if name == "x-amz-meta-tag"] == [
        "one",
        "two",
    ]
    verify(request, CREDENTIALS, now=NOW)
    swapped = with_headers(
        request,
        drop=["x-amz-meta-tag"],
        add=[("x-amz-meta-tag", "two"), ("x-amz-meta-tag", "one")],
    )
    refused(swapped, "SignatureDoesNotMatch", 403)


def test_header_names_in_any_case_and_values_with_extra_spaces_verify() -> None:
    request = raw_signed("GET", f"{ENDPOINT}/bucket/k", [("x-amz-meta-note", "a  b")])
    shouted = dataclasses.replace(
        request,
        headers=[
            (name.upper(), f"  {value.replace(' ', '   ')}  ")
            if name != "Authorization"
            else (name.lower(), value)
            for name, value in request.headers
        ],
    )
    verify(shouted, CREDENTIALS, now=NOW)


def test_a_target_sent_more_loosely_than_signed_verifies() -> None:
    # botocore signs params strictly encoded but sends them through urlencode (space as "+").
    request = raw_signed(
        "GET", f"{ENDPOINT}/bucket", params={"prefix": "a b/ü", "start-after": "x+y"}
    )
    assert "prefix=a+b%2F%C3%BC" in request.query
    verify(request, CREDENTIALS, now=NOW)
    # A path signed strictly, sent with "=" and "," left as they are.
    strict = raw_signed("GET", f"{ENDPOINT}/bucket/k%3D1%2C2")
    verify(dataclasses.replace(strict, path="/bucket/k=1,2"), CREDENTIALS, now=NOW)
    # ...but a looser spelling of another key is another key.
    refused(dataclasses.replace(strict, path="/bucket/k=1,3"), "SignatureDoesNotMatch", 403)


def test_x_amz_parameters_of_a_header_signed_request_are_plain_parameters() -> None:
    request = raw_signed(
        "GET", f"{ENDPOINT}/bucket", params={"X-Amz-Date": "", "X-Amz-Expires": "5"}
    )
    verify(request, CREDENTIALS, now=NOW)


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("HEAD", "/bkt"), ("GET", "/-/stats")])
def test_sign_request_signs_what_the_gateway_verifies(method: str, path: str) -> None:
    """What ``tiercache doctor --gateway`` sends: verified, by the key it was signed with."""
    headers = sign_request(method, f"{ENDPOINT}{path}", KEY)
    assert headers["Host"] == "gateway.test:9000"
    signed_at = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    request = IncomingRequest(method, path, "", list(headers.items()))
    assert verify(request, CREDENTIALS, now=signed_at).access_key_id == KEY.access_key_id
    wrong = IncomingRequest(method, f"{path}x", "", list(headers.items()))
    with pytest.raises(AuthError, match="does not match"):
        verify(wrong, CREDENTIALS, now=signed_at)


def test_the_signing_key_is_the_one_botocore_signs_with() -> None:
    auth = S3SigV4Auth(BotocoreCredentials("AKID", "secret"), "s3", "us-west-2")
    request = AWSRequest(method="GET", url="http://h/b/k")
    request.context["timestamp"] = "20260101T000000Z"
    string_to_sign = "AWS4-HMAC-SHA256\n20260101T000000Z\nscope\nhash"
    ours = hmac.new(
        signing_key("secret", "20260101", "us-west-2"), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    assert ours == auth.signature(string_to_sign, request)


def test_secrets_stay_out_of_reprs(s3: Any) -> None:
    request = incoming(sent(lambda: s3.get_object(Bucket="b", Key="k")))
    verified = verify(request, CREDENTIALS, now=NOW)
    assert KEY.secret_access_key not in repr(KEY)
    assert repr(verified.signing_key) not in repr(verified)


def test_now_defaults_to_the_clock_and_must_be_aware(s3: Any) -> None:
    request = incoming(sent(lambda: s3.get_object(Bucket="b", Key="k"), at=datetime.now(UTC)))
    verify(request, CREDENTIALS)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(request, CREDENTIALS, now=datetime(2026, 1, 1))


# --- tampering: header form ---------------------------------------------------------------


@pytest.fixture(scope="module")
def put_request(s3: Any) -> IncomingRequest:
    """A signed PUT of a key that needs encoding, with metadata and a query."""
    return incoming(
        sent(
            lambda: s3.upload_part(
                Bucket="bucket",
                Key="a b/ü+=.parquet",
                UploadId="id",
                PartNumber=1,
                Body=b"body",
                SSECustomerAlgorithm="AES256",
                SSECustomerKey="k" * 32,
            )
        )
    )


def test_the_untampered_request_verifies(put_request: IncomingRequest) -> None:
    assert verify(put_request, CREDENTIALS, now=NOW).access_key_id == KEY.access_key_id


def test_the_same_path_spelled_decoded_verifies(put_request: IncomingRequest) -> None:
    # "/bucket/a b/ü+=.parquet" names the same object as the signed "/bucket/a%20b/%C3%BC%2B…"
    decoded = dataclasses.replace(put_request, path=unquote(put_request.path))
    assert decoded.path == "/bucket/a b/ü+=.parquet"
    verify(decoded, CREDENTIALS, now=NOW)


TAMPERED: dict[str, Callable[[IncomingRequest], IncomingRequest]] = {
    "signed header changed": lambda r: with_headers(
        r, replace={"x-amz-server-side-encryption-customer-algorithm": "AES128"}
    ),
    "path changed": lambda r: dataclasses.replace(r, path=r.path.replace("parquet", "csv")),
    "query changed": lambda r: dataclasses.replace(r, query=r.query.replace("=1", "=2")),
    "query added": lambda r: dataclasses.replace(r, query=r.query + "&acl="),
    "method changed": lambda r: dataclasses.replace(r, method="POST"),
    "host changed": lambda r: with_headers(r, replace={"host": "elsewhere.test:9000"}),
    "signed header repeated": lambda r: with_headers(
        r, add=[("x-amz-server-side-encryption-customer-algorithm", "AES256")]
    ),
    "signed header removed": lambda r: with_headers(
        r, drop=["x-amz-server-side-encryption-customer-algorithm"]
    ),
    "signature changed": lambda r: with_headers(
        r, replace={"authorization": _flip_last(header(r, "authorization"))}
    ),
    "date changed within the skew": lambda r: with_headers(
        r, replace={"x-amz-date": "20260101T120100Z"}
    ),
    "payload digest changed": lambda r: with_headers(
        r, replace={"x-amz-content-sha256": hashlib.sha256(b"other").hexdigest()}
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
def test_tampering_breaks_the_signature(put_request: IncomingRequest, tamper: str) -> None:
    refused(TAMPERED[tamper](put_request), "SignatureDoesNotMatch", 403)


def test_a_wrong_secret_breaks_the_signature(put_request: IncomingRequest) -> None:
    wrong = [Credentials(KEY.access_key_id, "not-the-secret")]
    refused(put_request, "SignatureDoesNotMatch", 403, credentials=wrong)


@pytest.mark.parametrize("credentials", [[OTHER], []])
def test_an_unknown_access_key_is_refused(
    put_request: IncomingRequest, credentials: list[Credentials]
) -> None:
    error = refused(put_request, "InvalidAccessKeyId", 403, credentials=credentials)
    assert KEY.access_key_id in error.message


@pytest.mark.parametrize(
    ("offset_s", "accepted"), [(899, True), (-899, True), (901, False), (-901, False)]
)
def test_clock_skew(put_request: IncomingRequest, offset_s: int, accepted: bool) -> None:
    now = NOW + timedelta(seconds=offset_s)
    if accepted:
        verify(put_request, CREDENTIALS, now=now)
    else:
        refused(put_request, "RequestTimeTooSkewed", 403, now=now)


def test_the_allowed_skew_is_a_parameter(put_request: IncomingRequest) -> None:
    with pytest.raises(AuthError, match="RequestTimeTooSkewed"):
        verify(put_request, CREDENTIALS, now=NOW + timedelta(seconds=61), max_skew_s=60)


def _flip_last(text: str) -> str:
    return text[:-1] + ("1" if text[-1] == "0" else "0")


def _authorization(r: IncomingRequest, old: str, new: str) -> IncomingRequest:
    return with_headers(r, replace={"authorization": header(r, "authorization").replace(old, new)})


MALFORMED: dict[str, tuple[Callable[[IncomingRequest], IncomingRequest], str, int, str]] = {
    "no SignedHeaders": (
        lambda r: _authorization(r, "SignedHeaders=", "Signedheaders="),
        "AuthorizationHeaderMalformed",
        400,
        "Signedheaders",
    ),
    "SignedHeaders missing": (
        lambda r: with_headers(
            r,
            replace={
                "authorization": ", ".join(
                    part
                    for part in header(r, "authorization").split(", ")
                    if not part.startswith("SignedHeaders")
                )
            },
        ),
        "AuthorizationHeaderMalformed",
        400,
        "no SignedHeaders",
    ),
    "host not signed": (
        lambda r: _authorization(r, "SignedHeaders=host;", "SignedHeaders="),
        "AuthorizationHeaderMalformed",
        400,
        "must include host",
    ),
    "empty signed header name": (
        lambda r: _authorization(r, "SignedHeaders=host;", "SignedHeaders=host;;"),
        "AuthorizationHeaderMalformed",
        400,
        "empty name",
    ),
    "Credential repeated": (
        lambda r: _authorization(r, "Credential=", "Credential=x, Credential="),
        "AuthorizationHeaderMalformed",
        400,
        "repeats Credential",
    ),
    "service not s3": (
        lambda r: _authorization(r, "/s3/", "/ec2/"),
        "AuthorizationHeaderMalformed",
        400,
        "'ec2'",
    ),
    "credential date not the request date": (
        lambda r: _authorization(r, "/20260101/", "/20251231/"),
        "AuthorizationHeaderMalformed",
        400,
        "20251231",
    ),
    "credential cut short": (
        lambda r: _authorization(r, f"/{REGION}/s3/aws4_request", ""),
        "AuthorizationHeaderMalformed",
        400,
        "credential",
    ),
    "signature not hex": (
        lambda r: _authorization(r, "Signature=", "Signature=zz"),
        "AuthorizationHeaderMalformed",
        400,
        "hex",
    ),
    "signature v2": (
        lambda r: with_headers(r, replace={"authorization": "AWS AKIDGATEWAY:c2lnbmF0dXJl"}),
        "InvalidRequest",
        400,
        "AWS4-HMAC-SHA256",
    ),
    "sigv4a": (
        lambda r: _authorization(r, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
        "InvalidRequest",
        400,
        "AWS4-ECDSA-P256-SHA256",
    ),
    "no authorization": (
        lambda r: with_headers(r, drop=["authorization"]),
        "AccessDenied",
        403,
        "anonymous",
    ),
    "authorization twice": (
        lambda r: with_headers(r, add=[("authorization", header(r, "authorization"))]),
        "InvalidArgument",
        400,
        "authorization header appears 2 times",
    ),
    "x-amz-date twice": (
        lambda r: with_headers(r, add=[("X-Amz-Date", header(r, "x-amz-date"))]),
        "InvalidArgument",
        400,
        "x-amz-date header appears 2 times",
    ),
    "host twice": (
        lambda r: with_headers(r, add=[("host", "gateway.test:9000")]),
        "InvalidArgument",
        400,
        "host header appears 2 times",
    ),
    "x-amz-date unreadable": (
        lambda r: with_headers(r, replace={"x-amz-date": "2026-01-01T12:00:00Z"}),
        "AccessDenied",
        403,
        "x-amz-date",
    ),
    "x-amz-content-sha256 missing": (
        lambda r: with_headers(r, drop=["x-amz-content-sha256"]),
        "MissingSecurityHeader",
        400,
        "x-amz-content-sha256",
    ),
    "x-amz-content-sha256 unknown": (
        lambda r: with_headers(r, replace={"x-amz-content-sha256": "SHA256-PLEASE"}),
        "InvalidArgument",
        400,
        "SHA256-PLEASE",
    ),
    "unsigned x-amz header": (
        lambda r: with_headers(r, add=[("x-amz-meta-injected", "1")]),
        "AccessDenied",
        403,
        "x-amz-meta-injected",
    ),
    "query auth as well": (
        lambda r: dataclasses.replace(r, query=r.query + "&X-Amz-Signature=" + "0" * 64),
        "InvalidArgument",
        400,
        "only one auth mechanism",
    ),
    "fragment in the path": (
        lambda r: dataclasses.replace(r, path=r.path + "#frag"),
        "InvalidURI",
        400,
        "#frag",
    ),
    "path not absolute": (
        lambda r: dataclasses.replace(r, path="bucket/k"),
        "InvalidURI",
        400,
        "bucket/k",
    ),
    "bracket before the path": (
        lambda r: dataclasses.replace(r, path="[" + r.path),
        "InvalidURI",
        400,
        "[/bucket",
    ),
    "lone surrogate in the path": (
        lambda r: dataclasses.replace(r, path="/bucket/\udcff"),
        "InvalidURI",
        400,
        "path",
    ),
    "lone surrogate in a header": (
        lambda r: with_headers(r, add=[("x-amz-meta-bad", "\udcff")]),
        "InvalidArgument",
        400,
        "x-amz-meta-bad",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_name_the_problem(put_request: IncomingRequest, case: str) -> None:
    tamper, code, status, named = MALFORMED[case]
    error = refused(tamper(put_request), code, status)
    assert named in error.message


# --- tampering: presigned URLs ------------------------------------------------------------


@pytest.fixture(scope="module")
def presigned_url(s3: Any) -> str:
    with clock(NOW):
        url: str = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "bucket", "Key": "a b/ü+=.parquet"}, ExpiresIn=3600
        )
    return url


def _query(url: str, edit: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> str:
    """The URL with its query pairs edited, re-encoded the way botocore encodes them."""
    parts = urlsplit(url)
    pairs = edit(parse_qsl(parts.query, keep_blank_values=True))
    return parts._replace(query=urlencode(pairs, quote_via=quote, safe="-_.~")).geturl()


@pytest.mark.parametrize(
    ("after_s", "accepted"), [(0, True), (3600, True), (3601, False), (-899, True), (-901, False)]
)
def test_presigned_lifetime(presigned_url: str, after_s: int, accepted: bool) -> None:
    now = NOW + timedelta(seconds=after_s)
    if accepted:
        verify(presigned(presigned_url), CREDENTIALS, now=now)
    else:
        error = refused(presigned(presigned_url), "AccessDenied", 403, now=now)
        assert ("expired" if after_s > 0 else "not valid yet") in error.message


@pytest.mark.parametrize(("expires_s", "accepted"), [(604_800, True), (604_801, False)])
def test_presigned_urls_live_at_most_a_week(s3: Any, expires_s: int, accepted: bool) -> None:
    with clock(NOW):
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=expires_s
        )
    if accepted:
        verify(presigned(url), CREDENTIALS, now=NOW + timedelta(days=6))
    else:
        error = refused(presigned(url), "AuthorizationQueryParametersError", 400)
        assert "604800" in error.message


def _set(name: str, value: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    return lambda pairs: [(k, value if k == name else v) for k, v in pairs]


PRESIGNED_TAMPERED: dict[str, tuple[Callable[[str], IncomingRequest], str, int]] = {
    "path changed": (
        lambda u: presigned(u.replace("parquet", "csv")),
        "SignatureDoesNotMatch",
        403,
    ),
    "expiry extended": (
        lambda u: presigned(_query(u, _set("X-Amz-Expires", "7200"))),
        "SignatureDoesNotMatch",
        403,
    ),
    "parameter added": (
        lambda u: presigned(_query(u, lambda p: [*p, ("versionId", "1")])),
        "SignatureDoesNotMatch",
        403,
    ),
    "method changed": (lambda u: presigned(u, "DELETE"), "SignatureDoesNotMatch", 403),
    "X-Amz-SignedHeaders missing": (
        lambda u: presigned(_query(u, lambda p: [x for x in p if x[0] != "X-Amz-SignedHeaders"])),
        "AuthorizationQueryParametersError",
        400,
    ),
    "X-Amz-Signature repeated": (
        lambda u: presigned(u + "&X-Amz-Signature=" + "0" * 64),
        "AuthorizationQueryParametersError",
        400,
    ),
    "X-Amz-Expires not a number": (
        lambda u: presigned(_query(u, _set("X-Amz-Expires", "-5"))),
        "AuthorizationQueryParametersError",
        400,
    ),
    "X-Amz-Algorithm other": (
        lambda u: presigned(_query(u, _set("X-Amz-Algorithm", "AWS4-HMAC-SHA1"))),
        "AuthorizationQueryParametersError",
        400,
    ),
    "unknown key": (
        lambda u: presigned(u.replace("AKIDGATEWAY", "AKIDUNKNOWN")),
        "InvalidAccessKeyId",
        403,
    ),
    "unsigned x-amz header": (
        lambda u: with_headers(presigned(u), add=[("x-amz-copy-source", "other/object")]),
        "AccessDenied",
        403,
    ),
    "Authorization header as well": (
        lambda u: with_headers(presigned(u), add=[("Authorization", "AWS4-HMAC-SHA256 x")]),
        "InvalidArgument",
        400,
    ),
}


@pytest.mark.parametrize("case", list(PRESIGNED_TAMPERED))
def test_tampered_presigned_urls_are_refused(presigned_url: str, case: str) -> None:
    tamper, code, status = PRESIGNED_TAMPERED[case]
    refused(tamper(presigned_url), code, status)


# --- properties ---------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=40)  # no lone surrogates: they are not text to sign


@pytest.mark.property
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=texts, prefix=texts, delimiter=texts, token=texts)
def test_random_keys_and_queries_round_trip(
    s3: Any, key: str, prefix: str, delimiter: str, token: str
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: s3.get_object(Bucket="bucket", Key=key, VersionId=token),
        lambda: s3.list_objects_v2(
            Bucket="bucket", Prefix=prefix, Delimiter=delimiter, ContinuationToken=token
        ),
    ]
    for call in calls:
        verify(incoming(sent(call)), CREDENTIALS, now=NOW)
    with clock(NOW):
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": key})
    verify(presigned(url), CREDENTIALS, now=NOW)


@pytest.mark.property
@settings(max_examples=80, deadline=None)
@given(
    params=st.dictionaries(
        # These three make a query a presigned URL's.
        texts.filter(lambda k: k not in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")),
        st.text(),
    )
)
def test_random_params_signed_by_the_raw_signer_verify(params: dict[str, str]) -> None:
    verify(raw_signed("GET", f"{ENDPOINT}/bucket", params=params), CREDENTIALS, now=NOW)


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "get", ""]),
    path=st.text(max_size=30),
    query=st.text(max_size=60),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                ["authorization", "host", "x-amz-date", "x-amz-content-sha256", "date", "x-a"]
            )
            | st.text(max_size=10),
            st.text(max_size=60),
        ),
        max_size=6,
    ),
)
def test_garbage_is_refused_with_auth_errors_only(
    method: str, path: str, query: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(AuthError):
        verify(IncomingRequest(method, path, query, headers), CREDENTIALS, now=NOW)


def _signed_names(request: IncomingRequest) -> set[str]:
    signed = header(request, "authorization").split("SignedHeaders=")[1].split(",")[0]
    return set(signed.split(";"))


@pytest.mark.property
@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 10_000), replacement=st.text(min_size=1, max_size=3), data=st.data())
def test_any_edit_of_a_signed_part_is_refused(
    put_request: IncomingRequest, position: int, replacement: str, data: st.DataObject
) -> None:
    signed = _signed_names(put_request)
    parts = {"path": put_request.path, "query": put_request.query}
    for index, (name, value) in enumerate(put_request.headers):
        if name.lower() in signed:
            parts[f"header {index}"] = value
    which = data.draw(st.sampled_from(sorted(parts)))
    text = parts[which]
    at = position % (len(text) + 1)
    edited = text[:at] + replacement + text[at + len(replacement) :]
    if which == "path":
        request = dataclasses.replace(put_request, path=edited)
    elif which == "query":
        request = dataclasses.replace(put_request, query=edited)
    else:
        index = int(which.split()[1])
        headers = list(put_request.headers)
        headers[index] = (headers[index][0], edited)
        request = dataclasses.replace(put_request, headers=headers)
    try:
        verify(request, CREDENTIALS, now=NOW)
    except AuthError:
        return
    # The edits that survive spell the same request: whitespace a header value's canonical
    # form trims, or the same bytes percent-encoded another way.
    decode = {"path": unquote, "query": unquote_plus}.get(which, lambda t: " ".join(t.split()))
    assert decode(edited) == decode(text), (which, text, edited)


@pytest.mark.property
@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 10_000), replacement=st.text(max_size=4), cut=st.integers(0, 3))
def test_edits_of_the_authorization_header_raise_auth_errors_only(
    put_request: IncomingRequest, position: int, replacement: str, cut: int
) -> None:
    text = header(put_request, "authorization")
    at = position % (len(text) + 1)
    edited = with_headers(
        put_request, replace={"authorization": text[:at] + replacement + text[at + cut :]}
    )
    with suppress(AuthError):  # or it verifies: a few edits are spellings of the same header
        verify(edited, CREDENTIALS, now=NOW)
