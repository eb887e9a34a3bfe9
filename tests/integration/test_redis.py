"""Integration: the Redis tier against real redis-server processes (standalone and Cluster).

Every test uses its own key prefix, so tests share servers without seeing each other's keys.
"Pods" are TieredFileSystem instances with their own RAM tier over one origin (an instrumented
in-memory filesystem standing in for the object store).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.cluster import RedisCluster as RedisClusterClient

from tests.helpers import HMAC_KEY, CountingFS
from tiercache import (
    BlockKey,
    MemoryTier,
    RedisTier,
    S3FifoTier,
    Settings,
    TieredFileSystem,
    TierError,
)
from tiercache.build import default_tiers
from tiercache.testing.faults.tcp import TcpFaultProxy
from tiercache.testing.servers.redis import RedisServer
from tiercache.testing.servers.redis_cluster import RedisCluster
from tiercache.testing.servers.redis_tls import make_tls_files

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024
SIZE = 1 << 20  # a 1 MiB "Parquet file": 16 blocks, the last one holds the footer
COOLDOWN_S = 0.3


def settings_for(url: str, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "redis_url": url,
        "redis_hmac_key": HMAC_KEY,
        "redis_prefix": f"t{uuid.uuid4().hex[:12]}:",
        "redis_timeout_s": 1.0,  # generous: the point here is behaviour, not speed
        "block_size_bytes": BLOCK,
        "memory_bytes": 64 << 20,
        "breaker_cooldown_s": COOLDOWN_S,
        **overrides,
    }
    return Settings(**options)


def pod(settings: Settings) -> TieredFileSystem:
    """A fresh process's view: its own RAM tier and origin client, the shared Redis."""
    return TieredFileSystem(
        fs=CountingFS(skip_instance_cache=True),
        settings=settings,
        tiers=default_tiers(settings),
    )


def put_object(size: int = SIZE) -> tuple[str, bytes]:
    path = f"/redis/{uuid.uuid4().hex}/part-0.parquet"
    data = os.urandom(size)
    CountingFS(skip_instance_cache=True).pipe_file(path, data)
    return path, data


def read_footer(fs: TieredFileSystem, path: str, data: bytes) -> None:
    """What pyarrow does to open a Parquet file: info, then the 64 KiB tail."""
    assert fs.info(path)["size"] == len(data)
    assert fs.read_range(path, -65536, None) == data[-65536:]


def origin(fs: TieredFileSystem) -> CountingFS:
    target = fs.target
    assert isinstance(target, CountingFS)
    return target


def forget_in_ram(fs: TieredFileSystem) -> None:
    """Empty the pod's RAM (info and blocks), so that the next read asks Redis."""
    fs.chain.info_table.clear()
    memory = fs.chain.slots[0].tier
    assert isinstance(memory, MemoryTier | S3FifoTier)
    memory.clear()


def redis_stats(fs: TieredFileSystem) -> dict[str, Any]:
    entry: dict[str, Any] = fs.stats()["tiers"]["redis"]
    return entry


@dataclass
class Backend:
    """A standalone server or a cluster, seen the same way by the tests."""

    url: str
    client: Any  # redis.Redis or redis.cluster.RedisCluster
    cli: Callable[..., str]  # redis-cli, following cluster redirects
    everywhere: dict[str, Any]  # keyword arguments that send KEYS to every node

    def keys(self, pattern: str) -> list[bytes]:
        return sorted(set(self.client.keys(pattern, **self.everywhere)))


@pytest.fixture(params=["standalone", "cluster"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "standalone":
        server: RedisServer = request.getfixturevalue("redis_fresh")
        with server.client() as client:
            yield Backend(server.url, client, server.cli, {})
        return
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    client = cluster.client()
    seed = cluster.nodes[0]
    try:
        yield Backend(
            cluster.url.replace("redis://", "redis+cluster://", 1),
            client,
            lambda *args: seed.cli("-c", *args),
            {"target_nodes": RedisClusterClient.PRIMARIES},
        )
    finally:
        client.close()


@pytest.fixture
def redis_url(backend: Backend) -> str:
    return backend.url


def test_a_second_pod_finds_info_and_footer_in_redis(redis_url: str) -> None:
    settings = settings_for(redis_url)
    path, data = put_object()
    first = pod(settings)
    read_footer(first, path, data)
    first.chain.fills.join()
    assert redis_stats(first)["bytes_written"] > 0
    second = pod(settings)
    read_footer(second, path, data)
    assert origin(second).info_calls == 0
    assert origin(second).reads == []
    assert second.stats()["info"]["shared_hits"] == 1
    assert redis_stats(second)["hits"] == 1
    first.close()
    second.close()


def test_data_blocks_never_go_to_redis(backend: Backend) -> None:
    settings = settings_for(backend.url)
    path, data = put_object()
    first = pod(settings)
    assert first.read_range(path, 0, None) == data
    first.chain.fills.join()
    hashes = [k for k in backend.keys(settings.redis_prefix + "*") if b":b:" in k]
    assert len(hashes) == 1
    assert backend.client.hkeys(hashes[0]) == [f"{BLOCK}:{SIZE // BLOCK - 1}".encode()]
    first.close()


def test_entries_expire_with_the_ttl(backend: Backend) -> None:
    settings = settings_for(backend.url, redis_ttl_s=1.0)
    path, data = put_object()
    first = pod(settings)
    read_footer(first, path, data)
    first.chain.fills.join()
    keys = backend.keys(settings.redis_prefix + "*")
    assert len(keys) == 3  # the block hash, the set of versions, the info
    assert all(0 < backend.client.ttl(k) <= 2 for k in keys)
    time.sleep(1.6)
    second = pod(settings)
    read_footer(second, path, data)
    assert origin(second).info_calls == 1
    assert len(origin(second).reads) == 1
    first.close()
    second.close()


def test_values_over_the_size_limit_are_not_sent(backend: Backend) -> None:
    settings = settings_for(backend.url, redis_max_value_bytes=1000)
    path, data = put_object()
    first = pod(settings)
    read_footer(first, path, data)
    first.chain.fills.join()
    assert redis_stats(first)["too_large"] == 1
    assert [k for k in backend.keys(settings.redis_prefix + "*") if b":b:" in k] == []
    first.close()


def test_a_garbage_value_is_rejected_by_the_checksum_and_replaced(backend: Backend) -> None:
    settings = settings_for(backend.url)
    path, data = put_object()
    first = pod(settings)
    read_footer(first, path, data)
    first.chain.fills.join()
    (name,) = [k for k in backend.keys(settings.redis_prefix + "*") if b":b:" in k]
    (field,) = backend.client.hkeys(name)
    # Written with redis-cli, as an operator (or an attacker) with write access could.
    backend.cli("HSET", name.decode(), field.decode(), "garbage")
    assert backend.client.hget(name, field) == b"garbage"
    second = pod(settings)
    read_footer(second, path, data)  # exact bytes, from the origin
    assert redis_stats(second)["corrupt"] == 1
    assert len(origin(second).reads) == 1
    second.chain.fills.join()  # the fill replaced the garbage
    third = pod(settings)
    read_footer(third, path, data)
    assert origin(third).reads == []
    for fs in (first, second, third):
        fs.close()


def test_with_an_hmac_key_values_written_without_it_are_rejected(
    redis_fresh: RedisServer,
) -> None:
    plain = settings_for(redis_fresh.url)
    signed = Settings(**{**_fields(plain), "redis_hmac_key": "a-long-shared-secret-key"})
    path, data = put_object()
    writer = pod(plain)  # e.g. someone with write access but without the key
    read_footer(writer, path, data)
    writer.chain.fills.join()
    reader = pod(signed)
    read_footer(reader, path, data)
    assert reader.stats()["info"]["origin"] == 1
    assert redis_stats(reader)["corrupt"] >= 1
    assert len(origin(reader).reads) == 1
    writer.close()
    reader.close()


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def test_a_write_through_the_filesystem_invalidates_redis(redis_url: str) -> None:
    settings = settings_for(redis_url)
    path, data = put_object()
    first = pod(settings)
    read_footer(first, path, data)
    first.chain.fills.join()
    new = os.urandom(SIZE)
    first.pipe_file(path, new)
    second = pod(settings)
    read_footer(second, path, new)
    assert second.stats()["info"]["shared_hits"] == 0
    first.close()
    second.close()


def test_an_unreachable_redis_at_start_never_fails_construction() -> None:
    settings = settings_for("redis://127.0.0.1:1/0")
    fs = pod(settings)
    assert redis_stats(fs)["state"] == "disabled"
    path, data = put_object()
    read_footer(fs, path, data)
    fs.close()


def test_a_killed_redis_costs_nothing_and_recovers_after_a_restart(
    redis_fresh: RedisServer,
) -> None:
    settings = settings_for(redis_fresh.url, breaker_failures=2)
    path, data = put_object()
    fs = pod(settings)
    redis_fresh.kill()
    for _ in range(3):
        forget_in_ram(fs)
        read_footer(fs, path, data)
    assert redis_stats(fs)["state"] == "open"
    redis_fresh.restart()
    time.sleep(COOLDOWN_S * 1.5)
    fs.chain.fills.join()
    forget_in_ram(fs)
    read_footer(fs, path, data)  # the probe: fills resume
    fs.chain.fills.join()
    fresh = pod(settings)
    read_footer(fresh, path, data)
    assert origin(fresh).reads == []
    fs.close()
    fresh.close()


def test_a_hung_redis_costs_one_budget_then_nothing_and_recovers(
    redis_fresh: RedisServer,
) -> None:
    settings = settings_for(redis_fresh.url, redis_timeout_s=0.1, breaker_failures=1)
    path, data = put_object()
    fs = pod(settings)
    redis_fresh.stop()  # SIGSTOP
    try:
        started = time.monotonic()
        read_footer(fs, path, data)
        first_read_s = time.monotonic() - started
        stats = redis_stats(fs)
        assert stats["timeouts"] == 1
        assert stats["state"] == "open"
        # Bounded by the budget (plus slack for a loaded machine), never redis-py's 4-5 s.
        assert first_read_s < 2.0
        forget_in_ram(fs)
        read_footer(fs, path, data)
        assert redis_stats(fs)["timeouts"] == 1  # open: no second budget spent
    finally:
        redis_fresh.cont()
    time.sleep(COOLDOWN_S * 1.5)
    fs.chain.fills.join()
    forget_in_ram(fs)
    read_footer(fs, path, data)
    fs.chain.fills.join()
    fresh = pod(settings)
    read_footer(fresh, path, data)
    assert origin(fresh).reads == []
    fs.close()
    fresh.close()


def test_latency_under_the_budget_is_a_hit_over_it_a_miss(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    settings = settings_for(tcp_proxy.url_for(), redis_timeout_s=0.2, breaker_failures=100)
    path, data = put_object()
    warm = pod(settings)
    read_footer(warm, path, data)
    warm.chain.fills.join()
    tcp_proxy.latency_s = 0.02
    slow = pod(settings)
    read_footer(slow, path, data)
    assert origin(slow).reads == []
    slower = pod(settings)  # connected while the link is fast
    tcp_proxy.latency_s = 0.5
    read_footer(slower, path, data)  # exact bytes from the origin
    assert redis_stats(slower)["timeouts"] >= 1
    assert len(origin(slower).reads) == 1
    late = pod(settings)  # started while Redis is too slow: disabled, probed later
    assert redis_stats(late)["state"] == "disabled"
    read_footer(late, path, data)
    slower.close()
    late.close()
    for fs in (warm, slow, slower):
        fs.close()


def test_reset_connections_are_misses_never_errors(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    settings = settings_for(tcp_proxy.url_for(), breaker_failures=100)
    path, data = put_object()
    fs = pod(settings)
    read_footer(fs, path, data)
    fs.chain.fills.join()
    tcp_proxy.reset()
    tcp_proxy.reset_new = True
    other = pod(settings)
    read_footer(other, path, data)
    assert len(origin(other).reads) == 1
    tcp_proxy.reset_new = False
    again = pod(settings)
    read_footer(again, path, data)
    assert origin(again).reads == []  # a new connection works again
    for f in (fs, other, again):
        f.close()


def test_tls_with_a_private_ca(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    if not RedisServer.supports_tls():
        with capsys.disabled():
            print("\n[redis] this redis-server build has no TLS support: cannot test rediss://")
        pytest.fail("redis-server was built without TLS; install a build with TLS to test it")
    files = make_tls_files(tmp_path)
    with RedisServer(tls=files) as server:
        url = f"{server.url}?ssl_ca_certs={files.ca_cert}"
        settings = settings_for(url)
        path, data = put_object()
        first = pod(settings)
        read_footer(first, path, data)
        first.chain.fills.join()
        second = pod(settings)
        read_footer(second, path, data)
        assert origin(second).reads == []
        assert redis_stats(second)["hits"] == 1
        first.close()
        second.close()


def test_passwords_never_show(redis_fresh: RedisServer) -> None:
    with RedisServer(password="hunter2-very-secret") as server:
        tier = RedisTier(server.url, hmac_key=HMAC_KEY)
        assert tier.ready
        assert "hunter2" not in repr(tier)
        assert "hunter2" not in str(tier.stats())
        tier.close()
        wrong = RedisTier(server.url.replace("hunter2", "wrong"), hmac_key=HMAC_KEY)
        assert not wrong.ready
        assert "hunter2" not in str(wrong.stats())
        wrong.close()


def test_unix_socket_and_acl_user_urls(tmp_path: Any) -> None:
    socket_path = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]) as s:
        s.cli("ACL", "SETUSER", "reader", "on", ">reader-secret-pw", "~*", "+@all")
        for url in (
            f"unix://{socket_path}?db=0",
            f"redis://reader:reader-secret-pw@127.0.0.1:{s.port}/0",
        ):
            settings = settings_for(url)
            path, data = put_object()
            first = pod(settings)
            read_footer(first, path, data)
            first.chain.fills.join()
            second = pod(settings)
            read_footer(second, path, data)
            assert origin(second).reads == [], url
            assert "reader-secret-pw" not in str(second.stats())
            first.close()
            second.close()


def test_oom_and_readonly_pipeline_errors_are_refused_writes_not_failures(
    redis_fresh: RedisServer,
) -> None:
    import redis

    tier = RedisTier(
        redis_fresh.url, prefix=f"o{uuid.uuid4().hex[:8]}:", timeout_s=1.0, hmac_key=HMAC_KEY
    )
    key = BlockKey("t", "b/x", "v", 1, 0)
    with redis_fresh.client() as client:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            tier.put(key, b"footer")  # OutOfMemoryError inside a pipeline: skipped, counted
        finally:
            client.config_set("maxmemory", "0")
        client.execute_command("REPLICAOF", "127.0.0.1", "1")
        try:
            tier.put(key, b"footer")  # ReadOnlyError: skipped, counted
        finally:
            client.execute_command("REPLICAOF", "NO", "ONE")
    assert tier.refused_writes == 2
    with pytest.raises(redis.ResponseError):
        tier._write(_failing_pipeline())
    tier.close()


class _failing_pipeline:
    def execute(self) -> None:
        import redis

        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")


def test_a_loading_redis_is_a_fast_failure_counted_in_loading(  # noqa: PLR0915 - one story
    redis_fresh: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """LOADING refuses reads and writes alike: the tier fails fast, counts the replies in
    ``loading`` and lets the breaker open (one WARNING); a probe after the load closes it."""
    import logging

    import redis

    caplog.set_level(logging.INFO, logger="tiercache")
    settings = settings_for(redis_fresh.url, redis_timeout_s=0.5, breaker_failures=2)
    path, data = put_object()
    writer = pod(settings)
    read_footer(writer, path, data)
    writer.chain.fills.join()
    writer.close()
    tier = RedisTier(
        redis_fresh.url, prefix=settings.redis_prefix, timeout_s=1.0, hmac_key=HMAC_KEY
    )
    key = BlockKey("t", "b/x", "v", 1, 0)
    fs = pod(settings)
    redis_fresh.load_slowly(3.0)
    try:
        started = time.monotonic()
        # Translated at the tier's choke point, the original as the cause.
        with pytest.raises(TierError, match="BusyLoadingError") as got:
            tier.get(key)
        assert isinstance(got.value.__cause__, redis.BusyLoadingError)
        with pytest.raises(TierError, match="BusyLoadingError"):
            tier.put(key, b"footer")
        assert time.monotonic() - started < 0.5  # refused at once, not a time budget
        assert tier.loading == 2
        assert tier.refused_writes == 0  # not a refusal: the breaker must see it
        assert "loading" in str(tier.last_error).lower()
        during = RedisTier(
            redis_fresh.url, prefix=settings.redis_prefix, timeout_s=1.0, hmac_key=HMAC_KEY
        )
        assert not during.ready  # constructed while loading: disabled, retried later
        assert during.loading == 1
        during.close()

        read_footer(fs, path, data)  # the info and footer come from the origin
        forget_in_ram(fs)
        read_footer(fs, path, data)
        stats = redis_stats(fs)
        assert stats["loading"] >= 2, stats
        assert stats["errors"] >= 2, stats
        assert stats["state"] == "open", stats
        assert redis_fresh.is_loading(), "the load ended before the test was done"
    finally:
        redis_fresh.wait_loaded()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "BusyLoadingError" in warnings[0].getMessage()
    time.sleep(COOLDOWN_S * 1.5)
    forget_in_ram(fs)
    before = len(origin(fs).reads)
    read_footer(fs, path, data)  # the probe finds it loaded, with the data it had
    assert len(origin(fs).reads) == before
    assert redis_stats(fs)["state"] == "closed"
    tier.close()
    fs.close()


def test_last_checkpoint_blocks_are_shared_but_never_its_info(redis_url: str) -> None:
    """``_delta_log/_last_checkpoint`` is rewritten in place: which version is current is never
    learnt from Redis; a block of a version a pod learnt elsewhere is (keyed by that version)."""
    settings = settings_for(redis_url)
    path = f"/redis/{uuid.uuid4().hex}/_delta_log/_last_checkpoint"
    data = b'{"version":10,"size":13}'
    CountingFS(skip_instance_cache=True).pipe_file(path, data)
    first = pod(settings)
    assert first.read_range(path, 0, None) == data
    first.chain.fills.join()
    info = first.chain.info_table.peek(path)
    assert info is not None
    second = pod(settings)
    assert second.read_range(path, 0, None) == data
    assert origin(second).info_calls + len(origin(second).reads) > 0  # the info: the store's
    third = pod(settings)
    third.chain.seed_info(info)  # the version, learnt elsewhere (a kept log listing)
    assert third.read_range(path, 0, None) == data
    assert origin(third).reads == []  # the block: Redis
    assert redis_stats(third)["hits"] == 1
    for fs in (first, second, third):
        fs.close()
