"""A server that answers S3 reads of one object with bytes it already holds, and does nothing
else: the floor under any gateway, for the client measuring it.

It answers HEAD with the object's size and GET with ``Range: bytes=a-b`` with those bytes (206),
whatever the path, with the headers a real answer carries (so that the client parses as much);
no signature is checked, nothing is looked up, each answer is one ``write`` of a prepared header
and a slice of the buffer. pyarrow's S3 client reading through it costs what that client costs on
this machine, plus a loopback hop: a gateway cannot be faster for that client. Run in its own
process (``canned_server``), on a socket the caller bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

_RANGE = re.compile(rb"\r\nrange: *bytes=(\d+)-(\d+)", re.IGNORECASE)
_HEADERS = (
    b'etag: "0123456789abcdef0123456789abcdef"\r\n'
    b"last-modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    b"content-type: binary/octet-stream\r\naccept-ranges: bytes\r\n"
    b"x-amz-request-id: 0000000000000000\r\nserver: canned\r\n"
    b"date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
)


class _Canned(asyncio.Protocol):
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, chunk: bytes) -> None:
        assert self.transport is not None
        self.pending += chunk
        while b"\r\n\r\n" in self.pending:
            head, _, self.pending = self.pending.partition(b"\r\n\r\n")
            self._answer(self.transport, head)

    def _answer(self, transport: asyncio.Transport, head: bytes) -> None:
        size = len(self.data)
        if head[:4].upper() == b"HEAD":
            transport.write(b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\n\r\n" % (_HEADERS, size))
            return
        match = _RANGE.search(head)
        lo, hi = (int(match[1]), min(int(match[2]) + 1, size)) if match else (0, size)
        transport.write(
            b"HTTP/1.1 206 Partial Content\r\n%scontent-length: %d\r\n"
            b"content-range: bytes %d-%d/%d\r\n\r\n" % (_HEADERS, hi - lo, lo, hi - 1, size)
        )
        transport.write(self.data[lo:hi])


async def _serve(fd: int, size: int) -> None:
    listener = socket.socket(fileno=fd)
    data = os.urandom(size)
    server = await asyncio.get_running_loop().create_server(lambda: _Canned(data), sock=listener)
    await server.serve_forever()


@contextlib.contextmanager
def canned_server(size: int) -> Iterator[str]:
    """Run the server for an object of ``size`` bytes in a child process; yield its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, __file__, str(listener.fileno()), str(size)],
        pass_fds=[listener.fileno()],
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(timeout=10)
        listener.close()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
