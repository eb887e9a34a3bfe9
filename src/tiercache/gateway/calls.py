"""One S3 call passed to the origin, and its whole answer: what the pass-through handlers
(:mod:`tiercache.gateway.writes`, :mod:`tiercache.gateway.listings`) take and give back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tiercache.gateway.requests import Route

#: The content type of every XML answer.
XML = ("content-type", "application/xml")


@dataclass(frozen=True)
class Call:
    """One request to pass on: its route, query (decoded), headers (lower-case), body."""

    route: Route
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Reply:
    """A whole response: status, headers, body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def utc(value: object) -> datetime:
    """A time from the origin's answer, timezone-aware (UTC when it came naive; the epoch when
    it is missing)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(1970, 1, 1, tzinfo=UTC)
