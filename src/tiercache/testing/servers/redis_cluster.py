"""A Redis Cluster of real ``redis-server`` processes on loopback, for integration tests.

:class:`RedisCluster` runs N :class:`~tiercache.testing.RedisServer` nodes with cluster mode on,
joins them with ``redis-cli --cluster create`` and waits until every node says
``cluster_state:ok``. Each node keeps its cluster config in its own directory, so a node killed
and restarted rejoins with its slots.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tiercache.testing.servers._resp import query
from tiercache.testing.servers._service import LOG_TAIL_BYTES, Service
from tiercache.testing.servers.ports import LOOPBACK, free_port
from tiercache.testing.servers.redis import RedisServer, client_options
from tiercache.testing.servers.redis_binaries import find_redis_binaries

if TYPE_CHECKING:
    import redis.cluster

_POLL_INTERVAL_S = 0.1
_CLUSTER_NODE_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",  # Relative to the node's own --dir.
    "--cluster-node-timeout", "2000",
)  # fmt: skip
_CLUSTER_BUS_OFFSET = 10000
_PORT_ATTEMPTS = 3  # A port found free can be taken before the node binds it; try a new one.


class RedisCluster(Service):
    """A Redis Cluster of ``masters`` :class:`RedisServer` nodes on loopback, no replicas.

    The nodes run with ``--cluster-enabled yes --cluster-node-timeout 2000``, each with its
    cluster config file (``nodes.conf``) in its own directory under one temporary directory, so
    a node that is killed and restarted rejoins the cluster with its slots (and no data). The
    cluster is created with ``redis-cli --cluster create`` and :meth:`start` returns once every
    node reports ``cluster_state:ok``. Use it as a context manager, or call :meth:`start` and
    :meth:`close` (both idempotent).

    Args:
        masters: How many master nodes, at least 3 (Redis Cluster's minimum). Default 3.
        extra_args: More ``redis-server`` arguments for every node.
        binaries: ``(redis_server_path, redis_cli_path)``. Default ``None``:
            :func:`find_redis_binaries`.
        startup_timeout_s: The bound on the whole :meth:`start`. Default 20 s.

    Raises:
        ValueError: ``masters`` is below 3.
        RuntimeError: ``binaries`` is ``None`` and no Redis binaries were found.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        extra_args: Sequence[str] = (),
        binaries: tuple[str, str] | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        if masters < 3:
            raise ValueError(f"a Redis Cluster needs at least 3 masters, got {masters}")
        self._masters = masters
        self._extra_args = tuple(extra_args)
        self._binaries = find_redis_binaries() if binaries is None else binaries
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.RLock()
        self._nodes: list[RedisServer] = []
        self._directory: Path | None = None

    def __repr__(self) -> str:
        ports = [node.port for node in self._nodes]
        return f"RedisCluster(masters={self._masters}, ports={ports})"

    @property
    def nodes(self) -> list[RedisServer]:
        """The node servers, in the order their ports were given to ``--cluster create``.

        Empty until :meth:`start`. A copy: changing the list changes nothing.
        """
        return list(self._nodes)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node.

        Raises:
            RuntimeError: The cluster was never started.
        """
        return [(node.host, node.port) for node in self._require_nodes()]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first node, a seed for cluster clients.

        Raises:
            RuntimeError: The cluster was never started.
        """
        return f"redis://{LOOPBACK}:{self._require_nodes()[0].port}"

    def start(self) -> None:
        """Start the nodes, create the cluster and wait for ``cluster_state:ok`` everywhere.

        Do nothing if the cluster is running.

        Raises:
            RuntimeError: A node did not start, ``redis-cli --cluster create`` failed, or the
                cluster was not ok within ``startup_timeout_s``. Nothing is left running.
        """
        with self._lock:
            if self._nodes:
                return
            deadline = time.monotonic() + self._startup_timeout_s
            self._directory = Path(tempfile.mkdtemp(prefix="tiercache-redis-cluster-"))
            atexit.register(self.close)
            try:
                self._create(deadline)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Shut every node down and remove the cluster's temporary directory (idempotent)."""
        with self._lock:
            nodes, self._nodes = self._nodes, []
            directory, self._directory = self._directory, None
            if directory is None:
                return
            atexit.unregister(self.close)
            for node in nodes:
                node.close()
            shutil.rmtree(directory, ignore_errors=True)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """Return a redis-py cluster client, meant for tests; close it when done.

        Defaults: socket timeout 5 s, connect timeout 2 s, no retries of failed commands
        (redirections are still followed).

        Args:
            **kwargs: ``redis.cluster.RedisCluster`` arguments that override the defaults.

        Raises:
            RuntimeError: The cluster was never started.
        """
        from redis.cluster import ClusterNode
        from redis.cluster import RedisCluster as ClusterClient

        # redis-py leaves ClusterNode.__init__ unannotated.
        node_type = cast("Callable[[str, int], ClusterNode]", ClusterNode)
        nodes = [node_type(host, port) for host, port in self.startup_nodes]
        options = {"startup_nodes": nodes, **client_options(), **kwargs}
        return ClusterClient(**options)

    def _create(self, deadline: float) -> None:
        assert self._directory is not None
        for index in range(self._masters):
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                node = RedisServer(
                    _cluster_port(),
                    extra_args=[*_CLUSTER_NODE_ARGS, *self._extra_args],
                    data_dir=self._directory / f"node-{index}",
                    binaries=self._binaries,
                    startup_timeout_s=max(1.0, deadline - time.monotonic()),
                )
                try:
                    node.start()
                except RuntimeError as exc:
                    if attempt < _PORT_ATTEMPTS and "Address already in use" in str(exc):
                        continue
                    raise
                self._nodes.append(node)
                break
        addresses = [f"{node.host}:{node.port}" for node in self._nodes]
        create = [
            self._binaries[1], "--cluster", "create", *addresses,
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                create,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"redis-cli --cluster create timed out: {exc.output!r}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed with exit code {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()[-LOG_TAIL_BYTES:]}"
            )
        pending = list(self._nodes)
        while pending:
            pending = [node for node in pending if not _cluster_ok(node.port)]
            if not pending:
                return
            if time.monotonic() >= deadline:
                ports = ", ".join(str(node.port) for node in pending)
                raise RuntimeError(
                    f"Redis Cluster not ok within {self._startup_timeout_s:g} s on ports {ports}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _require_nodes(self) -> list[RedisServer]:
        if not self._nodes:
            raise RuntimeError("the Redis Cluster is not running")
        return self._nodes


def _cluster_port() -> int:
    """Return a free port that Redis Cluster accepts: at most 55535, with port + 10000 free.

    A cluster node also listens on its cluster bus port, its port + 10000, which must fit.
    """
    for _ in range(1000):
        port = free_port()
        if port + _CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port + _CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("found no free port pair (port, port + 10000) for a Redis Cluster node")


def _cluster_ok(port: int) -> bool:
    replies = query(port, [("CLUSTER", "INFO")], None, None)
    return replies is not None and b"cluster_state:ok" in replies[0]
