"""Fixtures with a real S3 server in a subprocess and a fault proxy in front of it (a plugin).

- ``s3_server`` (session): one moto S3 server for the whole run.
- ``s3_bucket``: a fresh, uniquely named bucket on it.
- ``fault_proxy``: an :class:`~tiercache.testing.HttpFaultProxy` in front of the server.
- ``s3_storage_options`` / ``proxy_storage_options``: s3fs options that reach the server
  directly / through the proxy.

Every test runs with no ``AWS_*`` variable from the caller's environment and no AWS config file,
so a developer's profile (retry settings, addressing style, credentials) cannot change results.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tiercache.testing import HttpFaultProxy, S3Server


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the caller's AWS settings from botocore for the duration of each test."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Run one moto S3 server subprocess for the session and close it afterwards."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """Create a bucket with a name no other test uses, and return the name."""
    name = f"test-{uuid.uuid4().hex}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def fault_proxy(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    """Run an HTTP fault proxy in front of the S3 server for one test."""
    with HttpFaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def s3_storage_options(s3_server: S3Server) -> dict[str, Any]:
    """Return s3fs options that talk to the S3 server directly."""
    return s3_server.storage_options()


@pytest.fixture
def proxy_storage_options(s3_server: S3Server, fault_proxy: HttpFaultProxy) -> dict[str, Any]:
    """Return s3fs options that talk to the S3 server through ``fault_proxy``."""
    return s3_server.storage_options(fault_proxy.url)
