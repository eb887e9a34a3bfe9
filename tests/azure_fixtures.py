"""Fixtures with a real Azurite Blob server in a subprocess and a fault proxy in front (a plugin).

- ``azurite_server`` (session): one Azurite server for the whole run.
- ``azure_container``: a fresh, uniquely named container on it.
- ``azure_fault_proxy``: an :class:`~tiercache.testing.HttpFaultProxy` in front of the server;
  clients reach the server through it with ``azurite_server.storage_options(proxy_endpoint)``
  where ``proxy_endpoint`` is ``azure_fault_proxy.url + "/devstoreaccount1"``.

Azurite is installed with npm into ``~/.cache/tiercache`` when it is on neither ``PATH`` nor in
that cache. That install (about 30 s) runs once the tests are collected, before the first one
starts, so that it does not count toward a test's timeout.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from tiercache.testing import AzuriteServer, HttpFaultProxy
from tiercache.testing.servers.azure import ACCOUNT_NAME
from tiercache.testing.servers.azurite_install import find_azurite


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install Azurite before the first test runs, if a collected test needs it."""
    if session.config.option.collectonly:
        return
    if not any("azurite_server" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    # On failure the fixture tries again and fails each test that needs it with the message.
    with contextlib.suppress(RuntimeError):
        find_azurite()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """Run one Azurite server subprocess for the session and close it afterwards."""
    server = AzuriteServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def azure_container(azurite_server: AzuriteServer) -> str:
    """Create a container with a name no other test uses, and return the name."""
    name = f"test-{uuid.uuid4().hex}"
    azurite_server.create_container(name)
    return name


@pytest.fixture
def azure_fault_proxy(azurite_server: AzuriteServer) -> Iterator[HttpFaultProxy]:
    """Run an HTTP fault proxy in front of the Azurite server for one test.

    The proxy forwards to the server's root: the account stays in the path clients use (and
    sign), ``azure_fault_proxy.url + "/devstoreaccount1"``.
    """
    with HttpFaultProxy(f"http://127.0.0.1:{azurite_server.port}") as proxy:
        yield proxy


def proxy_endpoint(proxy: HttpFaultProxy) -> str:
    """The blob endpoint of the development account through ``proxy``."""
    return f"{proxy.url}/{ACCOUNT_NAME}"
