"""``TIERCACHE_DELTA_LOG_TTL`` through the gateway: a Delta log's listing is answered from a
kept listing (paged with the gateway's own continuation tokens), only for a log prefix without
a delimiter, and a write under the log drops it; boto3 against the real S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, start
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

LOG = "t/_delta_log/"
COMMITS = 7


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    with HttpFaultProxy(s3_server.endpoint_url) as running:
        yield running


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"log-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    for version in range(COMMITS):
        s3_server.put_object(name, f"{LOG}{version:020d}.json", b"{}\n" * (version + 1))
    s3_server.put_object(name, "t/part-0.parquet", b"PAR1")
    return name


@pytest.fixture
def gateway(s3_server: S3Server, proxy: HttpFaultProxy) -> Iterator[Gateway]:
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(proxy.url), "skip_instance_cache": True},
        settings=Settings(memory_bytes=16 << 20, delta_log_ttl_s=600.0),
        skip_instance_cache=True,
    )
    with start(fs) as running:
        yield running


def _client(endpoint: str, key: str = "k", secret: str = "s") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def _keys(client: Any, bucket: str, **params: Any) -> list[tuple[str, int, str]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **params)
    return [(o["Key"], o["Size"], o["ETag"]) for page in pages for o in page.get("Contents", [])]


def test_a_log_listing_is_kept_and_paged_like_the_store(
    s3_server: S3Server, bucket: str, gateway: Gateway, proxy: HttpFaultProxy
) -> None:
    options = gateway.s3fs_options()
    through = _client(gateway.endpoint_url, options["key"], options["secret"])
    direct = _client(s3_server.endpoint_url, "testing", "testing")
    expected = _keys(direct, bucket, Prefix=LOG)
    assert len(expected) == COMMITS
    assert _keys(through, bucket, Prefix=LOG) == expected  # listed once, kept
    proxy.reset_counters()
    assert _keys(through, bucket, Prefix=LOG, PaginationConfig={"PageSize": 2}) == expected
    after = f"{LOG}{2:020d}.json"
    assert _keys(through, bucket, Prefix=LOG, StartAfter=after) == expected[3:]
    assert proxy.requests() == 0  # every page from the kept listing

    # Not a log prefix, or a delimiter: the store answers.
    assert _keys(through, bucket, Prefix="t/") == _keys(direct, bucket, Prefix="t/")
    assert _keys(through, bucket, Prefix=LOG, Delimiter="/") == expected
    assert proxy.requests() == 2

    # A commit written through the gateway drops the kept listing: the next one has it.
    newest = f"{LOG}{COMMITS:020d}.json"
    through.put_object(Bucket=bucket, Key=newest, Body=b"{}\n", IfNoneMatch="*")
    listed = _keys(through, bucket, Prefix=LOG)
    assert [key for key, _, _ in listed][-1] == newest
    assert listed == _keys(direct, bucket, Prefix=LOG)
