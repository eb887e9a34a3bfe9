"""`tiercache demo` end to end: a real S3 server, a Delta table, DataFusion SQL through tiers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import HMAC_KEY
from tiercache.cli.main import main
from tiercache.testing import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "tiercache.cli.main", "demo", "--rows", "5000", "--latency", "0"]
TIMEOUT_S = 120.0


def run_demo(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the demo; on a timeout interrupt it (so it removes its S3 server) before failing."""
    process = subprocess.Popen(
        [*DEMO, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=20)
        finally:
            process.kill()
        pytest.fail(f"demo took more than {TIMEOUT_S:g} s; stderr:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def phases(query: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {phase["phase"]: phase for phase in query["phases"]}


@pytest.mark.integration
def test_demo_json_cold_reads_the_origin_and_warm_does_not() -> None:
    result = run_demo("--json")
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["results_equal"] is True
    assert report["rows"] == 5000
    assert report["tiers"] == ["memory", "disk"]
    assert [q["name"] for q in report["queries"]] == ["trace lookup", "window p95"]
    for query in report["queries"]:
        assert query["results_equal"] is True, query["name"]
        by_phase = phases(query)
        assert list(by_phase) == ["direct", "native direct", "cold", "warm"]
        direct, cold, warm = by_phase["direct"], by_phase["cold"], by_phase["warm"]
        native = by_phase["native direct"]
        assert direct["rows"] == native["rows"] == cold["rows"] == warm["rows"] > 0
        assert native["origin_requests"] > 0
        assert cold["origin_requests"] > 0, query["name"]
        assert cold["origin_bytes"] > 0
        assert warm["origin_requests"] == 0, query["name"]
        assert warm["origin_bytes"] == 0
        # Cold: every block missed every tier; warm: every block a RAM hit.
        assert cold["tiers"]["memory"]["misses"] > 0
        assert cold["tiers"]["disk"]["misses"] > 0
        assert cold["tiers"]["disk"]["bytes_written"] > 0  # filled behind the read
        assert warm["tiers"]["memory"]["hits"] > 0
        assert warm["tiers"]["memory"]["misses"] == 0
    lookup = report["queries"][0]
    assert len({row["trace_id"] for row in lookup["result"]}) == 1
    # Progress went to stderr, one short line per step.
    assert "starting a local S3 server" in result.stderr
    assert "writing commit 7/7" in result.stderr
    assert "query 2, window p95: warm" in result.stderr


@pytest.mark.integration
def test_demo_prints_the_table() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    header = "query         phase          open ms  latency ms  rows  origin req  origin KiB"
    assert f"{header}  memory hit/miss" in out
    cold = r"^trace lookup  cold\s+\d+\.\d\s+\d+\.\d\s+\d+\s+[1-9]\d*\s"
    assert re.search(cold, out, re.MULTILINE)
    warm = r"^window p95    warm\s+-\s+\d+\.\d\s+\d+\s+0\s+0\s+[1-9]\d*/0\s"
    assert re.search(warm, out, re.MULTILINE)
    assert "trace lookup: direct, native direct, cold and warm results equal" in out
    assert "window p95: direct, native direct, cold and warm results equal" in out
    assert "DIFFERENT" not in out


@pytest.mark.integration
def test_demo_with_redis(redis_fresh: RedisServer) -> None:
    env = {
        **os.environ,
        "TIERCACHE_REDIS_URL": redis_fresh.url,
        "TIERCACHE_REDIS_HMAC_KEY": HMAC_KEY,
    }
    result = run_demo("--json", env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["tiers"] == ["memory", "disk", "redis"]
    for query in report["queries"]:
        cold = phases(query)["cold"]
        assert cold["tiers"]["redis"]["state"] == "closed"
        assert cold["tiers"]["redis"]["bytes_written"] > 0  # footers shared for other pods
        assert phases(query)["warm"]["origin_requests"] == 0
    with redis_fresh.client() as client:
        keys = list(client.scan_iter(match="tiercache:demo-*", count=1000))
        assert keys, "the demo's cold runs write under tiercache:demo-<run>-<query>:"
        assert all(0 < client.ttl(key) <= 3600 * 1.1 for key in keys)


def _refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.integration
def test_interrupted_demo_removes_its_server_and_directories(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tiercache.cli.main", "demo", "--rows", "200000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        for line in process.stderr:  # wait until the table is being written
            found = re.search(r"S3 at http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
            if "writing commit 2/" in line or time.monotonic() > deadline:
                break
        assert port is not None
        assert not _refuses(port)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == 130, rest[-4000:]
    assert "interrupted" in rest
    assert _refuses(port)  # the moto server (in a session of its own) is gone
    assert list(tmp_path.iterdir()) == []  # scratch directory, disk tiers and server log


def test_missing_packages_exit_2_and_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)  # find_spec() then says "not installed"
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "deltalake" in err
    assert "pip install 'tiercache[demo]'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--rows", "5"], "--rows must be at least"), (["--latency", "soon"], "--latency")],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == 2
    assert message in capsys.readouterr().err
