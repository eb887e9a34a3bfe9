"""``POST /-/seed``: object info the gateway's owner hands it (a Delta log's data files); a
HEAD is then answered without the store, only immutable paths are taken, and on a gateway with
client credentials only a signed seed is."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.gateway.test_auth import KEY_ID, SECRET, _fs
from tiercache import Settings, TieredFileSystem
from tiercache.gateway import Gateway, GatewayError, start
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = pytest.mark.integration

NAME = "part-00000-1816a928-3b17-4815-a520-83a0b1fb0a61-c000.snappy.parquet"


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    with HttpFaultProxy(s3_server.endpoint_url) as running:
        yield running


@pytest.fixture
def gateway(s3_server: S3Server, proxy: HttpFaultProxy) -> Iterator[Gateway]:
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(proxy.url), "skip_instance_cache": True},
        settings=Settings(memory_bytes=16 << 20),
        skip_instance_cache=True,
    )
    with start(fs) as running:
        yield running


def _head(gateway: Gateway, path: str) -> urllib.request.Request:
    from tiercache.gateway.sigv4 import Credentials, sign_request

    url = f"{gateway.endpoint_url}/{path}"
    key, secret = gateway.s3fs_options()["key"], gateway.s3fs_options()["secret"]
    headers = sign_request("HEAD", url, Credentials(key, secret))
    return urllib.request.Request(url, headers=headers, method="HEAD")


def test_a_seeded_object_is_answered_without_the_store(
    s3_server: S3Server, gateway: Gateway, proxy: HttpFaultProxy
) -> None:
    bucket = f"seed-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    data = b"PAR1" + bytes(range(256)) * 40 + b"PAR1"
    s3_server.put_object(bucket, f"t/{NAME}", data)
    s3_server.put_object(bucket, "t/mutable.parquet", data)
    answer = gateway.seed(
        [
            (f"{bucket}/t/{NAME}", len(data), f"delta:1700000000000:{len(data)}", 1.7e9),
            (f"{bucket}/t/mutable.parquet", len(data), "delta:1:1", 1.0),
        ]
    )
    assert answer == {"seeded": 1, "skipped": 1}
    proxy.reset_counters()
    with urllib.request.urlopen(_head(gateway, f"{bucket}/t/{NAME}"), timeout=30) as head:
        assert head.headers["Content-Length"] == str(len(data))
        assert head.headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert head.headers["ETag"] == f'"delta:1700000000000:{len(data)}"'
    assert proxy.requests() == 0  # the HEAD never reached the store
    key, secret = gateway.s3fs_options()["key"], gateway.s3fs_options()["secret"]
    from tiercache.gateway.sigv4 import Credentials, sign_request

    url = f"{gateway.endpoint_url}/{bucket}/t/{NAME}"
    request = urllib.request.Request(
        url, headers=sign_request("GET", url, Credentials(key, secret))
    )
    with urllib.request.urlopen(request, timeout=30) as got:
        assert got.read() == data  # the bytes are the store's
    assert proxy.requests("GET") == 1
    with urllib.request.urlopen(_head(gateway, f"{bucket}/t/mutable.parquet"), timeout=30):
        pass
    assert proxy.requests("HEAD") == 1  # not seeded: asked


def test_a_malformed_seed_is_refused(gateway: Gateway) -> None:
    with pytest.raises(GatewayError, match="MalformedSeed") as raised:
        gateway.seed([("no-key", 1, "v", 1.0)])
    assert raised.value.status == 400


def test_with_client_credentials_only_a_signed_seed_is_taken(s3_server: S3Server) -> None:
    fs = _fs(s3_server, gateway_access_key_id=KEY_ID, gateway_secret_access_key=SECRET)
    with start(fs) as secured:
        body = json.dumps({"objects": []}).encode()
        unsigned = urllib.request.Request(
            f"{secured.endpoint_url}/-/seed", data=body, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(unsigned, timeout=30)
        with raised.value as refused:
            assert refused.code == 403
        assert secured.seed([]) == {"seeded": 0, "skipped": 0}  # signed by the handle
        assert "chain" in secured.stats(settle=True)  # and so are its stats


def test_a_snapshot_view_lists_and_serves_the_real_files(
    s3_server: S3Server, gateway: Gateway, proxy: HttpFaultProxy
) -> None:
    import boto3
    from botocore.config import Config

    bucket = f"view-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    files = {
        f"t/day={d}/{NAME.replace('1816', str(1000 + d))}": bytes([d]) * (1000 + d) for d in (1, 2)
    }
    for key, data in files.items():
        s3_server.put_object(bucket, key, data)
    groups = [
        [{"key": k, "size": len(v), "version": f"delta:1:{len(v)}", "mtime": 2.0}]
        for k, v in files.items()
    ]
    prefix = gateway.snapshot(bucket, "t", groups)
    keys = gateway.s3fs_options()
    client = boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=keys["key"],
        aws_secret_access_key=keys["secret"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    proxy.reset_counters()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert [o["Key"] for o in listed] == [
        f"{prefix}p0/000000.parquet",
        f"{prefix}p1/000000.parquet",
    ]
    assert proxy.requests() == 0  # the view's listing is the gateway's own
    for item, data in zip(listed, files.values(), strict=True):
        assert item["Size"] == len(data)
        assert client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() == data
        assert client.head_object(Bucket=bucket, Key=item["Key"])["ContentLength"] == len(data)
    with pytest.raises(GatewayError, match="MalformedSnapshot"):
        gateway.snapshot(bucket, "t", [[{"key": "../x"}]])
