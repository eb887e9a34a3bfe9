"""The HTTP server's bounds (gateway.server): head size, slow heads, stalled bodies, silent
connections, and a normal return on SIGTERM. The server runs in a child process over an echo app,
its bounds shortened so the tests take a second, not the production ten.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, cast

import pytest

SERVER = """
import json
import tiercache.gateway.server as server

server.HEADER_TIMEOUT_S = 0.5
server.BODY_IDLE_S = 0.5
server.KEEP_ALIVE_S = 1
server.MAX_HEADER_BYTES = 8192

# What the server's protocol made of each accepted socket: TCP_NODELAY, read back.
import socket
nodelay = []
protocol = server._guarded_protocol()
made = protocol.connection_made


def connection_made(self, transport):
    made(self, transport)
    sock = transport.get_extra_info("socket")
    nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


protocol.connection_made = connection_made


class Echo:
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(nodelay[-1] if scope["path"] == "/nodelay" else size).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def close(self):
        pass


sock = server.bind("127.0.0.1", 0)
server.serve(
    Echo(),
    sock,
    on_started=lambda: print(json.dumps({"port": sock.getsockname()[1]}), flush=True),
)
print("returned", flush=True)
"""


class Server:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.port = int(json.loads(self._stdout.readline())["port"])

    @property
    def _stdout(self) -> IO[bytes]:
        return cast(IO[bytes], self.process.stdout)

    def connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stdout.close()
        cast(IO[bytes], self.process.stderr).close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def _answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_responses_are_not_held_back_by_nagle(server: Server) -> None:
    """uvicorn writes a response's head and body apart: with Nagle's algorithm on, a small
    body waits for the client's delayed ACK (40 ms a request on a keep-alive connection)."""
    with server.connect() as connection:
        connection.sendall(b"GET /nodelay HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"\r\n\r\n1")  # TCP_NODELAY on the accepted socket


def test_a_head_within_the_bound_is_served(server: Server) -> None:
    with server.connect() as connection:
        pad = b"x" * 6000
        connection.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: " + pad + b"\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_head_over_the_bound_is_answered_431_and_closed(server: Server) -> None:
    with server.connect() as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        try:
            for _ in range(100):  # 100 KiB of headers that never end
                connection.sendall(b"X-Pad: " + b"x" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed it under our feet: the answer was sent before
        assert _answer(connection).startswith(b"HTTP/1.1 431 ")


def test_a_slow_head_is_answered_408_and_closed(server: Server) -> None:
    with server.connect() as connection:
        began = time.monotonic()
        connection.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        try:
            for _ in range(5):  # a slowloris: a byte now and then, never the end of the head
                time.sleep(0.2)
                connection.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after its answer
        assert _answer(connection).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - began < 5


def test_a_connection_that_never_sends_is_closed(server: Server) -> None:
    with server.connect() as connection:
        began = time.monotonic()
        assert _answer(connection) == b""
        assert 0.5 < time.monotonic() - began < 5


def test_a_stalled_body_closes_the_connection(server: Server) -> None:
    with server.connect() as connection:
        connection.sendall(b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        began = time.monotonic()
        assert _answer(connection) == b""  # no answer: the app saw the client go away
        assert time.monotonic() - began < 5


def test_a_slow_but_steady_body_is_served(server: Server) -> None:
    with server.connect() as connection:
        connection.sendall(b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        for _ in range(10):  # 2 s in all, never 0.5 s without a byte
            time.sleep(0.2)
            connection.sendall(b"0123456789")
        answer = connection.recv(65536)
        while not answer.endswith(b"\r\n\r\n100"):
            chunk = connection.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_sigterm_ends_in_a_normal_return() -> None:
    running = Server()
    try:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=10) == 0
        assert running.process.stdout is not None
        assert running.process.stdout.read() == b"returned\n"
    finally:
        running.close()
