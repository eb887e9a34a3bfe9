"""A worker process for the multi-process disk tests: reads ranges through tiercache.

Usage: python -m tests.disk_child MODE DATA_DIR COUNT SEED

Settings come from TIERCACHE_* variables (the disk directory among them). MODE is ``read``
(read COUNT seeded ranges, wait for the fills, print a JSON report) or ``churn`` (the same, with
the ranges drawn at random for each process, to make several processes fill concurrently).
Every range is compared with the file's real bytes; a mismatch exits with status 1.
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from tiercache import Settings, TieredFileSystem


class CountingLocal(LocalFileSystem):  # type: ignore[misc]
    """The local filesystem as an origin that counts its data reads."""

    data_reads = 0

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        CountingLocal.data_reads += 1
        data: bytes = super().cat_file(path, start=start, end=end, **kwargs)
        return data


def ranges(data_dir: str, count: int, seed: int) -> list[tuple[str, int, int]]:
    files = sorted(os.path.join(data_dir, name) for name in os.listdir(data_dir))
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        path = rng.choice(files)
        size = os.path.getsize(path)
        start = rng.randrange(0, size)
        out.append((path, start, min(size, start + rng.randrange(1, 200_000))))
    return out


def main(argv: list[str]) -> int:
    mode, data_dir, count, seed = argv[0], argv[1], int(argv[2]), int(argv[3])
    if mode == "churn":
        seed += os.getpid()
    origin = CountingLocal(skip_instance_cache=True)
    fs = TieredFileSystem(fs=origin, settings=Settings.from_env())
    wrong = 0
    for path, start, end in ranges(data_dir, count, seed):
        with open(path, "rb") as f:
            f.seek(start)
            expected = f.read(end - start)
        if fs.read_range(path, start, end) != expected:
            wrong += 1
    fs.chain.fills.join()
    stats = fs.stats()
    report = {"wrong": wrong, "data_reads": CountingLocal.data_reads, "stats": stats}
    print(json.dumps(report))
    fs.close()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
