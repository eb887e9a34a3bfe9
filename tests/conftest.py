"""Shared fixtures: a clean environment and no cache state leaking between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tiercache.build import close_shared_chains
from tiercache.fs import TieredFileSystem

# Real servers (an S3 server, a GCS emulator, Azurite, Redis, a cluster) and fault proxies, for
# any test that asks.
pytest_plugins = [
    "tests.azure_fixtures",
    "tests.gcs_fixtures",
    "tests.redis_fixtures",
    "tests.s3_fixtures",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove every TIERCACHE_* variable; drop shared chains and cached fs instances after."""
    for name in list(os.environ):
        if name.startswith("TIERCACHE_"):
            monkeypatch.delenv(name)
    yield
    TieredFileSystem.clear_instance_cache()
    close_shared_chains()
