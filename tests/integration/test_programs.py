"""The examples and benchmark programs run as documented (smoke runs; no timing asserted)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run(*args: str, timeout_s: float = 300, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_quickstart_prints_what_it_read_and_the_stats() -> None:
    out = run("examples/quickstart.py")
    assert out.splitlines() == [
        "read 65536 tail bytes twice and 4096 bytes through open()",
        "RAM tier: 1 hits, 2 misses",
        "origin: 3 requests, 2,097,152 bytes",
    ]  # a summary, not the stats() document


def test_custom_tier_example_serves_pod_two_from_the_shared_tier() -> None:
    out = run("examples/custom_tier.py")
    assert '"shared-metadata"' in out


def test_shared_metadata_example_asks_the_origin_nothing_on_the_second_pod() -> None:
    # The claim is that the second pod finds every footer and object info in Redis, not that a
    # loaded CI machine answers within the default 50 ms budget: a call over budget is a miss
    # (by design), which would send pod 2 to the origin. A generous budget keeps the proof.
    out = run("examples/shared_metadata.py", env={"TIERCACHE_REDIS_TIMEOUT": "5s"})
    assert "pod-2: 600,000 rows in 20 files; origin {'requests': 0," in out
    assert "redis: hits 0" not in out.split("pod-2")[1]


def test_hot_read_benchmark_runs() -> None:
    out = run("benchmarks/hot_read.py", "--quick")
    assert "| tiercache read_range |" in out
    assert "| 4 MiB, block-aligned: tiercache cold read_range |" in out


def test_block_size_benchmark_runs() -> None:
    out = run("benchmarks/block_size.py", "--quick")
    assert "| tiercache 1,024 KiB blocks |" in out


def test_disk_tier_benchmark_runs() -> None:
    out = run("benchmarks/disk_tier.py", "--quick")
    assert "| DiskTier.get |" in out
    assert "| least-recently-used |" in out


def test_redis_footers_benchmark_runs() -> None:
    out = run("benchmarks/redis_footers.py", "--quick")
    assert "| tiercache, warm Redis |" in out


def test_delta_datafusion_benchmark_runs() -> None:
    out = run("benchmarks/delta_datafusion.py", "--quick")
    assert "| (a) selective, tiercache warm (RAM) |" in out
    assert "| aggregation: tiercache cold |" in out
    assert "| new process, warm Redis |" in out
    assert "| new process, warm Redis, log listing shared |" in out


#: The scenarios that existed when each became one file: none may go missing.
EARLIER = {
    "hot", "cold", "disk", "redis", "delta", "degraded", "concurrency", "scaling", "memory",
}  # fmt: skip
#: Every scenario: one module each in benchmarks/scenarios/ (a name starting with _ is not one).
SCENARIOS = {
    p.stem for p in (ROOT / "benchmarks" / "scenarios").glob("*.py") if not p.stem.startswith("_")
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(300)
def test_run_all_benchmarks_smoke(tmp_path: Path) -> None:
    """``benchmarks/run.py --smoke``: every scenario's code path, the report and the plots."""
    out = tmp_path / "results"
    printed = run("benchmarks/run.py", "--smoke", "--out", str(out), timeout_s=280)
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert set(results["scenarios"]) == SCENARIOS
    assert EARLIER <= SCENARIOS
    failed = {name: s["error"] for name, s in results["scenarios"].items() if "error" in s}
    assert not failed, failed
    assert results["meta"]["cpus"] >= 1
    keys = {t["key"] for s in results["scenarios"].values() for t in s["targets"]}
    for key in (
        "hot-floor", "hot-blockcache", "cold-aligned", "disk-get", "redis-requests",
        "memory-disk", "memory-ram", "gateway-floor-64k", "gateway-floor-concurrent",
        "gateway-sql-ceiling-aggregate", "gateway-sql-cold-selective",
        "gateway-sql-fsspec-cold-aggregate", "gateway-sql-fsspec-cold-selective",
    ):  # fmt: skip
        assert key in keys, key
    # (a) and (b) for both queries, (c) with the log listing shared, and (c) by default.
    assert sum(key.startswith("delta-") for key in keys) == 6
    assert "delta-c-selective-default" in keys
    report = (out / "report.md").read_text()
    for heading in ("## Machine and run", "## Targets", "## Degraded modes", "## Concurrency"):
        assert heading in report, heading
    assert "targets met" in report
    assert "targets met" in printed
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 4, pngs
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC, png
        assert f"]({png.name})" in report, png.name


@pytest.mark.timeout(180)
def test_a_scenario_is_one_file(tmp_path: Path) -> None:
    """The example of docs/benchmarks.md ("Adding a scenario"), dropped into a copy of
    benchmarks/ as scenarios/example.py and nothing else: run.py finds it, runs it in the smoke
    preset and reports it."""
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    match = re.search(r"```python\n(.*?)```", doc[doc.index("## Adding a scenario") :], re.DOTALL)
    assert match is not None, "no python block under 'Adding a scenario'"
    copy = tmp_path / "benchmarks"
    shutil.copytree(
        ROOT / "benchmarks", copy, ignore=shutil.ignore_patterns("results", "__pycache__")
    )
    (copy / "scenarios" / "example.py").write_text(match.group(1))
    out = tmp_path / "out"
    printed = run(str(copy / "run.py"), "--smoke", "--only", "example", "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    assert list(results["scenarios"]) == ["example"]
    example = results["scenarios"]["example"]
    assert "error" not in example, example.get("error")
    assert set(example["data"]) == {"floor: dict slice", "tiercache read_range"}
    assert [t["key"] for t in example["targets"]] == ["example-floor"]
    report = (out / "report.md").read_text()
    assert "## Example: warm reads against the floor\n\n| case | median |" in report
    assert "## Hot reads\n\n*Not run.*" in report
    assert "example: warm 64 KiB `read_range`" in printed


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("tiercache")
    assert script.exists(), f"{script} missing: is the package installed (pip install -e .)?"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("tiercache ")
