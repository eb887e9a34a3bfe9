"""DuckDB reading Parquet from S3 through tiercache.

DuckDB takes any fsspec filesystem with ``con.register_filesystem(fs)`` and sends the paths that
start with the filesystem's protocol to it: here ``tiercache://bucket/key``, so
``read_parquet('tiercache://...')`` (globs included) reads through the tiers. DuckDB's own
``httpfs`` extension and its ``s3://`` paths are not involved.

Starts a local S3 server (moto, in a subprocess: needs ``moto[s3]``, ``flask`` and
``flask-cors``, as in the ``test`` extra), writes three Parquet files, and runs the same query
twice: the first reads S3, the second only RAM. Needs the ``test`` extra (``pip install -e
'.[test]'``: duckdb is in no other extra); a missing package is one line naming it, exit 1.
"""

from __future__ import annotations

import io

try:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as missing:  # one line, not a traceback: what to install
    raise SystemExit(
        f"examples/duckdb_tiercache.py needs {missing.name or missing}: install the test extra "
        "(pip install -e '.[test]')"
    ) from None

from tiercache import TieredFileSystem
from tiercache.testing import S3Server

ROWS = 20_000  # per file
SQL = """
SELECT level, count(*) AS events, round(avg(latency_ms), 2) AS avg_ms
FROM read_parquet('tiercache://logs/app/*.parquet')
WHERE latency_ms > 5
GROUP BY level
ORDER BY level
"""


def main() -> None:
    with S3Server() as server:
        server.create_bucket("logs")
        for part in range(3):
            table = pa.table(
                {
                    "id": pa.array(range(part * ROWS, (part + 1) * ROWS), pa.int64()),
                    "level": pa.array(
                        [("DEBUG", "INFO", "WARN", "ERROR")[i % 4] for i in range(ROWS)]
                    ),
                    "latency_ms": pa.array([float(i % 20) for i in range(ROWS)]),
                }
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            server.put_object("logs", f"app/part-{part}.parquet", buffer.getvalue())

        # Settings from TIERCACHE_* variables (the RAM tier; disk and Redis when configured).
        fs = TieredFileSystem(target_protocol="s3", target_options=server.storage_options())
        con = duckdb.connect()
        con.register_filesystem(fs)  # paths starting tiercache:// now go through the tiers

        for run in ("first", "second"):
            before = fs.stats()
            rows = con.sql(SQL).fetchall()
            after = fs.stats()
            requests = after["origin"]["requests"] - before["origin"]["requests"]
            hits = after["tiers"]["memory"]["hits"] - before["tiers"]["memory"]["hits"]
            misses = after["tiers"]["memory"]["misses"] - before["tiers"]["memory"]["misses"]
            print(f"{run} run: {rows}")
            print(f"  origin requests +{requests}; RAM tier +{hits} hits, +{misses} misses")
        con.close()
        fs.close()


if __name__ == "__main__":
    main()
