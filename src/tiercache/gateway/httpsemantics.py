"""HTTP semantics as S3 applies them: the ``Range`` header, conditional requests, dates, ETags.

Pure functions: no I/O, the clock injected. Where S3 departs from RFC 9110 it is S3 that is
followed, and said so. "Recorded from AWS" below means LocalStack's snapshot tests run against
real S3 (``tests/aws/services/s3/test_s3_api.py::test_get_object_range`` and
``test_s3.py::test_s3_get_object_preconditions``, ``@markers.aws.validated``, recorded
2026-02-21).

Named ``httpsemantics`` rather than ``http`` so that the gateway's modules can import both it
and the standard library's ``http`` (``HTTPStatus``) without one name hiding the other.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from tiercache.gateway.s3errors import invalid_range, precondition_failed

__all__ = [
    "ByteRange",
    "Condition",
    "check_conditions",
    "content_range",
    "evaluate_conditions",
    "http_date",
    "parse_http_date",
    "parse_range",
    "quote_etag",
    "unsatisfied_content_range",
]


def http_date(when: datetime) -> str:
    """Format an aware datetime as an RFC 9110 HTTP-date: ``Thu, 01 Jan 2026 00:00:00 GMT``.

    Raises:
        ValueError: ``when`` is naive (its zone would be a guess).
    """
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: give it a timezone")
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    """Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime form) to an aware UTC datetime.

    Returns ``None`` for a missing or invalid date: RFC 9110 has a recipient ignore a
    conditional header whose date is not valid.
    """
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # asctime dates and "-0000" carry no zone: an HTTP-date is always GMT.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def quote_etag(etag: str) -> str:
    """Return the ETag as S3 sends it, in its double quotes (``"9b2c..."``, ``"9b2c...-3"``).

    An ETag from an S3 origin already has its quotes and comes back verbatim; one that lost them
    (fsspec backends differ) gets them back. A weak ``W/"..."`` tag is left as it is.
    """
    if etag.startswith(('"', 'W/"')):
        return etag
    return f'"{etag}"'


# --- Range ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    """A satisfiable byte range, already clipped to the object: ``[start, end)``.

    Attributes:
        start: First byte, inclusive.
        end: End, exclusive (``end - start`` bytes are sent; ``start < end <= size``).
    """

    start: int
    end: int

    @property
    def length(self) -> int:
        """The number of bytes in the range (the response's ``Content-Length``)."""
        return self.end - self.start


_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve a ``Range`` header against an object of ``size`` bytes, as S3 does.

    S3 serves one range or the whole object; it is more forgiving than RFC 9110. As recorded
    from AWS on a 10-byte object:

    * ``bytes=0-8`` gives 206 ``bytes 0-8/10``; ``bytes=0-100`` is clipped to ``bytes 0-9/10``;
      ``bytes=1-`` gives ``bytes 1-9/10``; ``bytes=-2`` the last two bytes; ``bytes=-15`` (a
      suffix longer than the object) the whole object as 206 ``bytes 0-9/10``.
    * Anything S3 does not understand is ignored and the whole object is sent with 200:
      ``bytes=1-0`` (last before first; ``bytes=15-1`` on a 12-byte object too, though 15 is
      past the end: localstack issue 9076, curl against S3), ``bytes=0--1``, ``bytes=-1-``,
      ``bytes=-``, ``0-1`` (no unit) and several ranges ``bytes=0-1,3-4,7-9`` ("Amazon S3
      doesn't support retrieving multiple ranges of data per GET request", GetObject API
      reference). So is another unit (RFC 9110 14.2: a server ignores a range unit it does not
      know).
    * Only two things are 416 InvalidRange: a first byte at or past the end (``bytes=100-200``;
      on an empty object ``bytes=0-`` and ``bytes=0-0`` too, as minio PR 17713 traced against
      AWS) and the empty suffix ``bytes=-0``.

    A suffix range on an empty object (``bytes=-1``) sends the (empty) whole object with 200,
    not 416. Not on record from AWS; but RFC 9110 14.1.1 calls a non-zero suffix satisfiable
    even on an empty representation, readers of file tails send exactly this and expect an empty
    read (Trino's ``S3Input.readTail``; floci issue 1141 changed floci from 416 to this), and
    LocalStack answers so. No Content-Range can describe zero bytes, hence 200.

    Args:
        header: The ``Range`` header, or ``None`` when there was none.
        size: The object's size in bytes.

    Returns:
        The range to send with 206, or ``None`` to send the whole object with 200.

    Raises:
        S3Error: 416 InvalidRange, with ``ActualObjectSize`` and ``RangeRequested``.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # last before first: invalid, so ignored (S3, and RFC 9110 14.1.1)
        end = min(int(last) + 1, size) if last else size
        unsatisfiable = start >= size
    else:
        if not last:
            return None  # "bytes=-"
        suffix = int(last)
        if suffix and not size:
            return None  # a tail of an empty object: the whole (empty) object
        start, end = max(size - suffix, 0), size
        unsatisfiable = suffix == 0
    if unsatisfiable:
        raise invalid_range(size, header)
    return ByteRange(start, end)


def content_range(r: ByteRange, size: int) -> str:
    """Return the ``Content-Range`` of a 206 response: ``bytes 0-99/1000`` (inclusive end)."""
    return f"bytes {r.start}-{r.end - 1}/{size}"


def unsatisfied_content_range(size: int) -> str:
    """Return the ``Content-Range`` RFC 9110 15.5.17 asks of a 416 response: ``bytes */1000``."""
    return f"bytes */{size}"


# --- Conditional requests ------------------------------------------------------------------


class Condition(Enum):
    """What the conditional headers decide for a request on an existing object."""

    PROCEED = "proceed"  # serve the request as if it had no conditions
    NOT_MODIFIED = "not-modified"  # 304, no body; GET and HEAD only
    PRECONDITION_FAILED = "precondition-failed"  # 412 PreconditionFailed


_SAFE = frozenset({"GET", "HEAD"})
# One entity-tag of a list: optionally weak, quoted, or bare (S3 matches a bare ETag, as recorded
# from AWS: ``If-None-Match`` without the quotes still gives 304).
_ENTITY_TAG = re.compile(r'\s*(W/)?(?:"([^"]*)"|([^",\s]+))\s*(?:,|$)')


def _tags(value: str) -> list[tuple[bool, str]]:
    """Split an ``If-Match`` / ``If-None-Match`` list into ``(weak, opaque value)`` pairs."""
    return [
        (m.group(1) is not None, m.group(2) if m.group(2) is not None else m.group(3))
        for m in _ENTITY_TAG.finditer(value)
    ]


def _matches(value: str, etag: str, *, weak: bool) -> bool:
    """Return whether the header's list matches ``etag``: ``*`` matches any current object.

    Strong comparison (``If-Match``) never matches a weak tag; weak comparison
    (``If-None-Match``) ignores the ``W/``. Quotes are normalised on both sides.
    """
    if value.strip() == "*":
        return True
    ours = _tags(etag)
    if not ours:
        return False
    our_weak, our_value = ours[0]
    return any(
        tag_value == our_value and (weak or not (tag_weak or our_weak))
        for tag_weak, tag_value in _tags(value)
    )


def _decide(
    headers: Mapping[str, str], *, etag: str, last_modified: datetime, method: str, now: datetime
) -> tuple[Condition, str]:
    """Evaluate the conditional headers; return the outcome and the header that decided it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    # HTTP dates have whole seconds: an object modified at 12:00:00.700 was "modified at"
    # 12:00:00 (recorded from AWS: If-Modified-Since equal to Last-Modified gives 304).
    modified = last_modified.astimezone(UTC).replace(microsecond=0)
    safe = method.upper() in _SAFE

    if_match = lowered.get("if-match")
    if if_match is not None:
        if not _matches(if_match, etag, weak=False):
            return Condition.PRECONDITION_FAILED, "If-Match"
    else:
        unmodified_since = parse_http_date(lowered.get("if-unmodified-since"))
        if unmodified_since is not None and modified > unmodified_since:
            return Condition.PRECONDITION_FAILED, "If-Unmodified-Since"

    if_none_match = lowered.get("if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, etag, weak=True):
            failed = Condition.NOT_MODIFIED if safe else Condition.PRECONDITION_FAILED
            return failed, "If-None-Match"
    elif safe:
        modified_since = parse_http_date(lowered.get("if-modified-since"))
        # A date in the future is ignored (RFC 9110 13.1.3; recorded from AWS).
        if modified_since is not None and modified_since <= now and modified <= modified_since:
            return Condition.NOT_MODIFIED, "If-Modified-Since"
    return Condition.PROCEED, ""


def evaluate_conditions(
    headers: Mapping[str, str],
    *,
    etag: str,
    last_modified: datetime,
    method: str,
    now: datetime | None = None,
) -> Condition:
    """Decide a request's conditional headers against the object's current ETag and date.

    The order is RFC 9110 13.2.2's, which S3 follows:

    1. ``If-Match`` (``*`` matches): no match is 412. Only when it is absent,
       ``If-Unmodified-Since``: modified after the date is 412. So If-Match true with
       If-Unmodified-Since false proceeds, as the GetObject reference says S3 does.
    2. ``If-None-Match`` (``*`` matches): a match is 304 for GET and HEAD, 412 for other methods
       (a conditional PUT). Only when it is absent, and only for GET and HEAD,
       ``If-Modified-Since``: not modified since the date is 304. So If-None-Match false
       (matching) with If-Modified-Since true is 304, as the GetObject reference says.

    If-Match failing outranks If-Unmodified-Since, which outranks If-None-Match (recorded from
    AWS with all four headers sent at once). ETags compare strongly for ``If-Match`` and weakly
    for ``If-None-Match``, lists (``"a", "b"``) and bare ETags are accepted. Dates that are
    not valid HTTP-dates are ignored; an ``If-Modified-Since`` after ``now`` is ignored.
    Combinations the S3 reference does not cover (If-None-Match true with If-Modified-Since
    false) follow the RFC: the date is not looked at.

    It decides for an object that exists. A missing key, and what S3 adds for conditional
    writes (``If-None-Match`` takes only ``*`` there; a concurrent conditional write is 409
    ConditionalRequestConflict), are the app's to answer.

    Args:
        headers: The request headers; names in any case.
        etag: The object's current ETag, quoted or not.
        last_modified: The object's Last-Modified, aware.
        method: The request method (``GET``, ``HEAD``, ``PUT``...).
        now: The server's current time; defaults to the clock.

    Returns:
        :attr:`Condition.PROCEED`, :attr:`Condition.NOT_MODIFIED` (send 304, no body) or
        :attr:`Condition.PRECONDITION_FAILED` (send 412; :func:`check_conditions` gives the
        error body with the failing header).
    """
    now = datetime.now(UTC) if now is None else now
    condition, _ = _decide(headers, etag=etag, last_modified=last_modified, method=method, now=now)
    return condition


def check_conditions(
    headers: Mapping[str, str],
    *,
    etag: str,
    last_modified: datetime,
    method: str,
    now: datetime | None = None,
) -> Condition:
    """Like :func:`evaluate_conditions`, but raise the 412 as S3 words it.

    Returns:
        :attr:`Condition.PROCEED` or :attr:`Condition.NOT_MODIFIED`.

    Raises:
        S3Error: 412 PreconditionFailed, its ``<Condition>`` naming the header that failed
            (``If-Match``, ``If-Unmodified-Since`` or ``If-None-Match``).
    """
    now = datetime.now(UTC) if now is None else now
    condition, header = _decide(
        headers, etag=etag, last_modified=last_modified, method=method, now=now
    )
    if condition is Condition.PRECONDITION_FAILED:
        raise precondition_failed(header)
    return condition
