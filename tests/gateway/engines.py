"""What the native-client tests share: a bucket, pyarrow's S3 filesystem on the gateway, and
deltalake options whose waits are bounded well below the tests' timeout."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow.fs as pafs

from tiercache.gateway import Gateway
from tiercache.testing import S3Server


def new_bucket(s3_server: S3Server) -> str:
    """A bucket no other test uses."""
    name = f"gw-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


def host_port(gateway: Gateway) -> str:
    """``127.0.0.1:PORT``: the endpoint as pyarrow's ``endpoint_override`` and DuckDB take it."""
    return gateway.endpoint_url.removeprefix("http://")


def arrow_fs(gateway: Gateway) -> Any:
    """pyarrow's own S3 client (the AWS C++ SDK) pointed at the gateway."""
    options = gateway.s3fs_options()
    return pafs.S3FileSystem(
        endpoint_override=host_port(gateway),
        scheme="http",
        access_key=options["key"],
        secret_key=options["secret"],
        region="us-east-1",
    )


def delta_options(gateway: Gateway) -> dict[str, str]:
    """``gateway.storage_options()`` with object_store's waits bounded: a request that hangs
    fails in ~40 s instead of object_store's 3-minute retry budget, inside the test timeout
    (some deltalake calls hold the GIL while they wait, so pytest-timeout cannot interrupt)."""
    return {
        **gateway.storage_options(),
        "timeout": "20s",
        "max_retries": "2",
        "retry_timeout": "30s",
    }
