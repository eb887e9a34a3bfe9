"""A worker process for the cross-process Redis test: opens Parquet footers through tiercache.

Usage: python -m tests.redis_child DATA_DIR

Settings come from TIERCACHE_* variables (the Redis URL among them). Opens every Parquet file in
DATA_DIR the way a query planner does (``pyarrow.parquet.ParquetFile(...).metadata``), waits for
the fills, and prints a JSON report: origin info calls, origin data reads, and stats().
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from tiercache import Settings, TieredFileSystem


class CountingLocal(LocalFileSystem):  # type: ignore[misc]
    """The local filesystem as an origin that counts info calls and data reads."""

    info_calls = 0
    data_reads = 0

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        CountingLocal.info_calls += 1
        result: dict[str, Any] = super().info(path, **kwargs)
        return result

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        CountingLocal.data_reads += 1
        data: bytes = super().cat_file(path, start=start, end=end, **kwargs)
        return data


def main(argv: list[str]) -> int:
    data_dir = argv[0]
    fs = TieredFileSystem(fs=CountingLocal(skip_instance_cache=True), settings=Settings.from_env())
    rows = {}
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        rows[name] = pq.ParquetFile(path, filesystem=fs).metadata.num_rows
    fs.chain.fills.join()
    report = {
        "rows": rows,
        "info_calls": CountingLocal.info_calls,
        "data_reads": CountingLocal.data_reads,
        "stats": fs.stats(),
    }
    print(json.dumps(report))
    fs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
