"""Faults behind the gateway, seen by a native client (boto3 with its own retries): every byte
right, every degradation counted by the gateway's chain, nothing hangs."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.helpers import HMAC_KEY, letters
from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, start
from tiercache.testing import HttpFaultProxy, RedisServer, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

BLOCK = 256 << 10
OBJECTS = {f"c/{i}.bin": letters(3 * BLOCK + 1000 * i)[::-1] for i in range(4)}


def _client(gateway: Gateway, attempts: int) -> Any:
    options = gateway.s3fs_options()
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": attempts, "mode": "standard"},
        ),
    )


def _read_all(client: Any, bucket: str) -> None:
    for key, data in OBJECTS.items():
        got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), key
        tail = client.get_object(Bucket=bucket, Key=key, Range="bytes=-100")["Body"].read()
        assert tail == data[-100:], key


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"chaos-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    for key, data in OBJECTS.items():
        s3_server.put_object(name, key, data)
    return name


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    with HttpFaultProxy(s3_server.endpoint_url) as running:
        yield running


def _redis(server: RedisServer) -> dict[str, Any]:
    """Settings of a Redis tier on ``server`` that gives up fast and stays open once open."""
    return {
        "redis_url": server.url,
        "redis_hmac_key": HMAC_KEY,
        "redis_timeout_s": 0.2,
        "breaker_cooldown_s": 60.0,
    }


def _gateway(s3_server: S3Server, proxy: HttpFaultProxy, **settings: Any) -> Gateway:
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(proxy.url), "skip_instance_cache": True},
        settings=Settings(
            **{"block_size_bytes": BLOCK, "memory_bytes": 0, "origin_retries": 4, **settings}
        ),
        skip_instance_cache=True,
    )
    return start(fs)


def test_origin_503_bursts_and_truncated_bodies_never_reach_the_client(
    s3_server: S3Server, proxy: HttpFaultProxy, bucket: str
) -> None:
    with _gateway(s3_server, proxy) as gateway:
        client = _client(gateway, attempts=1)  # the client does not retry: the gateway must
        proxy.fail_next(3, status=503, methods=("GET", "HEAD"))
        _read_all(client, bucket)
        assert proxy.injected() == 3
        proxy.truncate_next(2, keep_bytes=1000)
        _read_all(client, bucket)


def test_an_origin_that_keeps_failing_is_a_503_then_reads_go_on(
    s3_server: S3Server, proxy: HttpFaultProxy, bucket: str
) -> None:
    with _gateway(s3_server, proxy, origin_retries=1, origin_timeout_s=5.0) as gateway:
        client = _client(gateway, attempts=1)
        proxy.fail_next(1000, status=503, methods=("GET", "HEAD"))  # more than every retry
        began = time.monotonic()
        with pytest.raises(ClientError) as error:
            client.get_object(Bucket=bucket, Key="c/0.bin")
        assert time.monotonic() - began < 30  # an answer within the origin's deadline
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        proxy.fail_next(0)
        _read_all(client, bucket)


def test_redis_killed_reads_go_on(
    s3_server: S3Server, proxy: HttpFaultProxy, bucket: str, redis_fresh: RedisServer
) -> None:
    with _gateway(s3_server, proxy, **_redis(redis_fresh)) as gateway:
        client = _client(gateway, attempts=1)
        _read_all(client, bucket)  # Redis filled with the footers' blocks and object info
        redis_fresh.kill()
        try:
            _read_all(client, bucket)
        finally:
            redis_fresh.restart()
        stats = gateway.stats()
        redis = stats["chain"]["tiers"]["redis"]
        assert redis["errors"] + redis["timeouts"] + redis["rejected"] > 0  # counted, not seen
        assert stats["gateway"]["requests"]["GetObject"] == {"200": 8, "206": 8}


def test_redis_hung_reads_go_on_within_the_budget(
    s3_server: S3Server, proxy: HttpFaultProxy, bucket: str, redis_fresh: RedisServer
) -> None:
    with _gateway(s3_server, proxy, **_redis(redis_fresh)) as gateway:
        client = _client(gateway, attempts=1)
        _read_all(client, bucket)
        redis_fresh.stop()  # SIGSTOP: connections stay open, nothing answers
        try:
            _read_all(client, bucket)  # no retry by the client: the gateway's answer is final
        finally:
            redis_fresh.cont()
        stats = gateway.stats()
        redis = stats["chain"]["tiers"]["redis"]
        assert redis["timeouts"] + redis["rejected"] > 0  # counted, not seen
        assert stats["gateway"]["requests"]["GetObject"] == {"200": 8, "206": 8}


def test_disk_full_reads_go_on(
    s3_server: S3Server,
    proxy: HttpFaultProxy,
    bucket: str,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    from tiercache.testing.servers.tmpfs import remount, tmpfs

    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    with tmpfs(disk, size_bytes=64 << 20) as mounted:
        if mounted is None:
            with capsys.disabled():
                print("\n[chaos] cannot mount tmpfs here: the gateway's disk-full test needs root")
            pytest.fail("the gateway's disk-full test needs a tmpfs mount (run as root)")
        os.chmod(disk, 0o700)
        with _gateway(s3_server, proxy, disk_dir=str(disk), disk_bytes=32 << 20) as gateway:
            client = _client(gateway, attempts=1)
            first = dict(list(OBJECTS.items())[:2])
            for key, data in first.items():
                assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
            gateway.stats(settle=True)  # their blocks are on the disk
            used = os.statvfs(disk)
            remount(disk, size_bytes=(used.f_blocks - used.f_bfree) * used.f_frsize + 64 * 1024)
            try:
                _read_all(client, bucket)  # the other objects' blocks no longer fit
                stats = gateway.stats(settle=True)
            finally:
                remount(disk, size_bytes=64 << 20)
        tier = stats["chain"]["tiers"]["disk"]
        assert tier["full_skips"] > 0  # counted, not seen
        assert stats["gateway"]["requests"]["GetObject"]["200"] == 2 + 4
