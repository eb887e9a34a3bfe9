"""A gateway over a real S3 server (moto in a subprocess), in a child process of the tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, start
from tiercache.testing import S3Server

BLOCK = 256 << 10


@pytest.fixture
def origin_fs(s3_server: S3Server) -> TieredFileSystem:
    """A filesystem over the S3 server (what the gateway is started over)."""
    return TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(), "skip_instance_cache": True},
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20),
        skip_instance_cache=True,
    )


@pytest.fixture
def gateway(origin_fs: TieredFileSystem) -> Iterator[Gateway]:
    with start(origin_fs) as running:
        yield running


@pytest.fixture
def client(gateway: Gateway) -> Any:
    """boto3 against the gateway (path-style, its own retries off: the tests see every answer)."""
    from botocore.config import Config

    options = gateway.s3fs_options()
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
