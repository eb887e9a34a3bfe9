"""Integration: two processes with separate RAM share one Redis for Parquet metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import HMAC_KEY
from tiercache.testing import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_child(data_dir: Path, redis_url: str, prefix: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERCACHE_")}
    env.update(TIERCACHE_REDIS_URL=redis_url, TIERCACHE_REDIS_PREFIX=prefix)
    env["TIERCACHE_REDIS_HMAC_KEY"] = HMAC_KEY
    env["TIERCACHE_REDIS_TIMEOUT"] = "2s"  # shared CI machines: behaviour, not speed, is tested
    result = subprocess.run(
        [sys.executable, "-m", "tests.redis_child", str(data_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_second_process_opens_30_parquet_files_with_no_origin_metadata_reads(
    tmp_path: Path, redis_fresh: RedisServer
) -> None:
    data_dir = tmp_path / "table"
    data_dir.mkdir()
    for i in range(30):
        rows = 40_000 + i
        table = pa.table(
            {
                "id": pa.array(range(rows), pa.int64()),
                "v": pa.array([float(x) for x in range(rows)]),
            }
        )
        pq.write_table(table, data_dir / f"part-{i:02d}.parquet", row_group_size=10_000)
    assert all(p.stat().st_size > 256 * 1024 for p in data_dir.iterdir())  # not "small objects"
    prefix = f"x{uuid.uuid4().hex[:8]}:"
    first = run_child(data_dir, redis_fresh.url, prefix)
    assert first["info_calls"] == 30
    assert first["data_reads"] >= 30
    second = run_child(data_dir, redis_fresh.url, prefix)
    assert (
        second["rows"] == first["rows"] == {f"part-{i:02d}.parquet": 40_000 + i for i in range(30)}
    )
    assert second["info_calls"] == 0, second["stats"]
    assert second["data_reads"] == 0, second["stats"]
    assert second["stats"]["info"]["shared_hits"] == 30
    assert second["stats"]["tiers"]["redis"]["hits"] >= 30
