"""Tests of the shipped test harness itself: the S3 server subprocess and the HTTP fault proxy.

They run s3fs (and, for ``Expect: 100-continue`` uploads, boto3) against the real moto
subprocess, directly and through the proxy.
"""

from __future__ import annotations

import http.client
import inspect
import io
import math
import os
import random
import socket
import threading
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import boto3
import pytest
import s3fs

import tiercache.testing
from tiercache.testing import HttpFaultProxy, S3Server, s3_error_body
from tiercache.testing.servers.s3 import _server_environment

pytestmark = pytest.mark.integration

DATA = bytes(range(256)) * 1024  # 256 KiB with a position-dependent pattern.


def make_fs(options: dict[str, Any], *, retry: bool = True) -> Any:
    """Return a fresh s3fs filesystem; with ``retry=False`` neither s3fs nor botocore retries."""
    kwargs: dict[str, Any] = {**options, "skip_instance_cache": True, "use_listings_cache": False}
    if not retry:
        # botocore's legacy "max_attempts" counts retries; "total_max_attempts" counts requests.
        kwargs["config_kwargs"] = {"retries": {"total_max_attempts": 1}}
    fs = s3fs.S3FileSystem(**kwargs)
    if not retry:
        fs.retries = 1  # A class attribute in s3fs, not a constructor argument.
    return fs


def boto3_client(endpoint_url: str) -> Any:
    """Return a boto3 S3 client for ``endpoint_url`` with the server's dummy credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def signed_target(operation: str, bucket: str, key: str | None = None) -> str:
    """Return the path and query of a presigned URL, for plain http.client requests.

    moto refuses unsigned (anonymous) reads of private objects.
    """
    client = boto3_client("http://127.0.0.1")
    try:
        params = {"Bucket": bucket} if key is None else {"Bucket": bucket, "Key": key}
        url: str = client.generate_presigned_url(operation, Params=params)
    finally:
        client.close()
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def raw_request(url: str, method: str, target: str) -> tuple[http.client.HTTPResponse, bytes]:
    """Send one request with http.client on a new connection; return the response and body."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_public_names_are_exactly_all() -> None:
    exported = {
        name
        for name, value in vars(tiercache.testing).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert exported == set(tiercache.testing.__all__)
    assert tiercache.testing.__all__ == sorted(tiercache.testing.__all__)


def test_storage_options_are_explicit(s3_server: S3Server) -> None:
    options = s3_server.storage_options("http://127.0.0.1:1")
    assert options == {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:1", "region_name": "us-east-1"},
    }
    assert s3_server.storage_options()["client_kwargs"]["endpoint_url"] == s3_server.endpoint_url
    assert s3_server.endpoint_url == f"http://127.0.0.1:{s3_server.port}"


def test_server_environment_drops_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere.invalid")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "real-looking-key")
    environment = _server_environment()
    assert not [name for name in environment if name.startswith("AWS_")]
    assert environment["PATH"] == os.environ["PATH"]


def test_object_reads_back_byte_exact(
    s3_server: S3Server, s3_bucket: str, s3_storage_options: dict[str, Any]
) -> None:
    s3_server.put_object(s3_bucket, "dir/data.bin", DATA)
    fs = make_fs(s3_storage_options)
    path = f"{s3_bucket}/dir/data.bin"
    assert fs.cat_file(path, start=1000, end=200_000) == DATA[1000:200_000]
    assert fs.cat_file(path) == DATA
    assert fs.info(path)["size"] == len(DATA)


def test_proxy_forwards_writes_and_reads(
    s3_bucket: str, fault_proxy: HttpFaultProxy, proxy_storage_options: dict[str, Any]
) -> None:
    fs = make_fs(proxy_storage_options)
    path = f"{s3_bucket}/written.bin"
    fs.pipe_file(path, DATA)
    assert fs.cat_file(path, start=7, end=70_007) == DATA[7:70_007]
    assert fault_proxy.requests("PUT") == 1
    assert fault_proxy.requests("GET") == 1
    assert fault_proxy.injected() == 0


def test_proxy_accepts_expect_100_continue_uploads(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    # botocore sends "Expect: 100-continue" for file-like bodies and waits for the interim answer.
    client = boto3_client(fault_proxy.url)
    try:
        client.put_object(Bucket=s3_bucket, Key="uploaded.bin", Body=io.BytesIO(DATA))
    finally:
        client.close()
    fs = make_fs(s3_server.storage_options())
    assert fs.cat_file(f"{s3_bucket}/uploaded.bin") == DATA
    assert fault_proxy.requests("PUT") == 1


def test_fail_next_without_retries_raises_oserror(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fault_proxy.fail_next(2)
    fs = make_fs(proxy_storage_options, retry=False)
    with pytest.raises(OSError, match="reduce your request rate"):
        fs.cat_file(f"{s3_bucket}/data.bin", start=0, end=100)
    assert fault_proxy.injected() == 1
    assert fault_proxy.requests("GET") == 1


def test_fail_next_with_retries_reads_the_object(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fault_proxy.fail_next(2)
    fs = make_fs(proxy_storage_options)
    assert fs.cat_file(f"{s3_bucket}/data.bin", start=100, end=5000) == DATA[100:5000]
    assert fault_proxy.injected() == 2
    assert fault_proxy.requests("GET") == 3


def test_fail_next_answers_s3_errors_by_method(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    get = signed_target("get_object", s3_bucket, "data.bin")
    head = signed_target("head_object", s3_bucket, "data.bin")

    fault_proxy.fail_next(1)
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert response.status == 503
    assert body == s3_error_body(503)
    assert b"<Code>SlowDown</Code>" in body
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, body) == (200, DATA)

    fault_proxy.fail_next(1, status=500, methods=["head"])
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, body) == (200, DATA)
    response, body = raw_request(fault_proxy.url, "HEAD", head)
    assert (response.status, body) == (500, b"")
    assert b"<Code>InternalError</Code>" in s3_error_body(500)
    response, _ = raw_request(fault_proxy.url, "HEAD", head)
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(DATA))
    assert fault_proxy.injected() == 2


def test_truncated_body_is_an_incomplete_read(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    get = signed_target("get_object", s3_bucket, "data.bin")
    fault_proxy.truncate_next(1, keep_bytes=10)
    connection = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=30)
    try:
        connection.request("GET", get)
        response = connection.getresponse()
        assert response.getheader("Content-Length") == str(len(DATA))
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            response.read()
    finally:
        connection.close()
    assert excinfo.value.partial == DATA[:10]
    assert fault_proxy.injected() == 1
    _, body = raw_request(fault_proxy.url, "GET", get)
    assert body == DATA


def test_truncated_body_is_an_error_for_s3fs(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    path = f"{s3_bucket}/data.bin"
    fault_proxy.truncate_next(1, keep_bytes=100)
    with pytest.raises((OSError, aiohttp.ClientPayloadError)):
        make_fs(proxy_storage_options, retry=False).cat_file(path, start=0, end=100_000)

    fault_proxy.truncate_next(1, keep_bytes=100)
    assert make_fs(proxy_storage_options).cat_file(path, start=0, end=100_000) == DATA[:100_000]
    assert fault_proxy.injected() == 2


def outcome(proxy: HttpFaultProxy, target: str, method: str = "GET") -> int | str:
    """Send one request on a new connection; return the status, or what went wrong instead."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        response.read()
    except http.client.IncompleteRead:
        return "truncated"
    except ConnectionResetError:
        return "reset"
    finally:
        connection.close()
    return response.status


def test_injected_errors_carry_retry_after_when_asked(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    get = signed_target("get_object", s3_bucket, "data.bin")
    head = signed_target("head_object", s3_bucket, "data.bin")

    fault_proxy.fail_next(1, retry_after_s=1.2)
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert response.status == 503
    assert response.getheader("Retry-After") == "2"  # Whole seconds, rounded up.
    assert body == s3_error_body(503)
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, response.getheader("Retry-After"), body) == (200, None, DATA)

    fault_proxy.fail_next(1, status=500, methods=["HEAD"], retry_after_s=3)
    response, body = raw_request(fault_proxy.url, "HEAD", head)
    assert (response.status, response.getheader("Retry-After"), body) == (500, "3", b"")

    fault_proxy.fail_next(1)
    response, _ = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, response.getheader("Retry-After")) == (503, None)

    fault_proxy.fail_probability(1.0, retry_after_s=0)
    response, body = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, response.getheader("Retry-After")) == (503, "0")
    assert b"<Code>SlowDown</Code>" in body
    assert fault_proxy.injected() == fault_proxy.injected("fail") == 4


@pytest.mark.parametrize(
    ("kind", "injected_as"), [("fail", 503), ("truncate", "truncated"), ("reset", "reset")]
)
def test_probability_mode_is_reproducible_with_a_seed(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    kind: Literal["fail", "truncate", "reset"],
    injected_as: int | str,
) -> None:
    s3_server.put_object(s3_bucket, "small.bin", DATA[:4096])
    get = signed_target("get_object", s3_bucket, "small.bin")

    def set_probability(p: float, seed: int | None) -> None:
        if kind == "fail":
            fault_proxy.fail_probability(p, seed=seed)
        elif kind == "truncate":
            fault_proxy.truncate_probability(p, keep_bytes=100, seed=seed)
        else:
            fault_proxy.reset_probability(p, seed=seed)

    requests = 24
    generator = random.Random(1234)
    expected = [injected_as if generator.random() < 0.4 else 200 for _ in range(requests)]
    assert 200 in expected
    assert injected_as in expected

    set_probability(0.4, 1234)
    first = [outcome(fault_proxy, get) for _ in range(requests)]
    assert first == expected
    set_probability(0.4, 1234)  # A new generator: the same pattern again.
    assert [outcome(fault_proxy, get) for _ in range(requests)] == expected
    assert fault_proxy.injected(kind) == fault_proxy.injected() == 2 * expected.count(injected_as)

    fault_proxy.reset_counters()
    set_probability(0.0, 1234)
    assert [outcome(fault_proxy, get) for _ in range(requests)] == [200] * requests
    set_probability(1.0, None)
    assert [outcome(fault_proxy, get) for _ in range(3)] == [injected_as] * 3
    head = signed_target("head_object", s3_bucket, "small.bin")
    assert outcome(fault_proxy, head, "HEAD") == 200  # GET only, by default.
    assert fault_proxy.injected() == 3
    assert fault_proxy.requests() == requests + 4


def test_count_mode_takes_precedence_over_probability_mode(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "small.bin", DATA[:4096])
    get = signed_target("get_object", s3_bucket, "small.bin")
    fault_proxy.fail_probability(1.0)
    fault_proxy.fail_next(2, status=500)
    assert [outcome(fault_proxy, get) for _ in range(4)] == [500, 500, 503, 503]
    fault_proxy.reset_next(1)
    fault_proxy.fail_next(1, status=500)
    assert [outcome(fault_proxy, get) for _ in range(3)] == ["reset", 500, 503]
    fault_proxy.fail_probability(0)
    fault_proxy.truncate_probability(1.0, keep_bytes=10)
    fault_proxy.truncate_next(1, keep_bytes=4095)
    connection = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=30)
    try:
        connection.request("GET", get)
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            connection.getresponse().read()
    finally:
        connection.close()
    assert len(excinfo.value.partial) == 4095
    assert outcome(fault_proxy, get) == "truncated"
    assert fault_proxy.injected("fail") == 6
    assert fault_proxy.injected("reset") == 1
    assert fault_proxy.injected("truncate") == 2


def test_reset_next_resets_the_connection_without_a_response(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    get = signed_target("get_object", s3_bucket, "data.bin")
    fault_proxy.reset_next(2)

    connection = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=30)
    try:
        connection.request("GET", get)
        with pytest.raises(ConnectionResetError):
            connection.getresponse()
    finally:
        connection.close()

    # At the socket level: an RST (recv fails), not a FIN (recv would return b"").
    with socket.create_connection(("127.0.0.1", fault_proxy.port), timeout=30) as raw:
        raw.sendall(f"GET {get} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            raw.recv(1)

    response, body = raw_request(fault_proxy.url, "GET", get)
    assert (response.status, body) == (200, DATA)
    assert fault_proxy.injected() == fault_proxy.injected("reset") == 2
    assert fault_proxy.requests("GET") == 3

    fault_proxy.reset_next(1, methods=["HEAD"])
    head = signed_target("head_object", s3_bucket, "data.bin")
    assert outcome(fault_proxy, get) == 200
    assert outcome(fault_proxy, head, "HEAD") == "reset"
    assert outcome(fault_proxy, head, "HEAD") == 200


def test_s3fs_with_retries_reads_through_resets(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fs = make_fs(proxy_storage_options)
    fault_proxy.reset_next(2)
    assert fs.cat_file(f"{s3_bucket}/data.bin", start=10, end=20_000) == DATA[10:20_000]
    assert fault_proxy.injected("reset") == 2


def test_faults_are_thread_safe(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "small.bin", DATA[:1024])
    get = signed_target("get_object", s3_bucket, "small.bin")
    fault_proxy.fail_next(25)
    results: list[int | str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(15):
            result = outcome(fault_proxy, get)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [200] * 35 + [503] * 25
    assert fault_proxy.injected() == 25
    assert fault_proxy.requests("GET") == 60


def test_clear_faults_restores_plain_forwarding(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    get = signed_target("get_object", s3_bucket, "data.bin")
    fault_proxy.fail_next(1)
    assert outcome(fault_proxy, get) == 503

    fault_proxy.fail_next(5, methods=["GET", "HEAD"])
    fault_proxy.fail_probability(1.0)
    fault_proxy.truncate_next(5, keep_bytes=10)
    fault_proxy.truncate_probability(1.0, keep_bytes=10)
    fault_proxy.reset_next(5)
    fault_proxy.reset_probability(1.0)
    fault_proxy.delay_s = 5.0
    fault_proxy.bandwidth_bytes_per_s = 1000.0  # 256 s for DATA.
    fault_proxy.reset_counters()  # Counters only: the faults stay pending.
    assert outcome(fault_proxy, get) == "reset"
    assert fault_proxy.injected() == 1

    fault_proxy.clear_faults()
    assert fault_proxy.delay_s == 0
    assert fault_proxy.bandwidth_bytes_per_s is None
    assert fault_proxy.injected() == 1  # Counters are kept.
    started = time.perf_counter()
    for _ in range(3):
        response, body = raw_request(fault_proxy.url, "GET", get)
        assert (response.status, body) == (200, DATA)
    response, _ = raw_request(
        fault_proxy.url, "HEAD", signed_target("head_object", s3_bucket, "data.bin")
    )
    assert response.status == 200
    assert time.perf_counter() - started < 5.0
    assert fault_proxy.injected() == 1
    assert fault_proxy.requests() == 5


def test_delay_s_delays_every_response(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fs = make_fs(proxy_storage_options)
    fault_proxy.delay_s = 0.05
    started = time.perf_counter()
    fs.cat_file(f"{s3_bucket}/data.bin", start=0, end=10)
    assert time.perf_counter() - started >= 0.05


def test_delay_probability_is_reproducible_with_a_seed(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "small.bin", DATA[:4096])
    get = signed_target("get_object", s3_bucket, "small.bin")
    generator = random.Random(99)
    expected = sum(generator.random() < 0.3 for _ in range(20))
    assert 0 < expected < 20
    for _ in range(2):
        fault_proxy.reset_counters()
        fault_proxy.delay_probability(0.3, 0.001, seed=99)
        assert [outcome(fault_proxy, get) for _ in range(20)] == [200] * 20
        assert fault_proxy.injected("delay") == expected
    head = signed_target("head_object", s3_bucket, "small.bin")
    fault_proxy.reset_counters()
    fault_proxy.delay_probability(1.0, 0.001)  # GET only by default
    assert outcome(fault_proxy, head, "HEAD") == 200
    assert fault_proxy.injected("delay") == 0
    fault_proxy.clear_faults()
    assert outcome(fault_proxy, get) == 200
    assert fault_proxy.injected("delay") == 0


def test_a_client_that_hangs_up_during_a_delay_is_counted_and_not_answered(
    s3_server: S3Server, s3_bucket: str, fault_proxy: HttpFaultProxy
) -> None:
    s3_server.put_object(s3_bucket, "small.bin", DATA[:4096])
    get = signed_target("get_object", s3_bucket, "small.bin")
    fault_proxy.delay_probability(1.0, 60.0)
    connection = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=30)
    connection.request("GET", get)
    deadline = time.monotonic() + 15
    while fault_proxy.injected("delay") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    connection.close()
    while fault_proxy.abandoned() < 1:  # seen within a poll interval, not after 60 s
        assert time.monotonic() < deadline
        time.sleep(0.02)
    fault_proxy.reset_counters()
    assert fault_proxy.abandoned() == 0


def test_bandwidth_paces_the_body(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fs = make_fs(proxy_storage_options)
    fault_proxy.bandwidth_bytes_per_s = 1024 * 1024
    started = time.perf_counter()
    assert fs.cat_file(f"{s3_bucket}/data.bin") == DATA
    assert time.perf_counter() - started >= 0.2  # 256 KiB at 1 MiB/s takes 0.25 s.


def test_head_and_get_are_counted_separately(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: HttpFaultProxy,
    proxy_storage_options: dict[str, Any],
) -> None:
    s3_server.put_object(s3_bucket, "data.bin", DATA)
    fs = make_fs(proxy_storage_options)
    assert fs.info(f"{s3_bucket}/data.bin")["size"] == len(DATA)
    assert fs.cat_file(f"{s3_bucket}/data.bin", start=0, end=10) == DATA[:10]
    assert fault_proxy.requests("HEAD") == 1
    assert fault_proxy.requests("get") == 1
    assert fault_proxy.requests() == 2
    fault_proxy.reset_counters()
    assert fault_proxy.requests() == 0


def test_proxy_close_ends_connections_and_threads(s3_server: S3Server, s3_bucket: str) -> None:
    listing = signed_target("list_objects_v2", s3_bucket)
    threads_before = set(threading.enumerate())
    proxy = HttpFaultProxy(s3_server.endpoint_url)
    proxy.start()
    url = proxy.url
    # A kept-alive client connection whose handler thread waits for the next request.
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request("GET", listing)
        assert connection.getresponse().read()
        proxy.close()
        proxy.close()
        assert [t for t in threading.enumerate() if t not in threads_before] == []
    finally:
        connection.close()

    proxy.start()  # Restarts on the same port.
    try:
        assert proxy.url == url
        response, _ = raw_request(proxy.url, "GET", listing)
        assert response.status == 200
    finally:
        proxy.close()


def test_proxy_rejects_bad_controls(s3_server: S3Server) -> None:
    proxy = HttpFaultProxy(s3_server.endpoint_url)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = proxy.url
    with pytest.raises(ValueError, match="count"):
        proxy.fail_next(-1)
    with pytest.raises(ValueError, match="status"):
        proxy.fail_next(1, status=200)
    with pytest.raises(TypeError, match="iterable"):
        proxy.fail_next(1, methods="GET")
    with pytest.raises(ValueError, match="keep_bytes"):
        proxy.truncate_next(1, keep_bytes=-1)
    with pytest.raises(ValueError, match="delay_s"):
        proxy.delay_s = -0.1
    with pytest.raises(ValueError, match="bandwidth"):
        proxy.bandwidth_bytes_per_s = 0
    with pytest.raises(ValueError, match="http://"):
        HttpFaultProxy("https://example.com")
    for p in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="probability"):
            proxy.fail_probability(p)
        with pytest.raises(ValueError, match="probability"):
            proxy.truncate_probability(p, keep_bytes=0)
        with pytest.raises(ValueError, match="probability"):
            proxy.reset_probability(p)
        with pytest.raises(ValueError, match="probability"):
            proxy.delay_probability(p, 1.0)
    with pytest.raises(ValueError, match="delay_s"):
        proxy.delay_probability(0.5, -1.0)
    for retry_after_s in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="retry_after_s"):
            proxy.fail_next(1, retry_after_s=retry_after_s)
        with pytest.raises(ValueError, match="retry_after_s"):
            proxy.fail_probability(0.5, retry_after_s=retry_after_s)
    with pytest.raises(ValueError, match="status"):
        proxy.fail_probability(0.5, status=302)
    with pytest.raises(ValueError, match="keep_bytes"):
        proxy.truncate_probability(0.5, keep_bytes=-1)
    with pytest.raises(ValueError, match="count"):
        proxy.reset_next(-1)
    with pytest.raises(TypeError, match="iterable"):
        proxy.reset_probability(0.5, methods="GET")
    with pytest.raises(ValueError, match="kind"):
        proxy.injected("timeout")  # type: ignore[arg-type]


def test_server_reset_and_restart() -> None:
    with S3Server() as server:
        fs = make_fs(server.storage_options())
        server.create_bucket("harness")
        server.put_object("harness", "a.bin", b"abc")
        assert fs.cat_file("harness/a.bin") == b"abc"
        server.reset()
        with pytest.raises(FileNotFoundError):
            fs.cat_file("harness/a.bin")

        server.create_bucket("harness")
        server.put_object("harness", "a.bin", b"abc")
        port = server.port
        server.close()
        server.start()  # Same port, empty storage.
        assert server.port == port
        with pytest.raises(FileNotFoundError):
            fs.cat_file("harness/a.bin")
        server.create_bucket("harness")
        server.put_object("harness", "a.bin", b"def")
        assert fs.cat_file("harness/a.bin") == b"def"


def test_server_close_leaves_no_process() -> None:
    server = S3Server()
    server.start()
    pid, log_path = server.pid, server.log_path
    assert pid is not None
    assert log_path is not None
    assert log_path.exists()
    server.close()
    server.close()
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not log_path.exists()


def test_server_start_failure_reports_log_tail() -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        server = S3Server(occupied.getsockname()[1])
        with pytest.raises(RuntimeError, match="exited with code") as excinfo:
            server.start()
    assert "in use" in str(excinfo.value)
    assert server.pid is None
