"""Framing of values stored outside the process: a header and a checksum on every block.

Nothing read from the disk or Redis is trusted before its header matches the key it was asked
for and its checksum matches its bytes (DESIGN section 5)::

    offset size  field
    0      4     magic        b"TCB1"
    4      1     algorithm    1 = xxh3_64 (the ``xxhash`` package), 2 = crc32 (zlib, stdlib)
    5      1     flags        bit 0: an HMAC-SHA256 tag follows the payload
    6      2     reserved     zero
    8      32    key digest   sha256 of the block key (target, path, version, block size, index)
    40     8     length       payload bytes, unsigned big-endian
    48     8     checksum     of the payload, unsigned big-endian
    56     ...   payload
    56+len 32    tag          HMAC-SHA256(key, header + payload), only with flag bit 0

With an HMAC key (``TIERCACHE_REDIS_HMAC_KEY``), a reader accepts only values whose tag it can
verify: write access to the store is then not enough to poison reads.

xxh3 checksums a 1 MiB block in tens of microseconds; zlib's crc32 takes ~250 µs on the
reference machine, which would dominate a warm disk read. ``xxhash`` is part of the ``disk``
extra (and of ``test``); without it, blocks are framed with crc32. A value framed with an
algorithm this process cannot compute is a miss, never trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Callable

from tiercache.errors import IntegrityError
from tiercache.protocol import BlockKey

MAGIC = b"TCB1"
_HEADER = struct.Struct(">4sBBH32sQQ")
_MAC_FLAG = 1
MAC_BYTES = 32
HEADER_BYTES = _HEADER.size  # 56

XXH3 = 1
CRC32 = 2

_CHECKSUMS: dict[int, Callable[[bytes | memoryview], int]] = {CRC32: zlib.crc32}
try:  # pragma: no branch - depends on the install
    import xxhash

    _CHECKSUMS[XXH3] = xxhash.xxh3_64_intdigest
    DEFAULT_ALGORITHM = XXH3
except ImportError:  # the disk extra is not installed: stdlib crc32
    DEFAULT_ALGORITHM = CRC32

ALGORITHM_NAMES = {XXH3: "xxh3_64", CRC32: "crc32"}


def key_digest(key: BlockKey) -> bytes:
    """Return the 32-byte digest of a block key, as stored in the header."""
    return bytes.fromhex(key.digest())


def header(
    key: BlockKey, payload: bytes, algorithm: int = DEFAULT_ALGORITHM, *, mac: bool = False
) -> bytes:
    """Return the header for ``payload`` stored under ``key``."""
    checksum = _CHECKSUMS[algorithm](payload)
    flags = _MAC_FLAG if mac else 0
    return _HEADER.pack(MAGIC, algorithm, flags, 0, key_digest(key), len(payload), checksum)


def frame(
    key: BlockKey,
    payload: bytes,
    algorithm: int = DEFAULT_ALGORITHM,
    *,
    hmac_key: bytes | None = None,
) -> bytes:
    """Return header + payload (+ the HMAC tag when ``hmac_key`` is given)."""
    head = header(key, payload, algorithm, mac=hmac_key is not None)
    if hmac_key is None:
        return head + payload
    tag = hmac.new(hmac_key, head + payload, hashlib.sha256).digest()
    return head + payload + tag


def parse_header(key: BlockKey, raw: bytes | memoryview) -> tuple[int, int, int]:
    """Check a header against the key it was read for.

    Returns:
        ``(algorithm, length, checksum)``.

    Raises:
        IntegrityError: Wrong size, magic, key or an algorithm this process cannot compute.
    """
    return _parse(key, raw)[:3]


def _parse(key: BlockKey, raw: bytes | memoryview) -> tuple[int, int, int, bool]:
    if len(raw) != HEADER_BYTES:
        raise IntegrityError(f"header of {len(raw)} bytes, expected {HEADER_BYTES}")
    magic, algorithm, flags, reserved, digest, length, checksum = _HEADER.unpack(raw)
    if magic != MAGIC or reserved != 0 or flags & ~_MAC_FLAG:
        raise IntegrityError(f"bad magic {magic!r} or unknown flags {flags:#x}/{reserved:#x}")
    if algorithm not in _CHECKSUMS:
        raise IntegrityError(f"checksum algorithm {algorithm} is not available here")
    if digest != key_digest(key):
        raise IntegrityError("value stored under another key")
    return algorithm, length, checksum, bool(flags & _MAC_FLAG)


def verify(algorithm: int, length: int, checksum: int, payload: bytes | memoryview) -> None:
    """Check a payload against its header fields.

    Raises:
        IntegrityError: Short, long or damaged payload.
    """
    if len(payload) != length:
        raise IntegrityError(f"payload of {len(payload)} bytes, header says {length}")
    if _CHECKSUMS[algorithm](payload) != checksum:
        raise IntegrityError("checksum mismatch")


def unframe(key: BlockKey, value: bytes, *, hmac_key: bytes | None = None) -> bytes:
    """Return the payload of a framed value after checking it against ``key``.

    With ``hmac_key``, the value must carry a valid HMAC tag (checked first, in constant time).

    Raises:
        IntegrityError: The value is not a valid frame of a block stored under ``key``.
    """
    view = memoryview(value)
    algorithm, length, checksum, has_mac = _parse(key, view[:HEADER_BYTES])
    end = HEADER_BYTES + length
    if has_mac:
        if len(view) != end + MAC_BYTES:
            raise IntegrityError(f"value of {len(view)} bytes, header says {end + MAC_BYTES}")
        if hmac_key is not None:
            expected = hmac.new(hmac_key, view[:end], hashlib.sha256).digest()
            if not hmac.compare_digest(expected, view[end:]):
                raise IntegrityError("HMAC mismatch: the value was not written with our key")
    elif hmac_key is not None:
        raise IntegrityError("value carries no HMAC, and an HMAC key is configured")
    payload = view[HEADER_BYTES:end] if has_mac else view[HEADER_BYTES:]
    verify(algorithm, length, checksum, payload)
    return bytes(payload)
