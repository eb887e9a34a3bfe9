"""The embedded gateway's lifetime: tied to the process that started it, not to the thread
(Linux sends ``PR_SET_PDEATHSIG`` when the starting *thread* ends), and ended with it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from tiercache import TieredFileSystem
from tiercache.gateway import Gateway, start
from tiercache.testing import S3Server

pytestmark = pytest.mark.integration


def _healthy(gateway: Gateway) -> bool:
    with urllib.request.urlopen(f"{gateway.endpoint_url}/-/health", timeout=10) as answer:
        return bool(answer.status == 200)


def test_a_gateway_started_on_a_thread_outlives_the_thread(origin_fs: TieredFileSystem) -> None:
    started: list[Gateway] = []
    thread = threading.Thread(target=lambda: started.append(start(origin_fs)))
    thread.start()
    thread.join()
    (gateway,) = started
    try:
        # The starting thread is gone; a child tied to it would now be getting SIGTERM.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert gateway.alive
            assert _healthy(gateway)
            time.sleep(0.2)
    finally:
        gateway.close()
    assert not gateway.alive


PARENT = """
import json, os, sys
from tiercache import TieredFileSystem
from tiercache.gateway import start
fs = TieredFileSystem(target_protocol="s3", target_options=json.loads(sys.argv[1]))
gateway = start(fs)
print(gateway._process.pid, flush=True)
os.kill(os.getpid(), 9)  # the owner dies without closing anything
"""


def test_the_gateway_ends_when_its_owner_is_killed(s3_server: S3Server) -> None:
    options = json.dumps(s3_server.storage_options())
    owner = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PARENT), options],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert owner.returncode == -9
    child = int(owner.stdout.split()[0])
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and _exists(child):
        time.sleep(0.1)
    assert not _exists(child), "the gateway outlived its owner"


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
