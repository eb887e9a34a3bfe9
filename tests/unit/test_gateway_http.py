"""Range, conditional requests, dates and ETags, as S3 applies them.

The tables marked "AWS" are the answers LocalStack recorded from real S3
(``test_get_object_range``, ``test_s3_get_object_preconditions``); the others follow RFC 9110
where S3's behaviour is not on record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.gateway_wire import Wire, make_wire
from tiercache.gateway.httpsemantics import (
    ByteRange,
    Condition,
    check_conditions,
    content_range,
    evaluate_conditions,
    http_date,
    parse_http_date,
    parse_range,
    quote_etag,
    unsatisfied_content_range,
)
from tiercache.gateway.s3errors import S3Error

UNSATISFIABLE = "416"


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    return make_wire(monkeypatch)


# --- Range ----------------------------------------------------------------------------------

#: AWS, on the 10-byte object "0123456789": (Range, what S3 sent).
AWS_RANGES: list[tuple[str, ByteRange | str | None]] = [
    ("bytes=0-8", ByteRange(0, 9)),
    ("bytes=1-1", ByteRange(1, 2)),
    ("bytes=1-0", None),
    ("bytes=1-", ByteRange(1, 10)),
    ("bytes=-1-", None),
    ("bytes=-2", ByteRange(8, 10)),
    ("bytes=-9", ByteRange(1, 10)),
    ("bytes=-15", ByteRange(0, 10)),
    ("bytes=0-100", ByteRange(0, 10)),
    ("bytes=0-0", ByteRange(0, 1)),
    ("bytes=0--1", None),
    ("bytes=0-1,3-4,7-9", None),
    ("0-1", None),
    ("bytes=-", None),
    ("bytes=-0", UNSATISFIABLE),
    ("bytes=100-200", UNSATISFIABLE),
]

#: Edges around those, on the same object.
MORE_RANGES: list[tuple[str, ByteRange | str | None]] = [
    ("bytes=9-", ByteRange(9, 10)),
    ("bytes=9-9", ByteRange(9, 10)),
    ("bytes=10-", UNSATISFIABLE),
    ("bytes=10-20", UNSATISFIABLE),
    ("bytes=15-1", None),  # last before first: ignored before the size is looked at
    ("bytes=-10", ByteRange(0, 10)),
    ("bytes=0-9", ByteRange(0, 10)),
    ("BYTES=2-3", ByteRange(2, 4)),  # range units are case-insensitive
    (" bytes=2-3 ", ByteRange(2, 4)),
    ("bytes=0-1,", None),
    ("items=0-1", None),  # an unknown unit is ignored
    ("bytes=", None),
    ("bytes", None),
    ("", None),
    ("bytes=a-b", None),
    ("bytes=+1-2", None),
    ("bytes=1_0-2_0", None),  # int() would accept these
    ("bytes= 1-2", None),
    ("bytes=\u0661-\u0662", None),  # Arabic-Indic digits: str.isdigit() is true
    ("bytes=0-18446744073709551616", ByteRange(0, 10)),
]


@pytest.mark.parametrize(("header", "expected"), AWS_RANGES + MORE_RANGES)
def test_ranges_on_ten_bytes(header: str, expected: ByteRange | str | None) -> None:
    check_range(header, 10, expected)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-", UNSATISFIABLE),  # AWS (minio PR 17713)
        ("bytes=0-0", UNSATISFIABLE),
        ("bytes=5-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=-1", None),  # a tail read of an empty object: the (empty) object
        ("bytes=-100", None),
        ("bytes=1-0", None),
        ("bytes=0-1,2-3", None),
    ],
)
def test_ranges_on_an_empty_object(header: str, expected: ByteRange | str | None) -> None:
    check_range(header, 0, expected)


def check_range(header: str, size: int, expected: ByteRange | str | None) -> None:
    if expected == UNSATISFIABLE:
        with pytest.raises(S3Error) as caught:
            parse_range(header, size)
        error = caught.value
        assert (error.code, error.status) == ("InvalidRange", 416)
        assert error.extra == {"ActualObjectSize": str(size), "RangeRequested": header}
    else:
        assert parse_range(header, size) == expected


def test_no_header_is_the_whole_object() -> None:
    assert parse_range(None, 10) is None
    assert parse_range(None, 0) is None


@given(
    size=st.integers(1, 5_000),
    first=st.integers(0, 6_000),
    length=st.one_of(st.none(), st.integers(1, 6_000)),
)
def test_a_first_last_range_is_the_slice_it_names(
    size: int, first: int, length: int | None
) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    last = None if length is None else first + length - 1
    header = f"bytes={first}-{'' if last is None else last}"
    if first >= size:
        with pytest.raises(S3Error):
            parse_range(header, size)
        return
    r = parse_range(header, size)
    assert r is not None
    assert 0 <= r.start < r.end <= size
    assert data[r.start : r.end] == data[first : None if last is None else last + 1]
    assert r.length == r.end - r.start


@given(size=st.integers(0, 5_000), suffix=st.integers(1, 6_000))
def test_a_suffix_range_is_the_tail(size: int, suffix: int) -> None:
    r = parse_range(f"bytes=-{suffix}", size)
    if size == 0:
        assert r is None
    else:
        assert r == ByteRange(max(size - suffix, 0), size)


def test_content_range() -> None:
    assert content_range(ByteRange(0, 100), 1000) == "bytes 0-99/1000"
    assert content_range(ByteRange(999, 1000), 1000) == "bytes 999-999/1000"
    assert unsatisfied_content_range(1000) == "bytes */1000"


def test_a_ranged_get_through_boto(wire: Wire) -> None:
    data = b"0123456789"
    for asked, status, body in [("bytes=2-5", 206, b"2345"), ("bytes=5-2", 200, data)]:
        wire.answer(200, b"")
        wire.client.get_object(Bucket="bkt", Key="k", Range=asked)
        r = parse_range(wire.last.headers.get("Range"), len(data))
        headers = {"Content-Length": str(len(data))}
        if r is not None:
            headers = {"Content-Length": str(r.length), "Content-Range": content_range(r, 10)}
            data_sent = data[r.start : r.end]
        else:
            data_sent = data
        wire.answer(206 if r else 200, data_sent, headers)
        got = wire.client.get_object(Bucket="bkt", Key="k", Range=asked)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == status
        assert got["Body"].read() == body
        assert got.get("ContentRange") == (content_range(r, 10) if r else None)


def test_an_unsatisfiable_range_through_boto(wire: Wire) -> None:
    with pytest.raises(S3Error) as caught:
        parse_range("bytes=100-200", 10)
    error = caught.value
    wire.answer(error.status, error.body("R"), {"Content-Range": unsatisfied_content_range(10)})
    with pytest.raises(ClientError) as raised:
        wire.client.get_object(Bucket="bkt", Key="k", Range="bytes=100-200")
    assert raised.value.response["Error"] == {
        "Code": "InvalidRange",
        "Message": "The requested range is not satisfiable",
        "ActualObjectSize": "10",
        "RangeRequested": "bytes=100-200",
    }


# --- Conditional requests -------------------------------------------------------------------

ETAG = '"8d777f385d3dfec8815d20f7496026dc"'
BARE = ETAG.strip('"')
#: Last-Modified, with the sub-second part an HTTP date cannot carry.
MODIFIED = datetime(2026, 1, 1, 12, 0, 0, 700_000, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
AT = http_date(MODIFIED)  # the object's own Last-Modified header: "Thu, 01 Jan 2026 12:00:00 GMT"
BEFORE = http_date(MODIFIED - timedelta(seconds=1))
AFTER = http_date(MODIFIED + timedelta(days=1))
FUTURE = http_date(NOW + timedelta(days=1))

PROCEED, NOT_MODIFIED, FAILED = (
    Condition.PROCEED,
    Condition.NOT_MODIFIED,
    Condition.PRECONDITION_FAILED,
)

CONDITIONS: list[tuple[dict[str, str], str, Condition]] = [
    ({}, "GET", PROCEED),
    # If-Match: strong comparison, "*" and lists.
    ({"If-Match": ETAG}, "GET", PROCEED),
    ({"If-Match": BARE}, "GET", PROCEED),  # AWS: the quotes may be left out
    ({"If-Match": '"other"'}, "GET", FAILED),
    ({"If-Match": "*"}, "GET", PROCEED),
    ({"If-Match": f'"other", {ETAG}'}, "GET", PROCEED),
    ({"If-Match": f'"a","b" ,  {ETAG} '}, "HEAD", PROCEED),
    ({"If-Match": f"W/{ETAG}"}, "GET", FAILED),  # a weak tag never matches strongly
    ({"If-Match": ""}, "GET", FAILED),
    ({"If-Match": '"other"'}, "PUT", FAILED),
    # If-None-Match: weak comparison; 304 for GET/HEAD, 412 otherwise.
    ({"If-None-Match": ETAG}, "GET", NOT_MODIFIED),
    ({"If-None-Match": ETAG}, "HEAD", NOT_MODIFIED),
    ({"If-None-Match": BARE}, "GET", NOT_MODIFIED),  # AWS
    ({"If-None-Match": f"W/{ETAG}"}, "GET", NOT_MODIFIED),
    ({"If-None-Match": f'"x", W/{ETAG}'}, "GET", NOT_MODIFIED),
    ({"If-None-Match": '"other"'}, "GET", PROCEED),
    ({"If-None-Match": "*"}, "GET", NOT_MODIFIED),
    ({"If-None-Match": "*"}, "PUT", FAILED),  # a conditional write on an existing key
    ({"If-None-Match": ETAG}, "DELETE", FAILED),
    # If-Unmodified-Since, in whole seconds.
    ({"If-Unmodified-Since": BEFORE}, "GET", FAILED),
    ({"If-Unmodified-Since": AT}, "GET", PROCEED),  # AWS: equal is unmodified
    ({"If-Unmodified-Since": AFTER}, "GET", PROCEED),
    ({"If-Unmodified-Since": "yesterday"}, "GET", PROCEED),  # not a date: ignored
    ({"If-Unmodified-Since": BEFORE}, "PUT", FAILED),
    # If-Modified-Since: GET and HEAD only; a future date is ignored.
    ({"If-Modified-Since": AT}, "GET", NOT_MODIFIED),  # AWS: equal is not modified
    ({"If-Modified-Since": AFTER}, "HEAD", NOT_MODIFIED),
    ({"If-Modified-Since": BEFORE}, "GET", PROCEED),
    ({"If-Modified-Since": FUTURE}, "GET", PROCEED),  # AWS
    ({"If-Modified-Since": "not a date"}, "GET", PROCEED),
    ({"If-Modified-Since": AT}, "PUT", PROCEED),
    # Combinations the GetObject reference spells out.
    ({"If-Match": ETAG, "If-Unmodified-Since": BEFORE}, "GET", PROCEED),
    ({"If-None-Match": ETAG, "If-Modified-Since": BEFORE}, "GET", NOT_MODIFIED),
    # ... and the ones it implies.
    ({"If-Match": '"other"', "If-Unmodified-Since": AFTER}, "GET", FAILED),
    ({"If-None-Match": '"other"', "If-Modified-Since": AT}, "GET", PROCEED),  # RFC 9110
    ({"If-Match": ETAG, "If-None-Match": ETAG}, "GET", NOT_MODIFIED),
    ({"If-Match": '"other"', "If-None-Match": ETAG}, "GET", FAILED),
    # Header names in any case.
    ({"if-none-match": ETAG}, "get", NOT_MODIFIED),
    ({"IF-MATCH": '"other"'}, "GET", FAILED),
]


@pytest.mark.parametrize(("headers", "method", "expected"), CONDITIONS)
def test_conditions(headers: dict[str, str], method: str, expected: Condition) -> None:
    got = evaluate_conditions(headers, etag=ETAG, last_modified=MODIFIED, method=method, now=NOW)
    assert got is expected
    # The object's ETag may come without its quotes; nothing changes.
    bare = evaluate_conditions(headers, etag=BARE, last_modified=MODIFIED, method=method, now=NOW)
    assert bare is expected


def test_the_order_recorded_from_aws() -> None:
    """All four headers at once, then one fewer each time: which one decides."""
    now = MODIFIED + timedelta(seconds=3)
    headers = {
        "If-Modified-Since": http_date(now),
        "If-Unmodified-Since": http_date(now - timedelta(days=1)),
        "If-Match": "etag123",
        "If-None-Match": ETAG,
    }
    decided: list[Condition | str] = []
    for drop in ("If-Match", "If-Unmodified-Since", "If-None-Match"):
        decided.append(decide(headers, now))
        del headers[drop]
    decided.append(decide(headers, now))
    assert decided == ["If-Match", "If-Unmodified-Since", NOT_MODIFIED, NOT_MODIFIED]
    all_true = {
        "If-Match": BARE,
        "If-None-Match": "etag123",
        "If-Modified-Since": http_date(now - timedelta(days=1)),
        "If-Unmodified-Since": http_date(now),
    }
    assert check_conditions(all_true, etag=ETAG, last_modified=MODIFIED, method="GET", now=now) is (
        PROCEED
    )


def decide(headers: dict[str, str], now: datetime) -> Condition | str:
    """The outcome of check_conditions, or the header a 412 names."""
    try:
        return check_conditions(headers, etag=ETAG, last_modified=MODIFIED, method="GET", now=now)
    except S3Error as error:
        if (error.code, error.status) != ("PreconditionFailed", 412):
            raise
        return error.extra["Condition"]


def test_the_default_clock_is_now() -> None:
    future = http_date(datetime.now(UTC) + timedelta(days=1))
    assert (
        evaluate_conditions(
            {"If-Modified-Since": future}, etag=ETAG, last_modified=MODIFIED, method="GET"
        )
        is PROCEED
    )
    assert check_conditions({}, etag=ETAG, last_modified=MODIFIED, method="GET") is PROCEED


def test_conditional_get_through_boto(wire: Wire) -> None:
    since = MODIFIED + timedelta(hours=1)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"IfMatch": '"other"'}, 412, "PreconditionFailed"),
        ({"IfNoneMatch": ETAG}, 304, "304"),
        ({"IfModifiedSince": since}, 304, "304"),
    ]
    for params, status, code in cases:
        wire.answer(200, b"")
        wire.client.get_object(Bucket="bkt", Key="k", **params)
        try:  # evaluate what botocore really sent
            check_conditions(
                wire.last.headers, etag=ETAG, last_modified=MODIFIED, method="GET", now=NOW
            )
            wire.answer(304, b"")  # no body, as S3 sends it
        except S3Error as error:
            wire.answer(error.status, error.body("R"))
        with pytest.raises(ClientError) as raised:
            wire.client.get_object(Bucket="bkt", Key="k", **params)
        response = raised.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response["Error"]["Code"] == code
        if status == 412:
            assert response["Error"]["Condition"] == "If-Match"


# --- Dates and ETags ------------------------------------------------------------------------


def test_http_date() -> None:
    assert http_date(datetime(2026, 1, 1, tzinfo=UTC)) == "Thu, 01 Jan 2026 00:00:00 GMT"
    east = timezone(timedelta(hours=2))
    assert http_date(datetime(2026, 1, 1, 2, 0, 0, 999_999, east)) == (
        "Thu, 01 Jan 2026 00:00:00 GMT"
    )
    with pytest.raises(ValueError, match="naive"):
        http_date(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime
        "Sun, 06 Nov 1994 09:49:37 +0100",
    ],
)
def test_parse_http_date_forms(value: str) -> None:
    parsed = parse_http_date(value)
    assert parsed == datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "yesterday", "Sun, 32 Nov 1994 08:49:37 GMT"])
def test_parse_http_date_refuses_what_is_not_a_date(value: str | None) -> None:
    assert parse_http_date(value) is None


def test_http_dates_round_trip() -> None:
    assert parse_http_date(http_date(MODIFIED)) == MODIFIED.replace(microsecond=0)


@pytest.mark.parametrize(
    ("etag", "sent"),
    [
        ("abc", '"abc"'),
        ('"abc"', '"abc"'),
        ('"abc-12"', '"abc-12"'),
        ('W/"abc"', 'W/"abc"'),
    ],
)
def test_quote_etag(etag: str, sent: str) -> None:
    assert quote_etag(etag) == sent
