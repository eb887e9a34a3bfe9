"""Fixtures with a GCS emulator in a subprocess and a fault proxy in front of it (a plugin).

- ``gcs_server`` (session): one ``gcp-storage-emulator`` for the whole run.
- ``gcs_bucket``: a fresh, uniquely named bucket on it.
- ``gcs_fault_proxy``: an :class:`~tiercache.testing.HttpFaultProxy` in front of the emulator.

Importing this plugin sets ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (gcsfs reads it when it is
first imported): otherwise ``gcsfs.GCSFileSystem`` probes every bucket over gRPC, which the
emulator never answers, for up to 60 s (see :mod:`tiercache.testing.servers.gcs`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tiercache.testing import HttpFaultProxy
from tiercache.testing.servers.gcs import GCSFS_ENVIRONMENT, GcsServer

os.environ.update(GCSFS_ENVIRONMENT)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """Run one GCS emulator subprocess for the session and close it afterwards."""
    import gcsfs
    import gcsfs.core

    if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:  # pragma: no cover - a setup error
        pytest.fail(
            "gcsfs was imported before tests/gcs_fixtures.py set "
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: gcsfs.GCSFileSystem would probe each "
            "bucket over gRPC for up to 60 s"
        )
    server = GcsServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gcs_bucket(gcs_server: GcsServer) -> str:
    """Create a bucket with a name no other test uses, and return the name."""
    name = f"test-{uuid.uuid4().hex}"
    gcs_server.create_bucket(name)
    return name


@pytest.fixture
def gcs_fault_proxy(gcs_server: GcsServer) -> Iterator[HttpFaultProxy]:
    """Run an HTTP fault proxy in front of the GCS emulator for one test."""
    with HttpFaultProxy(gcs_server.endpoint_url) as proxy:
        yield proxy
