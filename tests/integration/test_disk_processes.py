"""Integration: processes of one pod sharing one disk-tier directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    for i in range(8):
        (directory / f"part-{i}.bin").write_bytes(os.urandom(2 << 20))
    return directory


def child_env(disk_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCACHE_")}
    env.update(
        TIERCACHE_DISK_DIR=str(disk_dir),
        TIERCACHE_BLOCK_SIZE="64KiB",
        TIERCACHE_FILL_QUEUE="100000",  # this test wants every fill kept, not dropped
        TIERCACHE_FILL_QUEUE_BYTES="1GiB",  # in bytes too
        TIERCACHE_DISK_TIMEOUT="2s",  # shared CI machines: a slow fsync is not the point here
        **extra,
    )
    return env


def start(mode: str, data_dir: Path, count: int, seed: int, env: dict[str, str]) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.disk_child", mode, str(data_dir), str(count), str(seed)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: Any) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-4000:]
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def test_a_second_process_rereads_1000_ranges_with_no_origin_data_reads(
    data_dir: Path, tmp_path: Path
) -> None:
    env = child_env(tmp_path / "cache")
    first = finish(start("read", data_dir, 1000, 7, env))
    assert first["wrong"] == 0
    assert first["data_reads"] > 0
    assert first["stats"]["fills"]["dropped"] == 0
    assert first["stats"]["tiers"]["disk"]["bytes_written"] > 0
    # A new process: empty RAM, the same directory, the same 1,000 ranges.
    second = finish(start("read", data_dir, 1000, 7, env))
    assert second["wrong"] == 0
    assert second["data_reads"] == 0, second["stats"]
    assert second["stats"]["tiers"]["disk"]["hits"] > 0
    assert second["stats"]["tiers"]["disk"]["corrupt"] == 0


def test_three_processes_read_and_fill_one_directory_concurrently(
    data_dir: Path, tmp_path: Path
) -> None:
    # RAM off: every block goes through the shared disk tier.
    env = child_env(tmp_path / "cache", TIERCACHE_MEMORY_BYTES="0")
    workers = [start("churn", data_dir, 400, 11, env) for _ in range(3)]
    reports = [finish(worker) for worker in workers]
    assert all(report["wrong"] == 0 for report in reports)
    disks = [report["stats"]["tiers"]["disk"] for report in reports]
    assert sum(d["hits"] for d in disks) > 0  # they served each other's fills
    assert all(d["corrupt"] == 0 and d["errors"] == 0 for d in disks), disks
    assert all(d["state"] == "closed" for d in disks)
    # And a fourth, reading what the three wrote, finds it intact.
    check = finish(start("churn", data_dir, 200, 11, env))
    assert check["wrong"] == 0
    assert check["stats"]["tiers"]["disk"]["corrupt"] == 0
