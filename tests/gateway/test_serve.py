"""``tiercache serve`` as a real sidecar process, against a real S3 server: what it prints, what
clients read through it, how it stops, and what it refuses to start with.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from tests.gateway.sidecar import (
    KEY_ID,
    SECRET,
    Sidecar,
    s3_client,
    sidecar_environment,
    sidecars,
)
from tests.helpers import letters
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration
__all__ = ["sidecars"]  # a fixture


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"serve-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


# --- serving and stopping -------------------------------------------------------------------


def test_it_prints_where_it_listens_and_serves_reads_and_writes(
    s3_server: S3Server, bucket: str, sidecars: Callable[..., Sidecar]
) -> None:
    data = letters(3 * (1 << 20) + 5)
    s3_server.put_object(bucket, "a.bin", data)
    sidecar = sidecars(s3_server)
    host, _, port = sidecar.wait_ready().rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    client = s3_client(sidecar.endpoint_url)
    assert client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == data
    assert client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == data  # from RAM
    ranged = client.get_object(Bucket=bucket, Key="a.bin", Range="bytes=1048570-1048580")
    assert ranged["Body"].read() == data[1048570:1048581]
    client.put_object(Bucket=bucket, Key="w", Body=b"written through")
    assert client.get_object(Bucket=bucket, Key="w")["Body"].read() == b"written through"
    listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["a.bin", "w"]
    sidecar.process.send_signal(signal.SIGTERM)
    assert sidecar.process.wait(timeout=10) == 0
    assert "Traceback" not in sidecar.errors()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_it_listens_on_ipv6_loopback(
    s3_server: S3Server, bucket: str, sidecars: Callable[..., Sidecar]
) -> None:
    # No silent skip: a machine without an IPv6 loopback fails here, saying so.
    assert _ipv6_loopback(), "this machine has no IPv6 loopback (::1): the test cannot run"
    s3_server.put_object(bucket, "k", b"over IPv6")
    sidecar = sidecars(s3_server, listen="[::1]:0")
    assert sidecar.wait_ready().startswith("[::1]:")
    client = s3_client(sidecar.endpoint_url)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"over IPv6"


def test_sigterm_lets_a_response_in_progress_finish(
    s3_server: S3Server, bucket: str, sidecars: Callable[..., Sidecar]
) -> None:
    data = letters(24 << 20)
    s3_server.put_object(bucket, "big", data)
    sidecar = sidecars(s3_server)
    sidecar.wait_ready()
    body = s3_client(sidecar.endpoint_url).get_object(Bucket=bucket, Key="big")["Body"]
    first = body.read(1 << 20)
    began = time.monotonic()
    sidecar.process.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # the worker is shutting down, the response half sent
    assert first + body.read() == data
    assert sidecar.process.wait(timeout=15) == 0
    assert time.monotonic() - began < 12


def test_without_credentials_it_refuses_to_listen_beyond_loopback(
    s3_server: S3Server, sidecars: Callable[..., Sidecar]
) -> None:
    sidecar = sidecars(s3_server, listen="0.0.0.0:0")
    assert sidecar.process.wait(timeout=30) == 2
    errors = sidecar.errors()
    assert "configuration error" in errors
    assert "TIERCACHE_GATEWAY_ACCESS_KEY_ID" in errors
    assert "TIERCACHE_GATEWAY_SECRET_ACCESS_KEY" in errors
    assert sidecar.process.stdout is not None
    assert sidecar.process.stdout.read() == b""


def test_with_credentials_it_listens_anywhere_and_verifies_signatures(
    s3_server: S3Server, bucket: str, sidecars: Callable[..., Sidecar]
) -> None:
    s3_server.put_object(bucket, "k", b"for signed clients")
    environment = sidecar_environment(
        TIERCACHE_GATEWAY_ACCESS_KEY_ID=KEY_ID, TIERCACHE_GATEWAY_SECRET_ACCESS_KEY=SECRET
    )
    sidecar = sidecars(s3_server, listen="0.0.0.0:0", environment=environment)
    assert sidecar.wait_ready().startswith("0.0.0.0:")
    url = f"http://127.0.0.1:{sidecar.port}"
    assert s3_client(url).get_object(Bucket=bucket, Key="k")["Body"].read() == b"for signed clients"
    with pytest.raises(ClientError) as info:
        s3_client(url, signed=False).get_object(Bucket=bucket, Key="k")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_several_workers_and_exported_counters_are_refused(
    s3_server: S3Server, sidecars: Callable[..., Sidecar]
) -> None:
    environment = sidecar_environment(TIERCACHE_METRICS_PORT="0")
    sidecar = sidecars(s3_server, "--workers", "2", environment=environment)
    assert sidecar.process.wait(timeout=30) == 2
    assert "TIERCACHE_METRICS_PORT" in sidecar.errors()
