"""Fixtures with a real Redis: one server per session, a cluster, and a TCP fault proxy.

A plain module, not a conftest, so it collides with no other fixtures. Import every fixture a
test uses *and the fixtures it depends on*, because pytest only finds fixtures that are names
in the test module (or a conftest)::

    from tests.redis_fixtures import redis_fresh, redis_server, tcp_proxy  # noqa: F401

Each fixture declares its name, so it may also be imported under another one; that keeps ruff
from reporting the test arguments as redefinitions of the imports (F811)::

    from tests.redis_fixtures import redis_fresh as redis_fresh_fixture  # noqa: F401

- ``redis_server`` (session): one :class:`~tiercache.testing.RedisServer` for the whole run.
- ``redis_fresh``: ``redis_server``, healthy and empty. A server a previous test stopped
  (SIGSTOP), killed, closed, left loading or reconfigured is continued, started or restarted
  first, so tests may break it freely.
  Depends on ``redis_server``.
- ``redis_cluster`` (session): a :class:`~tiercache.testing.RedisCluster` of 3 masters. Shared:
  a test that kills or stops nodes should start a cluster of its own.
- ``tcp_proxy``: a :class:`~tiercache.testing.TcpFaultProxy` in front of ``redis_fresh``,
  closed after the test. Depends on ``redis_fresh`` and ``redis_server``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import pytest
import redis

from tiercache.testing.faults.tcp import TcpFaultProxy
from tiercache.testing.servers.redis import RedisServer
from tiercache.testing.servers.redis_cluster import RedisCluster

# Settings that legitimately differ between two starts of the same server.
_VOLATILE_SETTINGS = frozenset({"dir"})

# The settings of each session server right after it started, to detect reconfiguration.
_baseline: weakref.WeakKeyDictionary[RedisServer, dict[str, str]] = weakref.WeakKeyDictionary()


@pytest.fixture(scope="session", name="redis_server")
def redis_server() -> Iterator[RedisServer]:
    """Run one redis-server for the session on a free loopback port; close it afterwards."""
    with RedisServer() as server:
        _baseline[server] = _settings(server)
        yield server


@pytest.fixture(name="redis_fresh")
def redis_fresh(redis_server: RedisServer) -> RedisServer:
    """Return the session server, running, responsive, with its initial settings and no data."""
    redis_server.cont()
    redis_server.start()
    if not _flush_if_pristine(redis_server):
        redis_server.restart()
        _baseline[redis_server] = _settings(redis_server)
    return redis_server


@pytest.fixture(scope="session", name="redis_cluster")
def redis_cluster() -> Iterator[RedisCluster]:
    """Run a Redis Cluster of 3 masters for the session; close it afterwards."""
    with RedisCluster(3) as cluster:
        yield cluster


@pytest.fixture(name="tcp_proxy")
def tcp_proxy(redis_fresh: RedisServer) -> Iterator[TcpFaultProxy]:
    """Run a TCP fault proxy in front of the (fresh) session server for one test."""
    with TcpFaultProxy(redis_fresh.host, redis_fresh.port) as proxy:
        yield proxy


def _settings(server: RedisServer) -> dict[str, str]:
    with server.client(decode_responses=True) as client:
        settings: dict[str, str] = client.config_get("*")
    return {name: value for name, value in settings.items() if name not in _VOLATILE_SETTINGS}


def _flush_if_pristine(server: RedisServer) -> bool:
    """Empty the server if it answers and has its initial settings; return whether it did."""
    try:
        if _settings(server) != _baseline.get(server):
            return False
        with server.client() as client:
            client.flushall()
            client.script_flush()
    except redis.RedisError:  # Paused by CLIENT PAUSE, a password set, ...: start afresh.
        return False
    return True
