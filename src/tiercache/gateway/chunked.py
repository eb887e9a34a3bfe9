"""Decode aws-chunked request bodies incrementally, verifying what the client signed.

An aws-chunked body (``Content-Encoding: aws-chunked``) is a run of chunks, a last empty chunk,
optional trailing headers and an empty line::

    <hex size>[;chunk-signature=<sig>]\\r\\n<size bytes>\\r\\n     one per chunk
    0[;chunk-signature=<sig>]\\r\\n                                the last chunk
    x-amz-checksum-crc32:<base64>\\r\\n                            trailers (``-TRAILER`` variants)
    x-amz-trailer-signature:<sig>\\r\\n                            (signed ``-TRAILER`` only)
    \\r\\n

With a signed payload (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``) every chunk carries the
signature of its data chained to the previous signature, the first seeded by the request
signature, so chunks can be neither altered, dropped nor reordered; a chunk's bytes are handed
out only once its signature checked. With ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what boto3
sends over HTTPS) the trailing checksum is the body's only integrity check.

Errors::

    AuthError (sigv4)            SignatureDoesNotMatch, 403: a chunk or trailer signature is wrong
    ChunkedError(ValueError)     400, the body is refused:
        IncompleteBody               it ended early, or is shorter than x-amz-decoded-content-length
        InvalidRequest               its framing is malformed, a chunk is too large, or it is longer
        BadDigest                    a trailing checksum does not match the body
        MalformedTrailerError        its trailers are malformed, missing or unexpected
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

from tiercache.gateway.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    AuthError,
    Verified,
)

_EMPTY_SHA256: Final = hashlib.sha256().hexdigest()
# A chunk header is "<hex size>;chunk-signature=<64 hex>" (~90 bytes); room for extensions.
_MAX_LINE_BYTES: Final = 4096
_MAX_TRAILER_BYTES: Final = 16 << 10
_SIZE_LINE = re.compile(rb"([0-9a-fA-F]{1,16})(;.*)?")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TRAILER_SIGNATURE: Final = "x-amz-trailer-signature"


class ChunkedError(ValueError):
    """An aws-chunked body is refused; carries the S3 error ``code`` and HTTP ``status``."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    """zlib's CRC-32 behind hashlib's interface; S3 sends it as 4 big-endian bytes."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


# The checksums the standard library can compute. CRC-32C, CRC-64/NVME and the xxhashes need
# awscrt: their trailers are parsed and handed to the app, not checked.
_CHECKSUMS: Final[dict[str, Callable[[], _Hash]]] = {
    "x-amz-checksum-crc32": _Crc32,
    "x-amz-checksum-sha1": hashlib.sha1,
    "x-amz-checksum-sha256": hashlib.sha256,
    "x-amz-checksum-sha512": hashlib.sha512,
}


class _State(enum.Enum):
    SIZE = "chunk header"
    DATA = "chunk data"
    DATA_END = "CRLF after chunk data"
    TRAILERS = "trailers"
    DONE = "done"
    FAILED = "failed"


class ChunkedDecoder:
    """Incremental decoder of an aws-chunked body; verifies each chunk's signature when the
    payload is ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` (the chain seeded by the
    request signature), the trailer signature, and the trailing checksums it can compute.

    Feed it the body as it arrives; :meth:`finish` after the last byte. Nothing is final
    before :meth:`finish` returns (unsigned chunks are handed out as they arrive, their checksum
    checked at the end), so the app commits the object only then. After an error the decoder
    refuses further use.
    """

    def __init__(
        self,
        verified: Verified,
        *,
        decoded_length: int | None,
        max_chunk_bytes: int = 16 << 20,
        trailer_names: Sequence[str] = (),
    ) -> None:
        """Prepare to decode the body of a verified request.

        Args:
            verified: what :func:`~tiercache.gateway.sigv4.verify` returned for the request.
            decoded_length: the ``x-amz-decoded-content-length`` header, if sent: the body must
                decode to exactly this many bytes.
            max_chunk_bytes: the largest chunk accepted (a signed chunk is held whole until its
                signature checks). Default 16 MiB.
            trailer_names: the ``x-amz-trailer`` header's names, if sent: each must arrive, and
                no other. Checksums are computed for these (CRC-32 when none is declared, the
                SDKs' default).

        Raises:
            ValueError: the payload is not aws-chunked.
        """
        if not verified.streaming:
            raise ValueError(f"payload {verified.payload!r} is not aws-chunked")
        self._verified = verified
        self._signed = verified.payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        self._trailers_allowed = verified.payload.endswith("-TRAILER")
        self._decoded_length = decoded_length
        self._max_chunk_bytes = max_chunk_bytes
        self._trailer_names = tuple(name.strip().lower() for name in trailer_names if name.strip())
        self._checksums: dict[str, _Hash] = {
            name: _CHECKSUMS[name]()
            for name in self._trailer_names or ("x-amz-checksum-crc32",)
            if name in _CHECKSUMS
        }
        self._buffer = bytearray()
        self._state = _State.SIZE
        self._previous = verified.seed_signature
        self._chunks = 0
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk = bytearray()
        self._chunk_hash = hashlib.sha256()
        self._decoded = 0
        self._trailer_bytes = 0
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None

    @property
    def trailers(self) -> Mapping[str, str]:
        """The trailing headers received (lowercase names), the trailer signature excluded."""
        return dict(self._trailers)

    @property
    def decoded_bytes(self) -> int:
        """How many payload bytes the body has decoded to so far."""
        return self._decoded

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return the payload bytes they complete.

        Raises:
            AuthError: a chunk or trailer signature does not match.
            ChunkedError: the body is malformed, too long, or fails a checksum.
        """
        if self._state is _State.FAILED:
            raise ValueError("the decoder failed before; it cannot be fed")
        self._buffer += data
        out: list[bytes] = []
        try:
            while self._step(out):
                pass
        except (AuthError, ChunkedError):
            self._state = _State.FAILED
            raise
        return b"".join(out)

    def finish(self) -> None:
        """Check that the body was complete, and as long as declared.

        Raises:
            ChunkedError: the body ended before its last chunk and trailers, or decoded to
                fewer bytes than ``decoded_length``.
        """
        if self._state is _State.FAILED:
            raise ValueError("the decoder failed before; it cannot be finished")
        if self._state is not _State.DONE:
            waiting_for, self._state = self._state, _State.FAILED
            raise ChunkedError(
                "IncompleteBody",
                f"the body ended early, waiting for {waiting_for.value} after {self._chunks} "
                f"chunks ({self._decoded} bytes)",
            )
        if self._decoded_length is not None and self._decoded != self._decoded_length:
            self._state = _State.FAILED
            raise ChunkedError(
                "IncompleteBody",
                f"the body decoded to {self._decoded} bytes; x-amz-decoded-content-length "
                f"is {self._decoded_length}",
            )

    def _step(self, out: list[bytes]) -> bool:
        """Consume what the buffer holds for the current state; False when it needs more."""
        if self._state is _State.SIZE:
            return self._chunk_header()
        if self._state is _State.DATA:
            return self._chunk_data(out)
        if self._state is _State.DATA_END:
            return self._end_data()
        if self._state is _State.TRAILERS:
            return self._trailer_line()
        if self._buffer:
            raise ChunkedError("InvalidRequest", "the body goes on after its last chunk")
        return False

    def _chunk_header(self) -> bool:
        line = self._line(_MAX_LINE_BYTES)
        if line is None:
            return False
        self._start_chunk(line)
        return True

    def _chunk_data(self, out: list[bytes]) -> bool:
        if not self._buffer:
            return False
        self._take_data(out)
        return True

    def _trailer_line(self) -> bool:
        line = self._line(_MAX_TRAILER_BYTES - self._trailer_bytes)
        if line is None:
            return False
        self._trailer_bytes += len(line) + 2
        if line:
            self._add_trailer(line)
        else:
            self._end_trailers()
        return True

    def _end_data(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer[:2] != b"\r\n":
            raise ChunkedError(
                "InvalidRequest", f"chunk {self._chunks}'s data is not followed by CRLF"
            )
        del self._buffer[:2]
        self._state = _State.SIZE
        return True

    def _line(self, limit: int) -> bytes | None:
        end = self._buffer.find(b"\r\n", 0, limit + 2)
        if end < 0:
            if len(self._buffer) <= limit:
                return None
            if self._state is _State.TRAILERS:
                raise ChunkedError(
                    "MalformedTrailerError",
                    f"the trailers are longer than {_MAX_TRAILER_BYTES} bytes",
                )
            raise ChunkedError(
                "InvalidRequest", f"chunk {self._chunks + 1}'s header is longer than {limit} bytes"
            )
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        self._chunks += 1
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise ChunkedError(
                "InvalidRequest", f"chunk {self._chunks}'s header {line[:80]!r} is malformed"
            )
        size = int(match[1], 16)
        if size > self._max_chunk_bytes:
            raise ChunkedError(
                "InvalidRequest",
                f"chunk {self._chunks} is {size} bytes; at most {self._max_chunk_bytes}",
            )
        if self._decoded_length is not None and self._decoded + size > self._decoded_length:
            raise ChunkedError(
                "InvalidRequest",
                f"the body decodes to more than x-amz-decoded-content-length "
                f"({self._decoded_length}) bytes",
            )
        if self._signed:
            self._chunk_signature = self._extension_signature(match[2] or b"")
        if size == 0:
            if self._signed:
                self._check_chunk(_EMPTY_SHA256)
            self._state = _State.TRAILERS
        else:
            self._remaining = size
            self._state = _State.DATA

    def _extension_signature(self, extensions: bytes) -> str:
        for extension in extensions.split(b";"):
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                return value.strip().decode("ascii", "replace")
        raise ChunkedError(
            "InvalidRequest", f"chunk {self._chunks} of a signed payload has no chunk-signature"
        )

    def _take_data(self, out: list[bytes]) -> None:
        take = min(self._remaining, len(self._buffer))
        piece = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._remaining -= take
        self._decoded += take
        for checksum in self._checksums.values():
            checksum.update(piece)
        if self._signed:
            self._chunk += piece
            self._chunk_hash.update(piece)
        else:
            out.append(piece)
        if self._remaining == 0:
            if self._signed:
                self._check_chunk(self._chunk_hash.hexdigest())
                out.append(bytes(self._chunk))
                self._chunk.clear()
                self._chunk_hash = hashlib.sha256()
            self._state = _State.DATA_END

    def _check_chunk(self, data_sha256: str) -> None:
        self._check_signature(
            "AWS4-HMAC-SHA256-PAYLOAD",
            f"{self._previous}\n{_EMPTY_SHA256}\n{data_sha256}",
            self._chunk_signature,
            f"chunk {self._chunks}",
        )

    def _check_signature(self, algorithm: str, tail: str, claimed: str, what: str) -> None:
        """Check one link of the chain: HMAC of algorithm, date, scope, previous, hashes."""
        v = self._verified
        string_to_sign = f"{algorithm}\n{v.amz_date}\n{v.scope}\n{tail}"
        expected = hmac.new(v.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not (_SIGNATURE.fullmatch(claimed) and hmac.compare_digest(expected, claimed)):
            raise AuthError(
                "SignatureDoesNotMatch", 403, f"the signature of {what} of the body does not match"
            )
        self._previous = expected

    def _add_trailer(self, line: bytes) -> None:
        name, sep, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if not sep or not name:
            raise ChunkedError("MalformedTrailerError", f"trailer {line[:80]!r} is not name:value")
        if not self._trailers_allowed:
            raise ChunkedError(
                "MalformedTrailerError",
                f"trailer {name!r} sent with payload {self._verified.payload}, which has none",
            )
        repeated_signature = name == _TRAILER_SIGNATURE and self._trailer_signature is not None
        if name in self._trailers or repeated_signature:
            raise ChunkedError("MalformedTrailerError", f"trailer {name!r} is repeated")
        if name == _TRAILER_SIGNATURE:
            if not self._signed:
                raise ChunkedError(
                    "MalformedTrailerError", "x-amz-trailer-signature in an unsigned payload"
                )
            self._trailer_signature = value
        elif self._trailer_signature is not None:
            raise ChunkedError("MalformedTrailerError", f"trailer {name!r} after its signature")
        else:
            self._trailers[name] = value

    def _end_trailers(self) -> None:
        if self._signed and (self._trailers or self._trailer_signature is not None):
            canonical = "".join(f"{name}:{value}\n" for name, value in self._trailers.items())
            self._check_signature(
                "AWS4-HMAC-SHA256-TRAILER",
                f"{self._previous}\n{hashlib.sha256(canonical.encode('latin-1')).hexdigest()}",
                self._trailer_signature or "",
                "the trailers",
            )
        if self._trailer_names:
            missing = sorted(set(self._trailer_names) - set(self._trailers))
            extra = sorted(set(self._trailers) - set(self._trailer_names))
            if missing or extra:
                raise ChunkedError(
                    "MalformedTrailerError",
                    f"x-amz-trailer declared {', '.join(self._trailer_names)}; "
                    f"missing: {', '.join(missing) or 'none'}, unexpected: "
                    f"{', '.join(extra) or 'none'}",
                )
        for name, checksum in self._checksums.items():
            if name in self._trailers:
                computed = base64.b64encode(checksum.digest()).decode()
                if computed != self._trailers[name]:
                    raise ChunkedError(
                        "BadDigest",
                        f"the {name} you specified ({self._trailers[name]}) did not match the "
                        f"body's ({computed})",
                    )
        self._state = _State.DONE
