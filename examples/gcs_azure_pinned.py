"""GCS and Azure behind tiercache, against local emulators: reads pinned to one version.

Starts gcp-storage-emulator and Azurite (``tiercache.testing``; Azurite is installed with npm on
first use), writes a 3 MiB object to each, reads its first 1 MiB block through tiercache (now
cached), overwrites the object, and reads it whole: every byte is the new version's, never the
cached old block followed by new ones, and the origin counts the change. Then the S3-compatible
gateway serves the same GCS bucket to boto3. Needs the ``test`` extra (``pip install -e
'.[test]'``: gcsfs, adlfs, gcp-storage-emulator, boto3) and Node.js with npm. A missing package
is one line naming it, exit status 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tiercache.testing.servers.gcs import GCSFS_ENVIRONMENT

# gcsfs probes each bucket over gRPC for up to 60 s unless told not to, before it is imported.
os.environ.update(GCSFS_ENVIRONMENT)

try:
    import adlfs  # noqa: F401  (the Azure origin; imported here only to say it is missing)
    import boto3
    import gcp_storage_emulator  # noqa: F401
    import gcsfs  # noqa: F401
except ImportError as missing:  # one line, not a traceback: what to install
    raise SystemExit(
        f"examples/gcs_azure_pinned.py needs {missing.name or missing}: install the test extra "
        "(pip install -e '.[test]')"
    ) from None

from tiercache import Settings, TieredFileSystem
from tiercache.gateway import start
from tiercache.testing import AzuriteServer, GcsServer

BLOCK = 1 << 20
KEY = "t/part-0.bin"


def pinned_read(name: str, fs: TieredFileSystem, put: Callable[[bytes], object], path: str) -> None:
    """Cache block 0 of ``path``, overwrite it through ``put``, read it whole."""
    old, new = b"o" * (3 * BLOCK), b"n" * (3 * BLOCK)
    put(old)
    assert fs.read_range(path, 0, 100) == old[:100]  # block 0 is in the RAM tier now
    put(new)  # behind tiercache's back: its info is the old one
    whole = fs.cat_file(path)
    assert whole == new, f"{name}: mixed versions"
    changed = fs.stats()["origin"]["changed"]
    print(f"{name}: {len(whole):,} bytes, all of the new version; changes seen: {changed}")


def main() -> None:
    settings = Settings(block_size_bytes=BLOCK, memory_bytes=64 << 20)
    with GcsServer() as gcs, AzuriteServer() as azurite:
        gcs.create_bucket("lake")
        gs = TieredFileSystem(
            target_protocol="gs", target_options=gcs.storage_options(), settings=settings
        )
        pinned_read("gcs", gs, lambda data: gcs.put_object("lake", KEY, data), f"lake/{KEY}")

        azurite.create_container("lake")
        az = TieredFileSystem(
            target_protocol="abfs", target_options=azurite.storage_options(), settings=settings
        )
        pinned_read("azure", az, lambda data: azurite.put_object("lake", KEY, data), f"lake/{KEY}")

        # The gateway speaks S3 for the GCS bucket: any S3 client reads it through the tiers.
        with start(gs) as gateway:
            options = gateway.s3fs_options()
            s3 = boto3.client(
                "s3",
                endpoint_url=gateway.endpoint_url,
                aws_access_key_id=options["key"],
                aws_secret_access_key=options["secret"],
                region_name="us-east-1",
            )
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
            body = s3.get_object(Bucket="lake", Key=KEY, Range="bytes=0-9")["Body"]
            print(f"gateway over gcs: keys {keys}, first bytes {body.read()!r}")


if __name__ == "__main__":
    main()
