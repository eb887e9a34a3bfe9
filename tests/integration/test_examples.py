"""The analytics examples run as documented (smoke runs, as test_programs.py does for the rest):
each starts its own S3 server and shows, from stats(), that the second read asks S3 for nothing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_program

pytestmark = pytest.mark.integration


def run(*args: str) -> str:
    return run_program(*args, timeout_s=120)


def test_pandas_pyarrow_example_reads_through_the_tiers() -> None:
    out = run("examples/pandas_pyarrow.py")
    assert "pandas: 10,000 rows of part-0; origin requests " in out
    assert "pyarrow, cold: 1,000 rows of orders 25000-25999 from 4 files; origin requests +" in out
    assert "pyarrow, warm: 1,000 rows; origin requests +0; RAM tier " in out


def test_delta_sql_example_runs_sql_through_the_tiers() -> None:
    out = run("examples/delta_sql.py")
    assert "pod 1, cold: 3 rows; origin requests +0" not in out  # the cold run reads S3
    assert "pod 1, warm: 3 rows; origin requests +0" in out
    assert "{'region': 'eu', 'orders': 15999, 'revenue': 471990.0}" in out
    assert "pod 2: warmed 9 of 9 files" in out
    assert '"prefetch"' in out


def test_duckdb_example_reads_through_the_tiers() -> None:
    out = run("examples/duckdb_tiercache.py")
    assert "first run: [('DEBUG', 9000, 12.0), ('ERROR', 12000, 13.0)" in out
    first, second = out.split("second run:")
    assert "origin requests +0" not in first  # DuckDB's reads did reach tiercache
    assert "origin requests +0; RAM tier +" in second
    assert "+0 misses" in second


def test_zarr_async_example_reads_chunks_through_the_tiers() -> None:
    out = run("examples/zarr_async.py")
    assert "zarr's filesystem: AsyncTieredFileSystem" in out
    assert "cold: read 40,000 values in 16 chunks; origin requests +0" not in out
    assert "warm: read 40,000 values in 16 chunks; origin requests +0" in out


def test_gcs_azure_example_reads_one_version_and_the_gateway_serves_gcs() -> None:
    out = run("examples/gcs_azure_pinned.py")
    assert "gcs: 3,145,728 bytes, all of the new version; changes seen: 1" in out
    assert "azure: 3,145,728 bytes, all of the new version; changes seen: 1" in out
    assert "gateway over gcs: keys ['t/part-0.bin'], first bytes b'nnnnnnnnnn'" in out


@pytest.mark.parametrize(
    ("example", "package", "extra"),
    [
        ("gcs_azure_pinned.py", "gcsfs", "test"),
        ("pandas_pyarrow.py", "pandas", "test"),
        ("duckdb_tiercache.py", "duckdb", "test"),
        ("delta_sql.py", "deltalake", "demo"),
        ("zarr_async.py", "zarr", "test"),
    ],
)
def test_an_example_says_which_extra_it_needs(
    example: str, package: str, extra: str, tmp_path: Path
) -> None:
    path = ROOT / "examples" / example
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring is not None
    assert f"``{extra}`` extra" in docstring
    # The package is missing (a module that cannot be imported hides the installed one).
    (tmp_path / f"{package}.py").write_text(
        f'raise ModuleNotFoundError("No module named {package}", name={package!r})\n'
    )
    path_entries = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path_entries))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"examples/{example} needs {package}: install the {extra} extra")
