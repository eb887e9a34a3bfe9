"""What clients see when a worker of ``tiercache serve``, or the whole sidecar, is killed in the
middle of their reads: boto3 threads read through it, SIGKILL comes, every body is compared with
the origin's bytes. The figures in docs/gateway.md ("What a client sees when the gateway
restarts") come from these tests: ``pytest tests/gateway/test_restarts.py -s`` prints them.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.gateway.sidecar import Sidecar, s3_client, sidecars
from tests.helpers import letters
from tiercache.testing import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
__all__ = ["sidecars"]  # a fixture


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"serve-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


READERS = 4
OBJECTS = 8
OBJECT_BYTES = 1 << 20


@dataclass
class Seen:
    """What the reading clients saw."""

    requests: int = 0
    retried_successes: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong_bytes: int = 0
    longest_request_s: float = 0.0
    longest_gap_s: float = 0.0  # the longest time without a GET completing successfully
    outage_s: float = 0.0  # from the kill until the gateway served again

    def line(self, scenario: str) -> str:
        return (
            f"{scenario}: {self.requests} GETs, {sum(self.errors.values())} failed "
            f"{dict(self.errors)}, {self.retried_successes} succeeded after a retry, "
            f"longest GET {self.longest_request_s:.2f} s, longest gap between successes "
            f"{self.longest_gap_s:.2f} s, serving again {self.outage_s:.2f} s after the kill"
        )


#: botocore's retry modes: "standard" with 3 attempts (a first retry after 0-1 s, a second
#: after 0-2 s), and boto3's default, "legacy" (5 attempts, after 0-1, 0-2, 0-4, 0-8 s).
RETRIES: dict[str, dict[str, Any]] = {
    "standard, 3 attempts": {"mode": "standard", "total_max_attempts": 3},
    "legacy, 5 attempts": {"mode": "legacy"},
}


def _read_while(
    endpoint_url: str,
    bucket: str,
    data: dict[str, bytes],
    disrupt: Callable[[], float],
    retries: str = "standard, 3 attempts",
) -> Seen:
    """Run READERS threads of boto3 GETs, call ``disrupt`` a second in (it returns the seconds
    until the gateway served again), read 2 s more."""
    client = s3_client(
        endpoint_url,
        retries=RETRIES[retries],
        max_pool_connections=READERS,
        connect_timeout=5,
        read_timeout=20,
    )
    seen = Seen()
    lock = threading.Lock()
    stop = threading.Event()
    successes: list[float] = []

    def read(reader: int) -> None:
        n = reader
        while not stop.is_set():
            key = f"o{n % OBJECTS}"
            n += 1
            began = time.monotonic()
            error = None
            try:
                answer = client.get_object(Bucket=bucket, Key=key)
                body = answer["Body"].read()
            except Exception as exc:  # what the client saw, counted by kind
                error = type(exc).__name__
            ended = time.monotonic()
            with lock:
                seen.requests += 1
                seen.longest_request_s = max(seen.longest_request_s, ended - began)
                if error is not None:
                    seen.errors[error] += 1
                elif body != data[key]:
                    seen.wrong_bytes += 1
                else:
                    successes.append(ended)
                    seen.retried_successes += answer["ResponseMetadata"]["RetryAttempts"] > 0

    threads = [threading.Thread(target=read, args=(i,)) for i in range(READERS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    seen.outage_s = disrupt()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    times = sorted(successes)
    seen.longest_gap_s = max((b - a for a, b in itertools.pairwise(times)), default=0)
    return seen


def _objects(s3_server: S3Server, bucket: str) -> dict[str, bytes]:
    data = {}
    for i in range(OBJECTS):
        key = f"o{i}"
        data[key] = bytes([i]) + letters(OBJECT_BYTES - 1)
        s3_server.put_object(bucket, key, data[key])
    return data


def _replaced(sidecar: Sidecar, victim: int, count: int) -> Callable[[], bool]:
    def check() -> bool:
        workers = sidecar.workers()
        return victim not in workers and len(workers) == count

    return check


def _wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _served(endpoint_url: str, bucket: str) -> Callable[[], bool]:
    probe = s3_client(endpoint_url, connect_timeout=1, read_timeout=5)

    def check() -> bool:
        try:
            probe.head_object(Bucket=bucket, Key="o0")
        except Exception:
            return False
        return True

    return check


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_worker_never_closes_the_port(
    s3_server: S3Server, bucket: str, sidecars: Callable[..., Sidecar], workers: int
) -> None:
    data = _objects(s3_server, bucket)
    sidecar = sidecars(s3_server, "--workers", str(workers))
    sidecar.wait_ready()
    _wait(lambda: len(sidecar.workers()) == workers)

    def kill_a_worker() -> float:
        victim = sidecar.workers()[0]
        began = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        _wait(_replaced(sidecar, victim, workers))
        _wait(_served(sidecar.endpoint_url, bucket))
        return time.monotonic() - began

    seen = _read_while(sidecar.endpoint_url, bucket, data, kill_a_worker)
    print(seen.line(f"worker killed, --workers {workers}"))
    assert seen.wrong_bytes == 0
    # The port stayed open: no client was refused a connection; at most the requests the
    # worker had under way failed (each reader has one), the others were retried.
    assert "EndpointConnectionError" not in seen.errors
    assert sum(seen.errors.values()) <= READERS
    assert seen.requests > 10 * READERS
    assert sidecar.process.poll() is None


@pytest.mark.parametrize(
    ("restart_after_s", "retries"),
    [(0.0, "standard, 3 attempts"), (3.0, "standard, 3 attempts"), (3.0, "legacy, 5 attempts")],
)
def test_a_killed_sidecar_restarted_on_its_port(
    s3_server: S3Server,
    bucket: str,
    sidecars: Callable[..., Sidecar],
    restart_after_s: float,
    retries: str,
) -> None:
    data = _objects(s3_server, bucket)
    first = sidecars(s3_server)
    first.wait_ready()
    endpoint_url = first.endpoint_url

    def kill_and_restart() -> float:
        began = time.monotonic()
        first.kill_all()
        time.sleep(restart_after_s)  # 0: a supervisor's immediate restart; 3: a slower one
        second = sidecars(s3_server, listen=first.address)
        assert second.wait_ready() == first.address
        return time.monotonic() - began

    seen = _read_while(endpoint_url, bucket, data, kill_and_restart, retries)
    print(seen.line(f"sidecar killed, restarted after {restart_after_s:.0f} s ({retries})"))
    assert seen.wrong_bytes == 0
    assert seen.requests > 10 * READERS
    # What failed failed cleanly: a connection refused while the port was closed, or a body
    # the kill cut short (botocore does not retry reading a body: at most one per reader, the
    # request it had under way when the kill came).
    assert set(seen.errors) <= {"EndpointConnectionError", "ResponseStreamingError"}
    assert seen.errors["ResponseStreamingError"] <= READERS
    # Served again: every reader reads again after the restart.
    client = s3_client(endpoint_url)
    assert all(client.get_object(Bucket=bucket, Key=k)["Body"].read() == data[k] for k in data)
