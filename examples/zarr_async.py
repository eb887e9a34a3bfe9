"""zarr v3 reading an array through tiercache's async interface.

zarr's ``FsspecStore`` asks for an asynchronous filesystem; ``tiercache::s3://...`` gives it one
(``AsyncTieredFileSystem``): chunk reads go through the same RAM / disk / Redis tiers as the sync
API, RAM hits answered on the event loop, everything else on worker threads. The second read of
the array sends no request to S3.

Needs the ``test`` extra (``pip install -e '.[test]'``: zarr, numpy, and moto for the local S3
server this script starts). Point the URL at a real bucket the same way. A missing package is one
line naming it, exit status 1.
"""

from __future__ import annotations

try:
    import numpy as np
    import zarr
    from zarr.storage import FsspecStore
except ImportError as missing:  # one line, not a traceback: what to install
    raise SystemExit(
        f"examples/zarr_async.py needs {missing.name or missing}: install the test extra "
        "(pip install -e '.[test]')"
    ) from None

from tiercache import AsyncTieredFileSystem
from tiercache.testing import S3Server


def origin_requests(fs: AsyncTieredFileSystem) -> int:
    fs.chain.fills.join(timeout_s=10)  # what the last read queued for the slower tiers
    return int(fs.stats()["origin"]["requests"])


def main() -> None:
    with S3Server() as server:
        server.create_bucket("arrays")
        store = FsspecStore.from_url(
            "tiercache::s3://arrays/temperature",
            storage_options={"s3": server.storage_options()},
        )
        fs = store.fs
        assert isinstance(fs, AsyncTieredFileSystem)
        print(f"zarr's filesystem: {type(fs).__name__}")
        values = np.linspace(-20.0, 40.0, 200 * 200).reshape(200, 200)
        zarr.create_array(store, shape=(200, 200), chunks=(50, 50), dtype="f8")[:] = values

        for label in ("cold", "warm"):
            array = zarr.open_array(store, mode="r")
            before = origin_requests(fs)
            read = np.asarray(array[:])
            assert np.array_equal(read, values)
            print(
                f"{label}: read {read.size:,} values in {array.nchunks} chunks; "
                f"origin requests +{origin_requests(fs) - before}"
            )
        fs.close()


if __name__ == "__main__":
    main()
