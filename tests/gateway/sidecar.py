"""``tiercache serve`` as a real process for the tests: started in a process group of its own,
killed whole as a container runtime would, its workers found among its children."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from tiercache.testing import S3Server

KEY_ID, SECRET = "engine", "engine-secret-0123456789abcdef"
TIERCACHE = Path(sys.executable).parent / "tiercache"


def sidecar_environment(**extra: str) -> dict[str, str]:
    """The sidecar's environment: none of the caller's AWS or tiercache settings."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "TIERCACHE_"))
    }
    environment.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PYTHONUNBUFFERED="1",
        TIERCACHE_MEMORY_BYTES=str(64 << 20),
    )
    environment.update(extra)
    return environment


class Sidecar:
    """``tiercache serve`` in a process group of its own (as a container's processes are)."""

    def __init__(
        self,
        s3_server: S3Server,
        *args: str,
        listen: str = "127.0.0.1:0",
        environment: dict[str, str] | None = None,
        origin_url: str | None = None,
    ) -> None:
        """``origin_url``: where the sidecar reaches the S3 server (default: the server itself;
        a fault proxy's URL puts the proxy between them)."""
        self.origin_url = origin_url
        options = s3_server.storage_options(origin_url)
        command = [
            str(TIERCACHE),
            "serve",
            "--listen",
            listen,
            "--storage-option",
            f"endpoint_url={options['client_kwargs']['endpoint_url']}",
            "--storage-option",
            f"key={options['key']}",
            "--storage-option",
            f"secret={options['secret']}",
            *args,
        ]
        # Closed in close(): it outlives this method, read after the process ends.
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=environment or sidecar_environment(),
            start_new_session=True,
        )
        self.address = ""

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Wait for the one JSON line; return ``host:port``."""
        stdout = self.process.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], timeout_s)
        line = stdout.readline() if readable else b""
        assert line, f"no ready line; stderr: {self.errors()}"
        self.address = json.loads(line)["listening"]
        return self.address

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}"

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def workers(self) -> list[int]:
        """The worker processes' ids (the supervisor's children, minus multiprocessing's
        resource tracker)."""
        found = []
        for child in self._children(self.process.pid):
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
        return found

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL every process of the sidecar, as a container runtime does, and wait until
        they are dead (zombies hold no socket: whoever reaps them may take its time)."""
        pid = self.process.pid
        group = [pid, *self._children(pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 10
        while any(alive(member) for member in group):
            assert time.monotonic() < deadline, "the sidecar's processes did not die"
            time.sleep(0.005)

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill_all()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def sidecars() -> Iterator[Callable[..., Sidecar]]:
    """Start sidecars; every one is killed at the end of the test."""
    started: list[Sidecar] = []

    def make(s3_server: S3Server, *args: str, **kwargs: Any) -> Sidecar:
        sidecar = Sidecar(s3_server, *args, **kwargs)
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        sidecar.close()


def s3_client(
    endpoint_url: str,
    *,
    attempts: int = 1,
    retries: dict[str, Any] | None = None,
    signed: bool = True,
    **config: Any,
) -> Any:
    """boto3 on the sidecar, path-style, signed with ``KEY_ID`` (any pair passes a sidecar
    without credentials); its own retries off unless ``attempts`` or ``retries`` say."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries=retries or {"mode": "standard", "total_max_attempts": attempts},
            **({} if signed else {"signature_version": UNSIGNED}),
            **config,
        ),
    )
