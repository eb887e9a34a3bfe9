"""pandas and pyarrow reading Parquet from S3 through tiercache.

Starts a local S3 server (moto, in a subprocess: needs ``moto[s3]``, ``flask`` and
``flask-cors``, as in the ``test`` extra), writes four Parquet files with pandas, then reads them
through tiercache's RAM tier:

1. ``pandas.read_parquet("tiercache::s3://...")``: fsspec URL chaining, the s3fs options under
   ``"s3"``; the same works for any reader that takes fsspec URLs.
2. ``pyarrow.dataset`` over :func:`tiercache.integrations.arrow.pyarrow_filesystem` with a filter:
   pyarrow reads every footer, skips the row groups whose statistics rule them out, and reads the
   rest, all through the tiers.
3. The same dataset read again: every block from RAM, no request to S3.

Point the same code at a real bucket by dropping the server and passing your own s3fs options.

Needs the ``test`` extra (``pip install -e '.[test]'``): pandas is in no other extra. With the
``demo`` extra of the README, add pandas (``pip install pandas``). A missing package is one
line naming it, exit status 1.
"""

from __future__ import annotations

import fsspec

try:
    import pandas as pd
    import pyarrow.dataset as ds
except ImportError as missing:  # one line, not a traceback: what to install
    raise SystemExit(
        f"examples/pandas_pyarrow.py needs {missing.name or missing}: install the test extra "
        "(pip install -e '.[test]'), or pandas next to the demo extra (pip install pandas)"
    ) from None

from tiercache.integrations.arrow import pyarrow_filesystem
from tiercache.testing import S3Server


def origin_requests(fs: fsspec.AbstractFileSystem) -> int:
    return int(fs.stats()["origin"]["requests"])


def main() -> None:
    with S3Server() as server:
        server.create_bucket("shop")
        s3 = server.storage_options()  # s3fs options: key, secret, endpoint, region
        for month in range(4):
            sales = pd.DataFrame(
                {
                    "order_id": range(month * 10_000, (month + 1) * 10_000),
                    "month": month + 1,
                    "amount": [(i % 997) * 0.25 for i in range(10_000)],
                }
            )
            sales.to_parquet(
                f"s3://shop/sales/part-{month}.parquet", storage_options=s3, row_group_size=2_500
            )

        # 1. pandas, through a chained URL: tiercache in front of s3.
        frame = pd.read_parquet(
            "tiercache::s3://shop/sales/part-0.parquet", storage_options={"s3": s3}
        )
        # The tiercache filesystem those URLs reach (instances with the same target and
        # settings share one set of tiers, so its stats count pandas' reads too).
        fs, root = fsspec.core.url_to_fs("tiercache::s3://shop/sales", s3=s3)
        print(f"pandas: {len(frame):,} rows of part-0; origin requests {origin_requests(fs)}")

        # 2. pyarrow.dataset over the tiers, with a filter pushed into the scan.
        dataset = ds.dataset(root, filesystem=pyarrow_filesystem(fs), format="parquet")
        wanted = (ds.field("order_id") >= 25_000) & (ds.field("order_id") < 26_000)
        before = origin_requests(fs)
        table = dataset.to_table(columns=["order_id", "amount"], filter=wanted)
        print(
            f"pyarrow, cold: {table.num_rows:,} rows of orders 25000-25999 from "
            f"{len(dataset.files)} files; origin requests +{origin_requests(fs) - before}"
        )

        # 3. Again: the footers and column chunks are in the RAM tier now.
        before = origin_requests(fs)
        again = dataset.to_table(columns=["order_id", "amount"], filter=wanted)
        assert again.equals(table)
        memory = fs.stats()["tiers"]["memory"]
        print(
            f"pyarrow, warm: {again.num_rows:,} rows; origin requests "
            f"+{origin_requests(fs) - before}; RAM tier {memory['hits']} hits, "
            f"{memory['misses']} misses, {memory['used_bytes']:,} bytes held"
        )


if __name__ == "__main__":
    main()
