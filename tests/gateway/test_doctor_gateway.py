"""``tiercache doctor --gateway URL`` against a real embedded gateway over the S3 server, and
against what is not one: a closed port, a socket that never answers, another HTTP server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tiercache import Settings, TieredFileSystem
from tiercache.cli.doctor import run_doctor
from tiercache.cli.doctor.gateway import HEALTH_BUDGET_S
from tiercache.cli.main import main
from tiercache.gateway import Gateway, start
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration

KEY_ID = "doctor-engine"
SECRET = "doctor-secret-0123456789abcdef"
CHECKS = ("gateway-health", "gateway-stats", "gateway-s3")


def _bucket(s3_server: S3Server) -> str:
    name = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


def _lines(out: str) -> dict[str, str]:
    """The report's lines by check name."""
    return {line.split()[0]: line for line in out.splitlines() if line.startswith("gateway-")}


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCACHE_")}
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tiercache.cli.main", *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def secured(s3_server: S3Server) -> Iterator[Gateway]:
    """A gateway that verifies every request's signature against ``KEY_ID`` / ``SECRET``."""
    fs = TieredFileSystem(
        target_protocol="s3",
        target_options={**s3_server.storage_options(), "skip_instance_cache": True},
        settings=Settings(
            memory_bytes=16 << 20, gateway_access_key_id=KEY_ID, gateway_secret_access_key=SECRET
        ),
        skip_instance_cache=True,
    )
    with start(fs) as running:
        yield running


def test_doctor_passes_against_a_running_gateway(
    s3_server: S3Server, gateway: Gateway, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(s3_server)
    client.list_objects_v2(Bucket=bucket)  # traffic the stats check must count
    with pytest.raises(ClientError, match="NoSuchKey"):
        client.get_object(Bucket=bucket, Key="missing")
    assert main(["doctor", "--gateway", gateway.endpoint_url]) == 0
    lines = _lines(capsys.readouterr().out)
    assert sorted(lines) == sorted(CHECKS)
    assert all(lines[name].split()[1] == "OK" for name in CHECKS), lines
    assert "ListBuckets through" in lines["gateway-s3"]
    assert "buckets: " in lines["gateway-s3"]

    report = run_doctor(
        Settings(memory_bytes=0), gateway=gateway.endpoint_url, gateway_bucket=bucket
    )
    checks = {check.name: check for check in report.checks}
    assert report.ok
    assert sorted(checks) == sorted(CHECKS)
    stats: Any = checks["gateway-stats"].detail
    assert stats["by_operation"]["ListObjectsV2"] == {"200": 1}
    assert stats["by_operation"]["GetObject"] == {"404": 1}
    assert stats["4xx"] == 1
    assert stats["5xx"] == 0
    assert stats["requests"] >= 5  # the two above, the first doctor's three, this health
    assert checks["gateway-s3"].where == f"HeadBucket {bucket} through {gateway.endpoint_url}"


def test_doctor_signs_with_the_gateway_credentials(
    s3_server: S3Server,
    secured: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = _bucket(s3_server)
    monkeypatch.setenv("TIERCACHE_GATEWAY_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("TIERCACHE_GATEWAY_SECRET_ACCESS_KEY", SECRET)
    arguments = ["doctor", "--gateway", secured.endpoint_url, "--gateway-bucket", bucket]
    assert main(arguments) == 0
    lines = _lines(capsys.readouterr().out)
    assert all(lines[name].split()[1] == "OK" for name in CHECKS), lines

    monkeypatch.setenv("TIERCACHE_GATEWAY_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    assert main(arguments) == 1
    out = capsys.readouterr().out
    lines = _lines(out)
    assert lines["gateway-health"].split()[1] == "OK"  # needs no signature
    assert "answered 403 SignatureDoesNotMatch" in lines["gateway-stats"]
    assert "answered 403 AccessDenied" in lines["gateway-s3"]  # a HEAD: no body, the status
    assert f"signed as TIERCACHE_GATEWAY_ACCESS_KEY_ID={KEY_ID!r}" in lines["gateway-s3"]
    assert "not-the-secret-at-all" not in out

    monkeypatch.delenv("TIERCACHE_GATEWAY_ACCESS_KEY_ID")
    monkeypatch.delenv("TIERCACHE_GATEWAY_SECRET_ACCESS_KEY")
    assert main(["doctor", "--gateway", secured.endpoint_url]) == 1
    lines = _lines(capsys.readouterr().out)
    assert "answered 403 InvalidAccessKeyId" in lines["gateway-s3"]
    assert "TIERCACHE_GATEWAY_ACCESS_KEY_ID is unset" in lines["gateway-s3"]


def test_doctor_against_a_closed_port_fails_in_one_line() -> None:
    # A socket bound but not listening: connecting to its port is refused, and no other
    # process can take the port while the test holds it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        result = _run_cli("doctor", "--gateway", f"http://127.0.0.1:{port}")
    assert result.returncode == 1, result
    lines = _lines(result.stdout)
    assert list(lines) == ["gateway-health"], result.stdout  # one line: nothing else to say
    assert lines["gateway-health"].split()[1] == "FAIL"
    assert f"http://127.0.0.1:{port} refused the connection" in lines["gateway-health"]
    assert result.stdout.splitlines()[-1].endswith("FAIL")
    assert "Traceback" not in result.stderr + result.stdout


def test_doctor_against_a_gateway_that_never_answers_gives_up_in_time() -> None:
    # Listening, never accepting: the connection is made (the kernel's backlog), no answer.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        report = run_doctor(Settings(memory_bytes=0), gateway=url)
        elapsed = time.monotonic() - began
    (check,) = report.checks
    assert (check.name, check.ok) == ("gateway-health", False)
    assert check.reason == f"no answer from {url} within {HEALTH_BUDGET_S * 1000:.1f} ms"
    assert HEALTH_BUDGET_S <= elapsed < HEALTH_BUDGET_S + 2.0
    assert report.exit_status == 1


def test_doctor_against_another_http_server_fails_health(s3_server: S3Server) -> None:
    report = run_doctor(Settings(memory_bytes=0), gateway=s3_server.endpoint_url)
    checks = {check.name: check for check in report.checks}
    assert checks["gateway-health"].ok is False
    assert checks["gateway-health"].reason is not None
    assert "answered 404, not 200" in checks["gateway-health"].reason
    assert report.exit_status == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--gateway", "127.0.0.1:9000"], "expected http://HOST:PORT"),
        (["--gateway", "ftp://127.0.0.1:9000"], "expected http://HOST:PORT"),
        (["--gateway", "http://127.0.0.1:9000/bucket"], "only the scheme, host and port"),
        (["--gateway", "http://user:s3cret@127.0.0.1:9000"], "'http://user:***@127.0.0.1:9000'"),
        (["--gateway", "http://127.0.0.1:99999"], "out of range"),
        (["--gateway-bucket", "b"], "--gateway-bucket needs --gateway"),
        (["--gateway", "http://127.0.0.1:9", "--gateway-bucket", "a/b"], "not a bucket name"),
    ],
)
def test_bad_gateway_arguments_are_configuration_errors(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before anything was checked
    assert captured.err.startswith("tiercache doctor: configuration error: ")
    assert message in captured.err
    assert "s3cret" not in captured.err  # a password in the URL is never shown


def test_json_report_carries_the_gateway_checks(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--set", "TIERCACHE_MEMORY_BYTES=0", "--gateway", gateway.endpoint_url]
    assert main(["doctor", *arguments, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [check["name"] for check in document["checks"]] == list(CHECKS)
    assert document["checks"][0]["latency_ms"]["health"] > 0
