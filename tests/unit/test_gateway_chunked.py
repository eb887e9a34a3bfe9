"""aws-chunked bodies: AWS's published examples, boto3's real uploads, tampering and framing.

The signed-chunk examples are the ones AWS publishes as a test suite ("Signature Calculations
for the Authorization Header: Transferring Payload in Multiple Chunks" and "…: Including
Trailing Headers", Amazon S3 API Reference): their request signatures go through ``verify``
and their chunk signatures through the decoder. boto3 itself only sends the unsigned variant
(``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, over HTTPS), captured from a real ``put_object``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.test_gateway_sigv4 import (
    CREDENTIALS,
    ENDPOINT,
    KEY,
    NOW,
    clock,
    incoming,
    make_client,
    sent,
)
from tiercache.gateway.chunked import ChunkedDecoder, ChunkedError
from tiercache.gateway.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    AuthError,
    Credentials,
    IncomingRequest,
    Verified,
    verify,
)

EMPTY_SHA256 = hashlib.sha256().hexdigest()

# --- AWS's published examples --------------------------------------------------------------

AWS_KEY = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_NOW = datetime(2013, 5, 24, tzinfo=UTC)
AWS_DATA = b"a" * 66560  # 65 KiB of "a", sent as a 64 KiB chunk and a 1 KiB chunk


@dataclasses.dataclass(frozen=True)
class Example:
    """One of AWS's published chunked uploads: the request's signature and the body's."""

    payload: str
    signed_headers: str
    seed: str
    chunks: tuple[str, str, str]
    trailer: bytes


SIGNED_EXAMPLE = Example(
    payload=STREAMING_SIGNED,
    signed_headers="content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class",
    seed="4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    chunks=(
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ),
    trailer=b"",
)
TRAILER_EXAMPLE = Example(
    payload=STREAMING_SIGNED_TRAILER,
    signed_headers="content-encoding;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
    seed="106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    chunks=(
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ),
    trailer=b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
)
EXAMPLES = {"signed": SIGNED_EXAMPLE, "signed-trailer": TRAILER_EXAMPLE}


def example_request(example: Example) -> IncomingRequest:
    headers = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            f"aws4_request,SignedHeaders={example.signed_headers},Signature={example.seed}",
        ),
        ("x-amz-content-sha256", example.payload),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
    ]
    if example.trailer:
        headers.append(("x-amz-trailer", "x-amz-checksum-crc32c"))
    return IncomingRequest("PUT", "/examplebucket/chunkObject.txt", "", headers)


def example_body(example: Example) -> bytes:
    first, second, last = example.chunks
    return (
        f"10000;chunk-signature={first}\r\n".encode()
        + AWS_DATA[:65536]
        + f"\r\n400;chunk-signature={second}\r\n".encode()
        + AWS_DATA[65536:]
        + f"\r\n0;chunk-signature={last}\r\n".encode()
        + example.trailer
        + b"\r\n"
    )


def example_verified(name: str) -> Verified:
    return verify(example_request(EXAMPLES[name]), [AWS_KEY], now=AWS_NOW)


def feed_all(decoder: ChunkedDecoder, body: bytes) -> None:
    decoder.feed(body)
    decoder.finish()


def decode(decoder: ChunkedDecoder, body: bytes, step: int) -> bytes:
    out = b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))
    decoder.finish()
    return out


@pytest.mark.parametrize("step", [1, 7, 4096, 65_600, 1 << 20])
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_documented_examples_decode(name: str, step: int) -> None:
    verified = example_verified(name)
    assert verified.seed_signature == EXAMPLES[name].seed
    decoder = ChunkedDecoder(
        verified,
        decoded_length=66560,
        trailer_names=["x-amz-checksum-crc32c"] if EXAMPLES[name].trailer else (),
    )
    assert decode(decoder, example_body(EXAMPLES[name]), step) == AWS_DATA
    assert decoder.decoded_bytes == 66560
    expected = {"x-amz-checksum-crc32c": "sOO8/Q=="} if EXAMPLES[name].trailer else {}
    assert decoder.trailers == expected


def test_a_signed_chunk_is_released_only_once_its_signature_checks() -> None:
    decoder = ChunkedDecoder(example_verified("signed"), decoded_length=66560)
    body = example_body(SIGNED_EXAMPLE)
    assert decoder.feed(body[:60_000]) == b""
    assert decoder.feed(body[60_000:66_000]) == AWS_DATA[:65536]


def sign_chunks(
    verified: Verified, chunks: Sequence[bytes], trailers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """An aws-chunked body signed the way the AWS documentation spells it out."""

    def sign(string_to_sign: str) -> str:
        return hmac.new(verified.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    head = f"{verified.amz_date}\n{verified.scope}"
    previous = verified.seed_signature
    body = bytearray()
    for chunk in [*chunks, b""]:
        digest = hashlib.sha256(chunk).hexdigest()
        previous = sign(f"AWS4-HMAC-SHA256-PAYLOAD\n{head}\n{previous}\n{EMPTY_SHA256}\n{digest}")
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        body += b"\r\n" if chunk else b""
    if trailers:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        signature = sign(f"AWS4-HMAC-SHA256-TRAILER\n{head}\n{previous}\n{digest}")
        body += "".join(f"{name}:{value}\r\n" for name, value in trailers).encode()
        body += f"x-amz-trailer-signature:{signature}\r\n".encode()
    return bytes(body + b"\r\n")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_test_signer_reproduces_the_documented_bodies(name: str) -> None:
    trailers = [("x-amz-checksum-crc32c", "sOO8/Q==")] if EXAMPLES[name].trailer else []
    body = sign_chunks(example_verified(name), [AWS_DATA[:65536], AWS_DATA[65536:]], trailers)
    assert body == example_body(EXAMPLES[name])


def _swap_chunks(body: bytes) -> bytes:
    first_end = body.index(b"\r\n400;")
    second_end = body.index(b"\r\n0;")
    return body[first_end + 2 : second_end + 2] + body[: first_end + 2] + body[second_end + 2 :]


TAMPERED: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "a data byte": ("signed", lambda b: b[:1000] + b"b" + b[1001:]),
    "chunks swapped": ("signed", _swap_chunks),
    "last chunk signature": ("signed", lambda b: b.replace(b"=b6c6ea8a", b"=b6c6ea8b")),
    "signature in capitals": ("signed", lambda b: b.replace(b"=ad80c730a", b"=AD80C730A")),
    "trailer value": ("signed-trailer", lambda b: b.replace(b"sOO8/Q==", b"sOO8/Q=A")),
    "trailer signature removed": (
        "signed-trailer",
        lambda b: b[: b.index(b"x-amz-trailer-signature")] + b"\r\n",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_signed_bodies_are_refused(case: str) -> None:
    name, tamper = TAMPERED[case]
    body = tamper(example_body(EXAMPLES[name]))
    assert body != example_body(EXAMPLES[name])
    decoder = ChunkedDecoder(example_verified(name), decoded_length=66560)
    with pytest.raises(AuthError) as info:
        decoder.feed(body)
    assert (info.value.code, info.value.status) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ValueError, match="failed before"):
        decoder.feed(b"")


def test_a_chain_seeded_by_another_signature_is_refused() -> None:
    verified = dataclasses.replace(example_verified("signed"), seed_signature="0" * 64)
    with pytest.raises(AuthError, match="chunk 1"):
        ChunkedDecoder(verified, decoded_length=None).feed(example_body(SIGNED_EXAMPLE))


def test_a_signed_body_cut_after_a_chunk_is_incomplete() -> None:
    body = example_body(SIGNED_EXAMPLE)
    decoder = ChunkedDecoder(example_verified("signed"), decoded_length=None)
    assert decoder.feed(body[: body.index(b"\r\n0;chunk-signature") + 2]) == AWS_DATA
    with pytest.raises(ChunkedError) as info:
        decoder.finish()
    assert (info.value.code, info.value.status) == ("IncompleteBody", 400)


# --- bodies signed for real: a botocore-signed streaming request, then its chunks ----------


class StreamingSigner(S3SigV4Auth):  # type: ignore[misc]  # botocore ships no type information
    """botocore's S3 signer announcing a signed aws-chunked payload (boto3 never does)."""

    def payload(self, request: Any) -> str:
        return STREAMING_SIGNED


def streaming_verified(decoded_length: int) -> Verified:
    request = AWSRequest(
        method="PUT",
        url=f"{ENDPOINT}/bucket/chunked%20key",
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(decoded_length),
        },
    )
    signer = StreamingSigner(
        BotocoreCredentials(KEY.access_key_id, KEY.secret_access_key), "s3", "eu-west-3"
    )
    with clock(NOW):
        signer.add_auth(request)
    verified = verify(incoming(request), CREDENTIALS, now=NOW)
    assert verified.payload == STREAMING_SIGNED
    return verified


def split(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        chunks.append(data[at : at + size])
        at += size
    if at < len(data):
        chunks.append(data[at:])
    return chunks


@pytest.mark.property
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=20_000),
    sizes=st.lists(st.integers(1, 9000), max_size=8),
    step=st.integers(1, 30_000),
)
def test_random_signed_bodies_round_trip(data: bytes, sizes: list[int], step: int) -> None:
    verified = streaming_verified(len(data))
    body = sign_chunks(verified, split(data, sizes))
    assert decode(ChunkedDecoder(verified, decoded_length=len(data)), body, step) == data


@pytest.mark.property
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=1, max_size=3000),
    sizes=st.lists(st.integers(1, 1000), max_size=4),
    position=st.integers(0, 1 << 20),
    new=st.integers(0, 255),
)
def test_any_changed_byte_of_a_signed_body_is_refused(
    data: bytes, sizes: list[int], position: int, new: int
) -> None:
    verified = streaming_verified(len(data))
    body = bytearray(sign_chunks(verified, split(data, sizes)))
    at = position % len(body)
    # A hex digit's case is not part of the body's meaning (chunk sizes are hex).
    assume(bytes([new]).lower() != bytes([body[at]]).lower())
    body[at] = new
    decoder = ChunkedDecoder(verified, decoded_length=len(data))
    with pytest.raises((AuthError, ChunkedError)):
        feed_all(decoder, bytes(body))


# --- boto3's own uploads: STREAMING-UNSIGNED-PAYLOAD-TRAILER over HTTPS --------------------


@pytest.fixture(scope="module")
def s3_https() -> Any:
    return make_client(endpoint="https://gateway.test")


def captured_upload(client: Any, body: bytes, **kwargs: Any) -> tuple[IncomingRequest, bytes]:
    prepared = sent(lambda: client.put_object(Bucket="bucket", Key="k", Body=body, **kwargs))
    raw = prepared.body
    return incoming(prepared), raw.read() if hasattr(raw, "read") else raw


def decoder_for(request: IncomingRequest, verified: Verified) -> ChunkedDecoder:
    headers = {name.lower(): value for name, value in request.headers}
    return ChunkedDecoder(
        verified,
        decoded_length=int(headers["x-amz-decoded-content-length"]),
        trailer_names=headers["x-amz-trailer"].split(","),
    )


@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 5, 5 << 19])
@pytest.mark.parametrize("algorithm", [None, "SHA256", "SHA1"])
def test_boto3_uploads_decode(s3_https: Any, size: int, algorithm: str | None) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    kwargs = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    request, body = captured_upload(s3_https, data, **kwargs)
    verified = verify(request, CREDENTIALS, now=NOW)
    assert verified.payload == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    decoder = decoder_for(request, verified)
    assert decode(decoder, body, 50_000) == data
    name = f"x-amz-checksum-{(algorithm or 'crc32').lower()}"
    assert list(decoder.trailers) == [name]


@pytest.mark.parametrize("algorithm", [None, "SHA256"])
def test_a_changed_byte_of_a_boto3_upload_fails_its_checksum(
    s3_https: Any, algorithm: str | None
) -> None:
    kwargs = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    request, body = captured_upload(s3_https, b"0123456789" * 1000, **kwargs)
    decoder = decoder_for(request, verify(request, CREDENTIALS, now=NOW))
    with pytest.raises(ChunkedError) as info:
        decoder.feed(body.replace(b"56789", b"56788", 1))
    assert (info.value.code, info.value.status) == ("BadDigest", 400)
    assert "did not match" in info.value.message


def unsigned_verified() -> Verified:
    return dataclasses.replace(streaming_verified(0), payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")


def botocore_chunked(data: bytes, chunk_size: int) -> bytes:
    """botocore's own aws-chunked encoder, CRC-32 trailer and all."""
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=chunk_size,
    )
    encoded: bytes = wrapper.read()
    return encoded


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), chunk_size=st.integers(1, 2000), step=st.integers(1, 6000))
def test_botocore_encoded_bodies_round_trip(data: bytes, chunk_size: int, step: int) -> None:
    decoder = ChunkedDecoder(
        unsigned_verified(), decoded_length=len(data), trailer_names=["x-amz-checksum-crc32"]
    )
    assert decode(decoder, botocore_chunked(data, chunk_size), step) == data


# --- framing ------------------------------------------------------------------------------

CRC = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
GOOD = f"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:{CRC}\r\n\r\n".encode()

MALFORMED: dict[str, tuple[bytes, dict[str, Any], str, str]] = {
    "size not hex": (b"zz\r\nhello\r\n", {}, "InvalidRequest", "chunk 1's header"),
    "size with 0x": (b"0x5\r\nhello\r\n", {}, "InvalidRequest", "malformed"),
    "size negative": (b"-5\r\nhello\r\n", {}, "InvalidRequest", "malformed"),
    "no CRLF after data": (b"5\r\nhelloX\r\n", {}, "InvalidRequest", "not followed by CRLF"),
    "chunk too large": (b"11\r\n", {"max_chunk_bytes": 16}, "InvalidRequest", "at most 16"),
    "endless header": (b"5" + b" " * 5000, {}, "InvalidRequest", "longer than 4096"),
    "data after the end": (GOOD + b"5\r\n", {}, "InvalidRequest", "goes on after"),
    "longer than declared": (GOOD, {"decoded_length": 4}, "InvalidRequest", "more than"),
    "trailer not name:value": (b"0\r\nnocolon\r\n\r\n", {}, "MalformedTrailerError", "nocolon"),
    "trailer repeated": (
        b"0\r\nx-a:1\r\nx-a:2\r\n\r\n",
        {},
        "MalformedTrailerError",
        "repeated",
    ),
    "endless trailers": (
        b"0\r\n" + b"".join(b"x-h%d:v\r\n" % i for i in range(3000)),
        {},
        "MalformedTrailerError",
        "longer than",
    ),
    "trailer signature, unsigned payload": (
        b"0\r\nx-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n",
        {},
        "MalformedTrailerError",
        "unsigned",
    ),
    "declared trailer missing": (
        b"0\r\n\r\n",
        {"trailer_names": ["x-amz-checksum-crc32"]},
        "MalformedTrailerError",
        "missing: x-amz-checksum-crc32",
    ),
    "undeclared trailer": (
        f"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:{CRC}\r\nx-extra:1\r\n\r\n".encode(),
        {"trailer_names": ["x-amz-checksum-crc32"]},
        "MalformedTrailerError",
        "unexpected: x-extra",
    ),
    "crc32 mismatch": (GOOD.replace(b"hello", b"hellp"), {}, "BadDigest", "x-amz-checksum-crc32"),
    "sha256 mismatch": (
        b"5\r\nhello\r\n0\r\nx-amz-checksum-sha256:"
        + base64.b64encode(hashlib.sha256(b"hellp").digest())
        + b"\r\n\r\n",
        {"trailer_names": ["x-amz-checksum-sha256"]},
        "BadDigest",
        "x-amz-checksum-sha256",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_bodies_name_the_problem(case: str) -> None:
    body, options, code, named = MALFORMED[case]
    decoder = ChunkedDecoder(unsigned_verified(), **{"decoded_length": None, **options})
    with pytest.raises(ChunkedError) as info:
        feed_all(decoder, body)
    assert (info.value.code, info.value.status) == (code, 400)
    assert named in info.value.message


def test_the_well_formed_body_of_the_framing_cases_decodes() -> None:
    decoder = ChunkedDecoder(unsigned_verified(), decoded_length=5)
    assert decode(decoder, GOOD, 3) == b"hello"
    assert decoder.trailers == {"x-amz-checksum-crc32": CRC}


def test_checksums_without_a_standard_library_implementation_are_passed_on() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==\r\n\r\n"
    decoder = ChunkedDecoder(
        unsigned_verified(), decoded_length=5, trailer_names=["x-amz-checksum-crc32c"]
    )
    assert decode(decoder, body, 4) == b"hello"
    assert decoder.trailers == {"x-amz-checksum-crc32c": "AAAAAA=="}


@pytest.mark.parametrize("cut", [1, 3, 9, 10, len(GOOD) - 2, len(GOOD) - 1])
def test_a_cut_body_is_incomplete(cut: int) -> None:
    decoder = ChunkedDecoder(unsigned_verified(), decoded_length=None)
    decoder.feed(GOOD[:cut])
    with pytest.raises(ChunkedError) as info:
        decoder.finish()
    assert info.value.code == "IncompleteBody"
    assert "waiting for" in info.value.message
    assert "failed" not in info.value.message
    with pytest.raises(ValueError, match="failed before"):
        decoder.finish()


def test_a_body_shorter_than_declared_is_incomplete() -> None:
    decoder = ChunkedDecoder(unsigned_verified(), decoded_length=6)
    decoder.feed(GOOD)
    with pytest.raises(ChunkedError, match="x-amz-decoded-content-length is 6"):
        decoder.finish()


def test_trailers_of_a_payload_without_them_are_refused() -> None:
    verified = streaming_verified(0)
    body = sign_chunks(verified, [])[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    with pytest.raises(ChunkedError, match="has none"):
        ChunkedDecoder(verified, decoded_length=0).feed(body)


def test_a_signed_chunk_without_its_signature_is_refused() -> None:
    with pytest.raises(ChunkedError, match="no chunk-signature"):
        ChunkedDecoder(streaming_verified(5), decoded_length=5).feed(b"5\r\nhello\r\n")


def test_only_aws_chunked_payloads_are_decoded() -> None:
    verified = dataclasses.replace(unsigned_verified(), payload="UNSIGNED-PAYLOAD")
    with pytest.raises(ValueError, match="not aws-chunked"):
        ChunkedDecoder(verified, decoded_length=None)
