"""The embedded gateway: a child process owned by the caller, ending with it.

Some deltalake calls (``DeltaTable.history()``, ``QueryBuilder``) hold the GIL while they wait for
HTTP, so a gateway thread in the caller's interpreter would never answer them (measured: stalls of
minutes). The gateway therefore runs in a child process (``python -m tiercache.gateway``) over the
same target and settings: its RAM tier is its own, the disk and Redis tiers are shared with the
caller's. The child is tied to the caller: it exits when the pipe from the caller closes (the
caller exited, or closed the handle) and, on Linux, when the caller dies (``PR_SET_PDEATHSIG``,
which is why every child is started from one long-lived thread: Linux sends it when the
starting *thread* ends).
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from tiercache.config import Settings
from tiercache.errors import ConfigError
from tiercache.fs import TieredFileSystem
from tiercache.gateway.seeds import seed_document

_T = TypeVar("_T")

#: Seconds the child gets to start serving.
START_TIMEOUT_S = 60.0
#: The credentials clients sign with when the gateway has none configured (it accepts any).
ANONYMOUS = ("tiercache", "tiercache-anonymous")
# Addresses a server listens on but a client cannot connect to by name everywhere.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class GatewayError(OSError):
    """The gateway answered a request of its handle with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        #: The HTTP status.
        self.status = status


class Gateway:
    """A running embedded gateway: where it listens, and the options clients need.

    A context manager; :meth:`close` (or leaving the ``with``) stops the child.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], host: str, port: int, keys: tuple[str, str]
    ) -> None:
        self._process = process
        self.host = host
        self.port = port
        self._keys = keys
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets); a wildcard address (``0.0.0.0``,
        ``::``) as the loopback address of its family, which reaches it from this host."""
        host = _WILDCARDS.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def storage_options(self) -> dict[str, str]:
        """The options deltalake and Rust ``object_store`` take to read and write through it.

        Commits are safe with them: ``AWS_CONDITIONAL_PUT=etag`` makes a commit a put-if-absent
        (``If-None-Match: *`` on ``_delta_log/NNN.json``), which the gateway passes to the
        origin, so of two writers committing the same version one gets 412 and deltalake
        retries or reports a conflict (tests/gateway/test_deltalake.py races four). deltalake
        1.x sets it for S3 on its own; it is named here so a default that changes cannot turn
        it off. No ``AWS_S3_ALLOW_UNSAFE_RENAME``: before deltalake 1.0 it opted out of safe
        commits (racing writers could overwrite each other's); 1.x needs no lock for S3 and
        commits with ``If-None-Match`` either way (measured with 1.6.6), so it only misled.
        """
        key, secret = self._keys
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
            "AWS_CONDITIONAL_PUT": "etag",
        }

    def s3fs_options(self) -> dict[str, Any]:
        """The options s3fs (and fsspec URLs) take to read through it."""
        key, secret = self._keys
        return {
            "key": key,
            "secret": secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        }

    def stats(self, *, settle: bool = False) -> dict[str, Any]:
        """The gateway process's stats: its chain's (``"chain"``) and its requests
        (``"gateway"``), from ``GET /-/stats``. ``settle``: first let the gateway finish
        filling the slower tiers (disk, Redis) with what it read, so that those bytes count."""
        path = "/-/stats?settle" if settle else "/-/stats"
        document: dict[str, Any] = json.loads(self._call("GET", path))
        return document

    def seed(self, objects: Iterable[tuple[str, int, str, float]]) -> dict[str, int]:
        """Tell the gateway what objects are without it asking the store: ``(path, size,
        version, mtime)`` each, ``path`` as ``bucket/key`` (:mod:`tiercache.gateway.seeds`;
        only immutable paths are taken). Returns ``{"seeded": n, "skipped": m}``."""
        answer: dict[str, int] = json.loads(self._call("POST", "/-/seed", seed_document(objects)))
        return answer

    def snapshot(self, bucket: str, root: str, groups: list[list[dict[str, Any]]]) -> str:
        """Register a snapshot view (:mod:`tiercache.gateway.snapshots`): ``groups`` of files
        (``{"key", "size", "version", "mtime"}``), one group per partition; returns the view's
        directory (``<root>/_tiercache_snapshot/<token>/``, with ``p<N>/`` per group)."""
        body = json.dumps({"bucket": bucket, "root": root, "groups": groups}).encode()
        answer: dict[str, str] = json.loads(self._call("POST", "/-/snapshot", body))
        return answer["prefix"]

    def prefetch_range(self, path: str, start: int, end: int) -> bytes:
        """``[start, end)`` of ``path`` (``bucket/key``) read through the gateway, counted in
        its stats as prefetch, not demand (``tiercache.warm`` warms a gateway with it)."""
        headers = {"x-tiercache-purpose": "prefetch", "range": f"bytes={start}-{end - 1}"}
        return self._call("GET", "/" + quote(path, safe="/"), headers=headers)

    def _call(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> bytes:
        """One request to the gateway, signed with the clients' credentials.

        Raises:
            GatewayError: The gateway answered with an error status (its S3 error document
                is in the message).
            OSError: The gateway could not be reached.
        """
        import urllib.error
        import urllib.request

        from tiercache.gateway.sigv4 import Credentials, sign_request

        url = f"{self.endpoint_url}{path}"
        signed = sign_request(method, url, Credentials(*self._keys), body=body)
        request = urllib.request.Request(
            url, data=body or None, headers={**signed, **(headers or {})}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                data: bytes = answer.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read(2000).decode(errors="replace")
            raise GatewayError(exc.code, f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return data

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        stdout = self._process.stdout
        return stdout is None or stdout.closed

    @property
    def alive(self) -> bool:
        """Whether the child is still running."""
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the child: its requests in progress finish first (a few seconds at most)."""
        with self._lock:
            process = self._process
            if process.stdout is None or process.stdout.closed:
                return
            if process.stdin is not None:
                process.stdin.close()  # the child's signal to shut down
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start(fs: TieredFileSystem | None = None, *, listen: str = "127.0.0.1:0") -> Gateway:
    """Start a gateway owned by this process over ``fs``'s target and settings.

    Args:
        fs: The filesystem whose target and settings the gateway uses (s3fs, or any fsspec
            filesystem whose options are JSON: gcsfs, adlfs, a ``dir`` over a local directory;
            a ``memory`` target is the child's own memory, not this process's); default: one built
            from the environment for ``s3``.
        listen: ``HOST:PORT`` (port 0: a free one). Without client credentials configured, a
            loopback address only.

    Raises:
        ConfigError: The target's options cannot be handed to the child, or the
            child did not start (its error is in the message).
    """
    if fs is None:
        fs = TieredFileSystem(target_protocol="s3")
    return launch(child_spec(fs, listen), client_keys(fs.settings))


def child_spec(fs: TieredFileSystem, listen: str = "127.0.0.1:0") -> str:
    """The JSON line that tells a gateway process what to serve: ``fs``'s target options and
    settings (the caller's metrics endpoint and stats file left out) and where to listen.

    Raises:
        ConfigError: The target's options are not JSON (a botocore session
            object, say): the child cannot be handed them.
    """
    protocol = fs.target.protocol
    protocol = protocol if isinstance(protocol, str) else protocol[0]
    # The caller's metrics endpoint and stats file stay the caller's: the child's figures are at
    # its GET /-/stats (Gateway.stats()).
    child = dataclasses.replace(fs.settings, metrics_port=None, stats_file=None)
    spec = {
        "target_protocol": protocol,
        "target_options": fs.target.storage_options,
        "settings": dataclasses.asdict(child),
        "listen": listen,
    }
    try:
        return json.dumps(spec, sort_keys=True)
    except TypeError as exc:
        raise ConfigError(
            f"the target's storage options cannot be handed to the gateway process: {exc}"
        ) from exc


def launch(line: str, keys: tuple[str, str]) -> Gateway:
    """Start ``python -m tiercache.gateway`` on ``line`` (:func:`child_spec`) and wait until it
    serves.

    Raises:
        ConfigError: The child did not start (its error is in the message).
    """
    process = _LAUNCHER.run(
        lambda: subprocess.Popen(
            [sys.executable, "-m", "tiercache.gateway"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the child's log goes where ours goes
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(line.encode() + b"\n")
    process.stdin.flush()
    ready = _read_ready(process)
    return Gateway(process, ready["host"], int(ready["port"]), keys)


class _Launcher:
    """Starts the gateway processes from one thread that lives as long as this process.

    The child asks Linux for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and Linux
    sends it when the *thread* that started the child ends: a gateway started from a worker
    thread (``tiercache.warm`` lists a table on one) would be killed as soon as that thread
    finished. Starting every child from this thread ties them to the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], _T]) -> _T:
        """``fn()``, called on the launcher thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="tiercache-gateway-launcher", daemon=True
                )
                self._thread.start()
        done: Future[_T] = Future()
        self._jobs.put((fn, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            fn, done = self._jobs.get()
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_LAUNCHER = _Launcher()


def _read_ready(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    line = result[0] if result else b""
    try:
        ready: dict[str, Any] = json.loads(line)
    except ValueError:
        ready = {}
    if "port" not in ready:
        process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        detail = ready.get("error") if ready else "no answer"
        raise ConfigError(f"the gateway process did not start: {detail or line!r}")
    return ready


def client_keys(settings: Settings) -> tuple[str, str]:
    """The credentials clients sign with: the configured ``TIERCACHE_GATEWAY_*`` pair, or
    :data:`ANONYMOUS` (accepted by a gateway that has none)."""
    key, secret = settings.gateway_access_key_id, settings.gateway_secret_access_key
    return (key, secret) if key and secret else ANONYMOUS
