"""The gateway with client credentials: SigV4 verified on every request, bodies held to what
was signed, against a real S3 server.

boto3 signs differently over HTTP and HTTPS: over HTTP (how clients reach the gateway) it signs
the body's SHA-256 and sends the CRC-32 in a header; over HTTPS it streams the body aws-chunked
with ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` and the CRC-32 as a trailer. Other SDKs send
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (every chunk signed). Uploads are tested in all three.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.helpers import letters
from tiercache import Settings, TieredFileSystem
from tiercache.errors import ConfigError
from tiercache.gateway import Gateway, start
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration

KEY_ID = "engine"
SECRET = "engine-secret-0123456789abcdef"
REGION = "us-east-1"
BLOCK = 256 << 10


def _fs(s3_server: S3Server, **settings: Any) -> TieredFileSystem:
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(), "skip_instance_cache": True},
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20, **settings),
        skip_instance_cache=True,
    )


@pytest.fixture
def secured(s3_server: S3Server) -> Iterator[Gateway]:
    """A gateway that verifies every request against ``KEY_ID`` / ``SECRET``."""
    fs = _fs(s3_server, gateway_access_key_id=KEY_ID, gateway_secret_access_key=SECRET)
    with start(fs) as running:
        yield running


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"auth-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


def _client(gateway: Gateway, key: str = KEY_ID, secret: str = SECRET, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, **config),
    )


def _error(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _fetch(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    # urllib would label a body form-urlencoded, which the test S3 server (moto) parses away.
    headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_handle_hands_out_the_configured_credentials(secured: Gateway) -> None:
    assert secured.s3fs_options()["key"] == KEY_ID
    assert secured.s3fs_options()["secret"] == SECRET
    options = secured.storage_options()
    assert (options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"]) == (KEY_ID, SECRET)


def test_signed_reads_writes_and_listings(secured: Gateway, bucket: str) -> None:
    client = _client(secured)
    data = letters(2 * BLOCK + 99)
    client.put_object(Bucket=bucket, Key="t/a.bin", Body=data)
    assert client.get_object(Bucket=bucket, Key="t/a.bin")["Body"].read() == data
    ranged = client.get_object(Bucket=bucket, Key="t/a.bin", Range="bytes=100-299")
    assert ranged["Body"].read() == data[100:300]
    assert client.head_object(Bucket=bucket, Key="t/a.bin")["ContentLength"] == len(data)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="t/")
    assert [o["Key"] for o in listed["Contents"]] == ["t/a.bin"]
    client.delete_object(Bucket=bucket, Key="t/a.bin")
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


# --- uploads in every body shape ------------------------------------------------------------


def _trailer_checksums(params: dict[str, Any], **_: Any) -> None:
    """Make botocore stream the body as it does over HTTPS: aws-chunked, CRC-32 trailer."""
    algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict):
        algorithm["in"] = "trailer"


def _boto3_uploads(gateway: Gateway, *, trailer: bool) -> tuple[Any, list[dict[str, str]]]:
    """A client whose upload requests' headers are recorded as sent."""
    client = _client(gateway)
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    for operation in ("PutObject", "UploadPart"):
        if trailer:
            client.meta.events.register(f"before-call.s3.{operation}", _trailer_checksums)
        client.meta.events.register(f"before-send.s3.{operation}", record)
    return client, sent


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _signing_key(date: str) -> bytes:
    key = f"AWS4{SECRET}".encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class _StreamingSigner(S3SigV4Auth):  # type: ignore[misc]  # botocore ships no type information
    """botocore's signer announcing a signed aws-chunked body (the AWS SDKs for Java, Go...)."""

    def payload(self, request: Any) -> str:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def _put_signed_chunks(
    url: str, data: bytes, chunk_bytes: int = 64 << 10, *, tamper: bool = False
) -> tuple[int, bytes, dict[str, str]]:
    """PUT ``data`` as ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, every chunk signed (AWS docs)."""
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
        },
    )
    _StreamingSigner(Credentials(KEY_ID, SECRET), "s3", REGION).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key = _signing_key(amz_date[:8])
    previous = headers["Authorization"].rpartition("Signature=")[2]
    empty = hashlib.sha256().hexdigest()
    body = bytearray()
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    for chunk in [*chunks, b""]:
        digest = hashlib.sha256(chunk).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{digest}"
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        body += b"\r\n" if chunk else b""
    body += b"\r\n"
    if tamper:  # one byte of the first chunk's data, after its header line
        at = body.index(b"\r\n") + 10
        body[at] ^= 1
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        connection.request("PUT", target, body=bytes(body), headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read(), {k.lower(): v for k, v in answer.getheaders()}
    finally:
        connection.close()


@pytest.mark.parametrize("shape", ["http-signed-sha256", "https-unsigned-trailer"])
def test_boto3_uploads_store_the_right_bytes(secured: Gateway, bucket: str, shape: str) -> None:
    client, sent = _boto3_uploads(secured, trailer=shape == "https-unsigned-trailer")
    small = letters(300_001)
    client.put_object(Bucket=bucket, Key="small", Body=small)
    data = letters((5 << 20) + (1 << 20) + 7)
    upload = client.create_multipart_upload(Bucket=bucket, Key="big")
    parts = []
    for number, offset in enumerate(range(0, len(data), 5 << 20), start=1):
        answer = client.upload_part(
            Bucket=bucket,
            Key="big",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data[offset : offset + (5 << 20)],
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert client.get_object(Bucket=bucket, Key="small")["Body"].read() == small
    assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == data
    # What botocore sent: one PutObject and two UploadPart requests.
    assert len(sent) == 3
    for headers in sent:
        if shape == "http-signed-sha256":
            assert len(headers["x-amz-content-sha256"]) == 64  # the body's SHA-256, signed
            assert "x-amz-checksum-crc32" in headers
            assert "aws-chunked" not in headers.get("content-encoding", "")
        else:
            assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
            assert headers["content-encoding"] == "aws-chunked"
            assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"


def test_signed_chunk_uploads_store_the_right_bytes(secured: Gateway, bucket: str) -> None:
    client = _client(secured)
    small = letters(200_003)
    status, body, _ = _put_signed_chunks(f"{secured.endpoint_url}/{bucket}/chunked", small)
    assert status == 200, body
    assert client.get_object(Bucket=bucket, Key="chunked")["Body"].read() == small
    data = letters((5 << 20) + 12_345)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), 5 << 20), start=1):
        url = (
            f"{secured.endpoint_url}/{bucket}/big?partNumber={number}"
            f"&uploadId={quote(upload_id, safe='')}"
        )
        status, body, headers = _put_signed_chunks(url, data[offset : offset + (5 << 20)])
        assert status == 200, body
        parts.append({"PartNumber": number, "ETag": headers["etag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == data


def test_a_changed_byte_of_a_signed_chunk_is_refused(secured: Gateway, bucket: str) -> None:
    url = f"{secured.endpoint_url}/{bucket}/tampered"
    status, body, _ = _put_signed_chunks(url, letters(100_000), tamper=True)
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    assert _error(lambda: _client(secured).head_object(Bucket=bucket, Key="tampered"))[0] == 404


def test_a_body_that_is_not_the_signed_one_is_refused(secured: Gateway, bucket: str) -> None:
    client = _client(secured)

    def tamper(request: Any, **_: Any) -> None:  # after signing, before sending
        body = request.body if isinstance(request.body, bytes) else request.body.read()
        request.body = bytes([body[0] ^ 1]) + body[1:]

    client.meta.events.register("before-send.s3.PutObject", tamper)
    assert _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"signed bytes")) == (
        400,
        "XAmzContentSHA256Mismatch",
    )
    assert _error(lambda: _client(secured).head_object(Bucket=bucket, Key="k"))[0] == 404


# --- refusals -------------------------------------------------------------------------------

OPERATIONS = {
    "GetObject": lambda c, b: c.get_object(Bucket=b, Key="there"),
    "PutObject": lambda c, b: c.put_object(Bucket=b, Key="new", Body=b"x"),
    "ListObjectsV2": lambda c, b: c.list_objects_v2(Bucket=b),
}


REFUSALS = {
    "wrong secret": (403, "SignatureDoesNotMatch"),
    "unknown key": (403, "InvalidAccessKeyId"),
    "no signature": (403, "AccessDenied"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("who", list(REFUSALS))
def test_refused_requests(
    s3_server: S3Server, secured: Gateway, bucket: str, operation: str, who: str
) -> None:
    s3_server.put_object(bucket, "there", b"secret bytes")
    if who == "wrong secret":
        client = _client(secured, secret="not-the-secret")
    elif who == "unknown key":
        client = _client(secured, key="stranger")
    else:
        client = _client(secured, signature_version=UNSIGNED)
    assert _error(lambda: OPERATIONS[operation](client, bucket)) == REFUSALS[who]
    listed = _client(secured).list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["there"]  # nothing was written


def test_the_health_check_needs_no_signature(secured: Gateway) -> None:
    assert _fetch(f"{secured.endpoint_url}/-/health") == (200, b"ok\n")


def test_presigned_urls(s3_server: S3Server, secured: Gateway, bucket: str) -> None:
    s3_server.put_object(bucket, "shared", b"presigned bytes")
    client = _client(secured, signature_version="s3v4")  # boto3 presigns SigV2 otherwise
    get = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in get
    assert _fetch(get) == (200, b"presigned bytes")
    put = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploaded"}, ExpiresIn=300
    )
    assert _fetch(put, "PUT", b"put by URL")[0] == 200
    assert client.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"put by URL"
    forged = get.replace("/shared?", "/uploaded?")
    status, body = _fetch(forged)  # the signature was for another key
    assert (status, b"<Code>SignatureDoesNotMatch</Code>" in body) == (403, True)


def test_a_sigv2_presigned_url_is_refused(
    s3_server: S3Server, secured: Gateway, bucket: str
) -> None:
    s3_server.put_object(bucket, "shared", b"presigned bytes")
    url = _client(secured).generate_presigned_url(  # boto3's default for S3: SigV2
        "get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in url
    assert _fetch(url)[0] == 403


def test_an_expired_presigned_url_is_refused(
    s3_server: S3Server, secured: Gateway, bucket: str
) -> None:
    s3_server.put_object(bucket, "shared", b"presigned bytes")
    url = _client(secured, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=1
    )
    time.sleep(2.1)
    status, body = _fetch(url)
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body
    assert b"expired" in body


# --- where it may listen --------------------------------------------------------------------


def test_without_credentials_it_listens_on_loopback_only(s3_server: S3Server) -> None:
    with pytest.raises(ConfigError) as info:
        start(_fs(s3_server), listen="0.0.0.0:0")
    message = str(info.value)
    assert "did not start" in message  # the child's error, surfaced by the parent
    assert "TIERCACHE_GATEWAY_ACCESS_KEY_ID" in message
    assert "TIERCACHE_GATEWAY_SECRET_ACCESS_KEY" in message


def test_with_credentials_it_listens_on_every_address(s3_server: S3Server, bucket: str) -> None:
    s3_server.put_object(bucket, "k", b"from any address")
    fs = _fs(s3_server, gateway_access_key_id=KEY_ID, gateway_secret_access_key=SECRET)
    with start(fs, listen="0.0.0.0:0") as running:
        assert running.host == "0.0.0.0"
        assert running.endpoint_url == f"http://127.0.0.1:{running.port}"  # a reachable address
        body = _client(running).get_object(Bucket=bucket, Key="k")["Body"].read()
        assert body == b"from any address"
