"""DuckDB's own S3 client (the ``httpfs`` extension) through the gateway: ``read_parquet`` of
files and globs, ``COPY ... TO`` (multipart uploads), errors.

httpfs is not part of the duckdb wheel and ``INSTALL httpfs`` needs the internet. It is taken
from where it is already installed (``LOAD httpfs``) or from the ``duckdb-extension-httpfs``
package, which carries a build for one duckdb version only (1.5.5 with duckdb==1.5.5, measured).
When neither loads, the tests fail, saying why: the project skips nothing silently.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.gateway.engines import host_port, new_bucket
from tiercache.gateway import Gateway
from tiercache.testing import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def load_httpfs(con: Any) -> None:
    """Load httpfs into ``con`` or fail the test with every reason it could not be loaded.

    A build for another duckdb version is never forced in (``allow_extensions_metadata_mismatch``
    crashed the interpreter when tried: 1.5.5's build in duckdb 2.0.1).
    """
    reasons = []
    try:
        con.execute("LOAD httpfs")
        return
    except duckdb.Error as exc:
        reasons.append(f"LOAD httpfs: {str(exc).splitlines()[0]}")
    try:
        import duckdb_extension_httpfs
    except ImportError:
        reasons.append("the duckdb-extension-httpfs package is not installed")
    else:
        builds = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
        path = builds / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
        if path.is_file():
            con.execute(f"LOAD '{path}'")
            return
        found = sorted(p.name for p in builds.iterdir()) if builds.is_dir() else []
        reasons.append(f"duckdb-extension-httpfs has builds for {found}, none for this duckdb")
    pytest.fail(
        f"DuckDB httpfs cannot be loaded into duckdb {duckdb.__version__}: "
        + "; ".join(reasons)
        + ". It loads with duckdb==1.5.5 and duckdb-extension-httpfs==1.5.5.",
        pytrace=False,
    )


def httpfs_connection(gateway: Gateway) -> Any:
    """A DuckDB connection with httpfs loaded whose ``s3://`` paths go to ``gateway``
    (path-style, plain HTTP, the gateway's keys). The caller closes it."""
    connection = duckdb.connect()
    try:
        load_httpfs(connection)
        options = gateway.s3fs_options()
        for setting, value in [
            ("s3_endpoint", host_port(gateway)),
            ("s3_use_ssl", False),
            ("s3_url_style", "path"),
            ("s3_region", "us-east-1"),
            ("s3_access_key_id", options["key"]),
            ("s3_secret_access_key", options["secret"]),
        ]:
            connection.execute(f"SET {setting} = ?", [value])
    except BaseException:
        connection.close()
        raise
    return connection


@pytest.fixture
def con(gateway: Gateway) -> Iterator[Any]:
    """A DuckDB connection whose ``s3://`` paths go to the gateway (path-style, plain HTTP)."""
    connection = httpfs_connection(gateway)
    try:
        yield connection
    finally:
        connection.close()


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=20_000)
    return buffer.getvalue()


def _part(start: int, rows: int) -> pa.Table:
    ids = range(start, start + rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "level": pa.array([("DEBUG", "INFO", "WARN", "ERROR")[i % 4] for i in ids]),
            "ms": pa.array([float((i * 7919) % 1000) for i in ids]),
        }
    )


def test_read_parquet_files_and_globs(s3_server: S3Server, con: Any) -> None:
    bucket = new_bucket(s3_server)
    parts = [_part(k * 50_000, 50_000) for k in range(3)]
    for k, part in enumerate(parts):
        s3_server.put_object(bucket, f"logs/part-{k}.parquet", _parquet(part))
    s3_server.put_object(bucket, "logs/README.txt", b"not parquet")
    one = con.execute(f"SELECT * FROM read_parquet('s3://{bucket}/logs/part-1.parquet')").arrow()
    assert pa.table(one).equals(parts[1])
    rows = con.execute(
        "SELECT level, count(*), sum(ms), min(id) "
        f"FROM read_parquet('s3://{bucket}/logs/*.parquet') WHERE ms >= 500 "
        "GROUP BY level ORDER BY level"
    ).fetchall()
    everything = pa.concat_tables(parts).to_pylist()
    expected = []
    for level in sorted({r["level"] for r in everything}):
        kept = [r for r in everything if r["level"] == level and r["ms"] >= 500]
        expected.append((level, len(kept), sum(r["ms"] for r in kept), min(r["id"] for r in kept)))
    assert rows == expected
    globbed = con.execute(f"SELECT file FROM glob('s3://{bucket}/logs/*')").fetchall()
    assert sorted(f for (f,) in globbed) == [
        f"s3://{bucket}/logs/README.txt",
        *(f"s3://{bucket}/logs/part-{k}.parquet" for k in range(3)),
    ]


def test_copy_to_and_back_and_a_missing_key(s3_server: S3Server, con: Any, client: Any) -> None:
    bucket = new_bucket(s3_server)
    con.execute(f"COPY (SELECT 42 AS answer) TO 's3://{bucket}/out/one.parquet' (FORMAT parquet)")
    assert con.execute(f"SELECT * FROM 's3://{bucket}/out/one.parquet'").fetchall() == [(42,)]
    # ~15 MB of CSV: DuckDB uploads it in parts.
    con.execute(f"COPY (SELECT range AS x FROM range(2000000)) TO 's3://{bucket}/out/big.csv'")
    assert client.head_object(Bucket=bucket, Key="out/big.csv")["ContentLength"] > 10 << 20
    total = con.execute(f"SELECT count(*), sum(x) FROM read_csv('s3://{bucket}/out/big.csv')")
    assert total.fetchall() == [(2_000_000, sum(range(2_000_000)))]
    with pytest.raises(duckdb.Error, match="404"):
        con.execute(f"SELECT * FROM read_parquet('s3://{bucket}/out/none.parquet')").fetchall()
