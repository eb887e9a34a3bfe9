"""Integration: ``tiercache doctor`` against real tiers and real processes.

Memory, disk (a temporary directory) and Redis (a real ``redis-server``), healthy and broken:
a disk directory that is a file, a killed Redis, a frozen (SIGSTOPped) Redis, a Redis frozen
after the tier connected, and custom tiers that hang or are slow. The frozen cases are hang
checks, not benchmarks: each asserts that doctor answers FAIL within a generous bound
(``HANG_BOUND_S``), far below what a hung call would take (forever) and far above the budget
plus grace doctor allows itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from tiercache import BlockKey, BlockKind, RedisTier, Settings
from tiercache.cli.doctor import HANG_GRACE_S, DoctorReport, format_report, run_doctor
from tiercache.cli.main import main
from tiercache.errors import ConfigError
from tiercache.testing.servers.redis import RedisServer

pytestmark = pytest.mark.integration

#: A generous bound for "did not hang": doctor should answer in about the Redis timeout plus a
#: little (well under a second here); a whole CLI process, imports included, gets 5 s.
HANG_BOUND_S = 5.0
REDIS_TIMEOUT = "250ms"
PASSWORD = "doctor-redis-password-123"
HMAC_KEY = "doctor-hmac-key-0123456789"


def run_cli(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``tiercache`` in a child process with only ``env``'s TIERCACHE_* variables."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCACHE_")}
    child_env.update(env)
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tiercache.cli.main", *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - began


def by_name(report: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check for check in checks}


def line_of(out: str, name: str) -> str:
    (line,) = [line for line in out.splitlines() if line.split()[:1] == [name]]
    return line


@pytest.fixture
def frozen_later() -> Iterator[list[int]]:
    """Pids to SIGSTOP in a test; every one of them is SIGCONTed afterwards, whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# --- healthy ----------------------------------------------------------------------------------


def test_all_tiers_ok(
    redis_fresh: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TIERCACHE_DISK_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TIERCACHE_REDIS_URL", redis_fresh.url)
    monkeypatch.setenv("TIERCACHE_REDIS_HMAC_KEY", HMAC_KEY)
    # Generous budgets: this checks that every step works, not how fast a busy machine is.
    monkeypatch.setenv("TIERCACHE_DISK_TIMEOUT", "2s")
    monkeypatch.setenv("TIERCACHE_REDIS_TIMEOUT", "2s")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["memory", "OK"],
        ["disk", "OK"],
        ["redis", "OK"],
    ]
    for line in lines[:3]:
        for step in ("start", "write", "read", "delete", "gone"):
            assert f" {step} " in line
    assert lines[3].startswith("3 of 3 usable")
    # The probe leaves nothing behind.
    with redis_fresh.client() as client:
        assert client.dbsize() == 0
    with diskcache.Cache(str(tmp_path / "cache" / "tiercache-v1")) as cache:
        assert len(cache) == 0


def test_all_tiers_ok_json(redis_fresh: RedisServer, tmp_path: Path) -> None:
    env = {
        "TIERCACHE_DISK_DIR": str(tmp_path),
        "TIERCACHE_REDIS_URL": redis_fresh.url,
        "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
        "TIERCACHE_DISK_TIMEOUT": "2s",
        "TIERCACHE_REDIS_TIMEOUT": "2s",
    }
    result, _ = run_cli("doctor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["exit_status"] == 0
    checks = by_name(report)
    assert list(checks) == ["memory", "disk", "redis"]
    for name, check in checks.items():
        assert check["status"] == "OK"
        assert check["reason"] is None
        latency = check["latency_ms"]
        assert isinstance(latency, dict)
        assert list(latency) == ["start", "write", "read", "delete", "gone"]
        assert all(isinstance(ms, float) and ms >= 0 for ms in latency.values()), name
    assert checks["disk"]["ready"] is True
    assert checks["disk"]["budget_ms"] == 2000.0
    assert checks["redis"]["ready"] is True
    assert checks["redis"]["where"] == redis_fresh.url
    assert checks["memory"]["budget_ms"] is None  # in process: no guard, no budget


def test_password_and_hmac_key_are_never_printed(tmp_path: Path) -> None:
    with RedisServer(password=PASSWORD) as server:
        good = {
            "TIERCACHE_REDIS_URL": f"redis://:{PASSWORD}@{server.host}:{server.port}/0",
            "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
            "TIERCACHE_REDIS_TIMEOUT": "2s",
        }
        result, _ = run_cli("doctor", env=good)
        assert result.returncode == 0, result.stdout + result.stderr
        assert line_of(result.stdout, "redis").split()[1] == "OK"
        assert f"redis://:***@{server.host}:{server.port}/0" in result.stdout
        # The probe wrote under the HMAC key and read back through it.
        wrong = dict(
            good, TIERCACHE_REDIS_URL=good["TIERCACHE_REDIS_URL"].replace(PASSWORD, "x" * 20)
        )
        bad, _ = run_cli("doctor", "--json", env=wrong)
        assert bad.returncode == 1
        redis_check = by_name(json.loads(bad.stdout))["redis"]
        assert redis_check["ready"] is False
        assert "not ready after start" in str(redis_check["reason"])
        for output in (result, bad):
            for text in (output.stdout, output.stderr):
                assert PASSWORD not in text
                assert HMAC_KEY not in text
                assert "x" * 20 not in text


def test_set_configures_doctor_like_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "doctor",
        "--set",
        f"TIERCACHE_DISK_DIR={tmp_path}",
        "--set",
        "TIERCACHE_DISK_TIMEOUT=2s",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert line_of(out, "disk").split()[1] == "OK"
    assert str(tmp_path) in line_of(out, "disk")


def test_memory_off_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["doctor", "--json", "--set", "TIERCACHE_MEMORY_BYTES=0"]
    assert (
        main(
            [*args, "--set", f"TIERCACHE_DISK_DIR={tmp_path}", "--set", "TIERCACHE_DISK_TIMEOUT=2s"]
        )
        == 0
    )
    assert list(by_name(json.loads(capsys.readouterr().out))) == ["disk"]


# --- broken tiers -----------------------------------------------------------------------------


def test_disk_dir_that_is_a_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("not a directory")
    assert main(["doctor", "--set", f"TIERCACHE_DISK_DIR={not_a_dir}"]) == 1
    out = capsys.readouterr().out
    line = line_of(out, "disk")
    assert line.split()[1] == "FAIL"
    assert "not ready after start" in line
    assert "NotADirectoryError" in line
    assert str(not_a_dir) in line
    assert line_of(out, "memory").split()[1] == "OK"  # the other tiers are still checked
    assert out.splitlines()[-1].endswith("FAIL")


def test_disk_dir_with_a_planted_symlink_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tiercache-v1").symlink_to(victim)
    assert main(["doctor", "--set", f"TIERCACHE_DISK_DIR={tmp_path / 'cache'}"]) == 1
    line = line_of(capsys.readouterr().out, "disk")
    assert line.split()[1] == "FAIL"
    assert f"{tmp_path / 'cache' / 'tiercache-v1'} is a symlink; refusing to follow it" in line
    assert os.listdir(victim) == []


def test_disk_dir_others_may_write_to_is_ok_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Kubernetes emptyDir is 0777 without the sticky bit: usable, and doctor says so."""
    mount = tmp_path / "emptydir"
    mount.mkdir()
    mount.chmod(0o777)
    args = ["doctor", "--set", f"TIERCACHE_DISK_DIR={mount}", "--set", "TIERCACHE_DISK_TIMEOUT=2s"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert line_of(out, "disk").split()[1] == "OK"
    assert (
        f"WARNING: disk: {mount} is writable by group/others without the sticky bit (mode 0777)"
        in out
    )


def test_disk_dir_that_is_a_file_fails_json(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("not a directory")
    result, _ = run_cli("doctor", "--json", env={"TIERCACHE_DISK_DIR": str(not_a_dir)})
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["exit_status"] == 1
    disk = by_name(report)["disk"]
    assert disk["status"] == "FAIL"
    assert disk["ready"] is False
    assert "NotADirectoryError" in str(disk["last_error"])
    assert list(disk["latency_ms"]) == ["start"]  # type: ignore[call-overload]  # no probe


def test_killed_redis_fails_quickly() -> None:
    with RedisServer() as server:
        url = server.url
        server.kill()
        result, elapsed = run_cli(
            "doctor",
            env={
                "TIERCACHE_REDIS_URL": url,
                "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
                "TIERCACHE_REDIS_TIMEOUT": REDIS_TIMEOUT,
            },
        )
    assert result.returncode == 1, result.stdout + result.stderr
    line = line_of(result.stdout, "redis")
    assert line.split()[1] == "FAIL"
    assert "not ready after start" in line
    assert "ConnectionError" in line
    assert line_of(result.stdout, "memory").split()[1] == "OK"
    assert elapsed < HANG_BOUND_S


def test_stopped_redis_fails_within_the_bound(frozen_later: list[int]) -> None:
    with RedisServer() as server:
        assert server.pid is not None
        frozen_later.append(server.pid)
        os.kill(server.pid, signal.SIGSTOP)  # the kernel still accepts connections
        try:
            result, elapsed = run_cli(
                "doctor",
                "--json",
                env={
                    "TIERCACHE_REDIS_URL": server.url,
                    "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
                    "TIERCACHE_REDIS_TIMEOUT": REDIS_TIMEOUT,
                },
            )
        finally:
            os.kill(server.pid, signal.SIGCONT)
    assert result.returncode == 1, result.stdout + result.stderr
    redis_check = by_name(json.loads(result.stdout))["redis"]
    assert redis_check["status"] == "FAIL"
    assert redis_check["ready"] is False
    assert "Timeout" in str(redis_check["reason"])
    assert elapsed < HANG_BOUND_S, f"doctor took {elapsed:.1f} s on a frozen Redis"


def test_redis_stopped_after_connecting_fails_within_the_bound(frozen_later: list[int]) -> None:
    """The tier connected, then the server froze: the write step times out, doctor goes on."""
    with RedisServer() as server:
        assert server.pid is not None
        tier = RedisTier(
            server.url, timeout_s=0.25, prefix=f"d{uuid.uuid4().hex[:8]}:", hmac_key=HMAC_KEY
        )
        assert tier.ready
        frozen_later.append(server.pid)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            report = run_doctor(Settings(redis_timeout_s=0.25), tiers=[tier])
            elapsed = time.monotonic() - began
        finally:
            os.kill(server.pid, signal.SIGCONT)
    (check,) = report.checks
    assert not check.ok
    assert report.exit_status == 1
    assert check.reason is not None
    # The Redis tier translates redis-py's socket timeout into a timeout of its own.
    assert check.reason.startswith("write failed: TierTimeoutError: redis: TimeoutError")
    assert list(check.latency_ms) == ["write"]
    assert elapsed < HANG_BOUND_S


# --- bounded steps, with tiers that misbehave on purpose --------------------------------------


class SlowTier:
    """A tier whose writes take ``delay_s``, or block until ``release`` is set."""

    def __init__(self, name: str, *, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.release = threading.Event()
        self.blocks: dict[BlockKey, bytes] = {}
        self.closed = False

    def accepts(self, kind: BlockKind, /) -> bool:
        return True

    def get(self, key: BlockKey, /) -> bytes | None:
        return self.blocks.get(key)

    def put(self, key: BlockKey, data: bytes, /) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        else:
            self.release.wait()
        self.blocks[key] = data

    def delete_object(self, target: str, path: str, /) -> None:
        for key in [k for k in self.blocks if (k.target, k.path) == (target, path)]:
            del self.blocks[key]

    def close(self) -> None:
        self.closed = True


def test_a_hung_step_is_abandoned() -> None:
    tier = SlowTier("disk")  # its budget is TIERCACHE_DISK_TIMEOUT
    try:
        began = time.monotonic()
        report = run_doctor(Settings(disk_timeout_s=0.1), tiers=[tier])
        elapsed = time.monotonic() - began
    finally:
        tier.release.set()
    (check,) = report.checks
    assert not check.ok
    assert check.reason is not None
    assert check.reason.startswith("write hung")
    assert check.latency_ms["write"] > 100 + HANG_GRACE_S * 500  # it waited past the budget
    assert elapsed < HANG_BOUND_S
    assert tier.closed  # closed from another thread than the stuck one


def test_a_step_over_the_budget_fails_as_slow() -> None:
    class Budgeted(SlowTier):
        timeout_s = 0.05  # its own budget (BudgetedTier), as the chain's guard would take it

    tier = Budgeted("disk", delay_s=0.15)
    report = run_doctor(Settings(disk_timeout_s=2.0), tiers=[tier])  # never by its name
    (check,) = report.checks
    assert not check.ok
    assert check.reason is not None
    assert "over the 50.0 ms budget" in check.reason
    assert check.latency_ms["write"] >= 150
    assert tier.blocks == {}  # the probe block written late was cleaned up
    assert "over the 50.0 ms budget" in format_report(report)


def test_a_tier_that_returns_other_bytes_fails() -> None:
    class Liar(SlowTier):
        def get(self, key: BlockKey, /) -> bytes | None:
            data = self.blocks.get(key)
            return None if data is None else data[::-1] + b"!"

    report = run_doctor(Settings(), tiers=[Liar("liar", delay_s=0.001)])
    (check,) = report.checks
    assert check.reason == "read back 65 bytes that differ from the 64 written"


# --- origin -----------------------------------------------------------------------------------


def test_origin_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "part-0.parquet"
    data.write_bytes(b"x" * 1234)
    assert main(["doctor", "--json", "--url", f"tiercache::file://{data}"]) == 0
    origin = by_name(json.loads(capsys.readouterr().out))["origin"]
    assert origin["status"] == "OK"
    assert origin["detail"] == {"size": 1234, "type": "file"}
    assert list(origin["latency_ms"]) == ["info"]  # type: ignore[call-overload]


def test_missing_origin_object_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--url", f"tiercache::file://{tmp_path}/missing"]) == 1
    line = line_of(capsys.readouterr().out, "origin")
    assert line.split()[1] == "FAIL"
    assert "FileNotFoundError" in line


def test_unknown_origin_protocol_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor", "--url", "tiercache::nosuchproto://bucket/key"]) == 2
    assert "nosuchproto" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        run_doctor(Settings(), "nosuchproto://bucket/key")


def test_origin_on_s3(s3_bucket: str, s3_storage_options: dict[str, object]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_storage_options)
    fs.pipe(f"{s3_bucket}/table/part-0.parquet", b"y" * 100)
    report = run_doctor(
        Settings(),
        f"tiercache::s3://{s3_bucket}/table/part-0.parquet",
        storage_options=s3_storage_options,
    )
    assert isinstance(report, DoctorReport)
    origin = report.checks[-1]
    assert origin.name == "origin"
    assert origin.ok, origin.reason
    assert origin.detail["size"] == 100
    missing = run_doctor(Settings(), f"s3://{s3_bucket}/nope", storage_options=s3_storage_options)
    assert not missing.ok
    assert missing.exit_status == 1
