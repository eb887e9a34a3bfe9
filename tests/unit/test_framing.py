"""Framing: header, checksum and HMAC of every value stored outside the process."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiercache.errors import IntegrityError
from tiercache.protocol import BlockKey
from tiercache.tiers.framing import CRC32, DEFAULT_ALGORITHM, HEADER_BYTES, frame, unframe

KEY = BlockKey("target", "bucket/obj.parquet", 'ETag="abc"', 1 << 20, 3)
SECRET = b"0123456789abcdef-secret"


@given(payload=st.binary(max_size=5000), algorithm=st.sampled_from([DEFAULT_ALGORITHM, CRC32]))
def test_round_trip(payload: bytes, algorithm: int) -> None:
    assert unframe(KEY, frame(KEY, payload, algorithm)) == payload
    assert unframe(KEY, frame(KEY, payload, algorithm, hmac_key=SECRET), hmac_key=SECRET) == payload


@given(payload=st.binary(min_size=1, max_size=2000), position=st.integers(0, 10_000))
def test_any_flipped_byte_is_rejected(payload: bytes, position: int) -> None:
    value = bytearray(frame(KEY, payload))
    position %= len(value)
    value[position] ^= 0x01
    with pytest.raises(IntegrityError):
        unframe(KEY, bytes(value))


def test_short_long_and_foreign_values_are_rejected() -> None:
    value = frame(KEY, b"footer bytes")
    with pytest.raises(IntegrityError, match="payload of"):
        unframe(KEY, value[:-1])
    with pytest.raises(IntegrityError, match="payload of"):
        unframe(KEY, value + b"x")
    with pytest.raises(IntegrityError, match="header of"):
        unframe(KEY, value[: HEADER_BYTES - 1])
    with pytest.raises(IntegrityError, match="another key"):
        unframe(KEY._replace(version='ETag="new"'), value)
    with pytest.raises(IntegrityError, match="magic"):
        unframe(KEY, b"garbage" * 20)


def test_hmac_keeps_writers_without_the_key_out() -> None:
    plain = frame(KEY, b"payload")
    with pytest.raises(IntegrityError, match="no HMAC"):
        unframe(KEY, plain, hmac_key=SECRET)
    forged = frame(KEY, b"payload", hmac_key=b"another key entirely!")
    with pytest.raises(IntegrityError, match="HMAC mismatch"):
        unframe(KEY, forged, hmac_key=SECRET)
    signed = frame(KEY, b"payload", hmac_key=SECRET)
    assert unframe(KEY, signed) == b"payload"  # a reader without a key still checks the checksum
    tampered = bytearray(signed)
    tampered[HEADER_BYTES] ^= 1
    with pytest.raises(IntegrityError):
        unframe(KEY, bytes(tampered), hmac_key=SECRET)
