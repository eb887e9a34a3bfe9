"""DataFusion SQL over a Delta table on S3, its data files read through tiercache.

Starts a local S3 server (moto, in a subprocess: needs ``moto[s3]``, ``flask`` and
``flask-cors``, as in the ``test`` and ``demo`` extras), writes a Delta table with deltalake in
three commits, then:

1. "pod 1" registers the table in DataFusion (``tiercache.integrations.datafusion.register_delta``)
   and runs SQL: DataFusion's own Parquet reader reads exactly the snapshot's files, and
   deltalake the log, through the process's embedded gateway over the tiers; the same SQL again
   asks S3 for nothing. The counts are the gateway's (``shared(fs).stats()["chain"]``);
2. "pod 2" starts with empty tiers, warms them first (``tiercache.warm``: the Parquet footers of
   the table's newest files, read into the gateway and counted apart as prefetch), then runs the
   SQL.

deltalake takes its own storage options (``AWS_ENDPOINT_URL``, ...);
``tiercache.integrations.delta.storage_options_for`` derives them from s3fs options.

Runs with the ``demo`` extra of the README (``pip install -e '.[demo]'``) or the ``test`` extra;
a missing package is one line naming it, exit status 1.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import pyarrow as pa
    from datafusion import SessionContext
    from deltalake import write_deltalake
except ImportError as missing:  # one line, not a traceback: what to install
    raise SystemExit(
        f"examples/delta_sql.py needs {missing.name or missing}: install the demo extra "
        "(pip install -e '.[demo]')"
    ) from None

import tiercache
from tiercache import Settings, TieredFileSystem
from tiercache.build import default_tiers
from tiercache.gateway.shared import shared
from tiercache.integrations.datafusion import register_delta
from tiercache.integrations.delta import storage_options_for
from tiercache.testing import S3Server

ROWS = 20_000  # per commit
SQL = """
SELECT region, count(*) AS orders, sum(amount) AS revenue
FROM orders
WHERE amount >= 10
GROUP BY region
ORDER BY region
"""


def pod(s3: dict[str, Any]) -> TieredFileSystem:
    """A fresh filesystem with tiers of its own, as a new pod has: RAM, plus disk and Redis
    when ``TIERCACHE_DISK_DIR`` and ``TIERCACHE_REDIS_URL`` are set."""
    settings = Settings.from_env()
    return TieredFileSystem(
        target_protocol="s3", target_options=s3, settings=settings, tiers=default_tiers(settings)
    )


def main() -> None:
    with S3Server() as server:
        server.create_bucket("lake")
        s3 = server.storage_options()  # s3fs options
        storage = storage_options_for(s3)  # the same, as deltalake storage options
        uri = "s3://lake/orders"
        for commit in range(3):
            batch = pa.table(
                {
                    "order_id": pa.array(range(commit * ROWS, (commit + 1) * ROWS), pa.int64()),
                    "region": pa.array([("eu", "us", "ap")[i % 3] for i in range(ROWS)]),
                    "amount": pa.array([float(i % 50) for i in range(ROWS)]),
                }
            )
            write_deltalake(
                uri, batch, mode="append", partition_by=["region"], storage_options=storage
            )

        # Pod 1: a cold cache, then the same query again.
        pod1 = pod(s3)
        ctx = SessionContext()
        registered = register_delta(ctx, "orders", uri, storage_options=storage, filesystem=pod1)
        files = len(registered.files)
        print(f"pod 1: version {registered.version}, {files} files, route {registered.route}")
        gateway = shared(pod1)  # the gateway register_delta reads through
        for run in ("cold", "warm"):
            before = gateway.stats()["chain"]["origin"]["requests"]
            rows = ctx.sql(SQL).to_arrow_table().to_pylist()
            after = gateway.stats()["chain"]["origin"]["requests"]
            print(f"pod 1, {run}: {len(rows)} rows; origin requests +{after - before}")
        for row in rows:
            print(f"  {row}")
        gateway.close()  # pod 1 ends: so does its gateway (its RAM tier with it)
        pod1.close()

        # Pod 2, starting: warm the footers of the newest files first (bounded by the
        # TIERCACHE_WARM_* settings), then query. These files are smaller than the 64 KiB tail
        # that warmup reads, so here even the data is cached by then.
        pod2 = pod(s3)
        report = tiercache.warm(uri, filesystem=pod2, storage_options=storage)
        print(
            f"pod 2: warmed {report.files_warmed} of {report.files_found} files, "
            f"{report.bytes:,} bytes in {report.duration_s:.2f} s "
            f"({'the gateway' if report.through_gateway else 'the filesystem'})"
        )
        ctx = SessionContext()
        register_delta(ctx, "orders", uri, storage_options=storage, filesystem=pod2)
        before = shared(pod2).stats()["chain"]
        rows = ctx.sql(SQL).to_arrow_table().to_pylist()
        after = shared(pod2).stats()["chain"]
        print(f"pod 2, after warmup: {len(rows)} rows; the query's counts (prefetch apart):")
        memory = {
            k: after["tiers"]["memory"][k] - before["tiers"]["memory"][k]
            for k in ("hits", "misses")
        }
        print(
            json.dumps(
                {
                    "origin requests": after["origin"]["requests"] - before["origin"]["requests"],
                    "memory": memory,
                    "prefetch": {k: after["prefetch"]["origin"][k] for k in ("requests", "bytes")},
                },
                indent=2,
            )
        )
        pod2.close()


if __name__ == "__main__":
    main()
