"""Snapshot views (``POST /-/snapshot``): the directory they make up, its listing (paged, with
and without a delimiter), the mapping back to real keys, and what a malformed body gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tiercache.gateway.s3errors import S3Error
from tiercache.gateway.snapshots import MAX_VIEWS, Snapshots


def _file(key: str, size: int = 10) -> dict[str, Any]:
    return {"key": key, "size": size, "version": f"delta:1:{size}", "mtime": 1_700_000_000.5}


def _body(groups: list[list[dict[str, Any]]], root: str = "t") -> bytes:
    return json.dumps({"bucket": "bkt", "root": root, "groups": groups}).encode()


def test_a_view_lists_its_files_by_group_and_maps_them_back() -> None:
    views = Snapshots()
    groups = [
        [_file("t/day=1/a.parquet"), _file("t/day=1/b.parquet")],
        [_file("t/day=2/c.parquet")],
    ]
    prefix = views.add(_body(groups))["prefix"]
    assert prefix.startswith("t/_tiercache_snapshot/")
    assert views.add(_body(groups))["prefix"] == prefix  # the same snapshot: the same view
    page = views.page("bkt", {"prefix": prefix}, 1000)
    assert page is not None
    keys = [item.key for item in page.objects]
    assert keys == [
        f"{prefix}p0/000000.parquet",
        f"{prefix}p0/000001.parquet",
        f"{prefix}p1/000000.parquet",
    ]
    assert [views.resolve("bkt", key) for key in keys] == [
        "t/day=1/a.parquet",
        "t/day=1/b.parquet",
        "t/day=2/c.parquet",
    ]
    assert page.objects[0].etag == '"delta:1:10"'
    assert page.objects[0].last_modified.timestamp() == 1_700_000_000.5
    one = views.page("bkt", {"prefix": f"{prefix}p1/"}, 1000)
    assert one is not None
    assert [item.key for item in one.objects] == [f"{prefix}p1/000000.parquet"]
    folders = views.page("bkt", {"prefix": prefix, "delimiter": "/"}, 1000)
    assert folders is not None
    assert (folders.objects, folders.common_prefixes) == ([], [f"{prefix}p0/", f"{prefix}p1/"])
    # Not a view: the store answers (another bucket, another token, a real key).
    assert views.page("other", {"prefix": prefix}, 1000) is None
    assert views.resolve("bkt", "t/day=1/a.parquet") is None
    assert views.resolve("bkt", "t/_tiercache_snapshot/feed/p0/000000.parquet") is None


def test_pages_follow_the_gateway_s_own_tokens() -> None:
    views = Snapshots()
    prefix = views.add(_body([[_file(f"t/{n}.parquet") for n in range(5)]]))["prefix"]
    seen, token = [], None
    while True:
        query = {"prefix": prefix, **({"continuation-token": token} if token else {})}
        page = views.page("bkt", query, 2)
        assert page is not None
        seen += [item.key for item in page.objects]
        if not page.is_truncated:
            break
        token = page.next_token
    assert len(seen) == 5 == len(set(seen))
    with pytest.raises(S3Error, match="continuation token"):
        views.page("bkt", {"prefix": prefix, "continuation-token": "bogus"}, 2)


def test_the_oldest_view_goes_past_the_bound() -> None:
    views = Snapshots()
    first = views.add(_body([[_file("t/0.parquet")]]))["prefix"]
    for n in range(MAX_VIEWS):
        views.add(_body([[_file(f"t/{n + 1}.parquet")]]))
    assert views.page("bkt", {"prefix": first}, 10) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "not a snapshot document"),
        (json.dumps({"bucket": "", "root": "t", "groups": []}).encode(), "'bucket' must be"),
        (_body([[{"key": "t/../x", "size": 1, "version": "v", "mtime": 1}]]), "key must be a key"),
        (_body([[{"key": "t/x", "size": -1, "version": "v", "mtime": 1}]]), "size must be"),
        (_body([[{"key": "t/x", "size": 1, "version": "", "mtime": 1}]]), "version must be"),
        (_body([[{"key": "t/x", "size": 1, "version": "v", "mtime": "now"}]]), "mtime must be"),
        (_body([{"key": "t/x"}]), "each group must be a list"),  # type: ignore[list-item]
    ],
)
def test_malformed_views_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(S3Error, match=message) as raised:
        Snapshots().add(body)
    assert (raised.value.status, raised.value.code) == (400, "MalformedSnapshot")


def test_the_files_of_all_views_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiercache.gateway import snapshots

    monkeypatch.setattr(snapshots, "MAX_TOTAL_FILES", 10)
    views = Snapshots()
    first = views.add(_body([[_file(f"t/a{n}.parquet") for n in range(6)]]))["prefix"]
    second = views.add(_body([[_file(f"t/b{n}.parquet") for n in range(6)]]))["prefix"]
    assert views.page("bkt", {"prefix": first}, 10) is None  # 12 files: the oldest view went
    assert views.page("bkt", {"prefix": second}, 10) is not None
    alone = views.add(_body([[_file(f"t/c{n}.parquet") for n in range(11)]]))["prefix"]
    assert views.page("bkt", {"prefix": alone}, 20) is not None  # a view alone is kept
