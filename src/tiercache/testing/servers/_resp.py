"""Just enough of the Redis protocol (RESP) for the harness to ask a server how it is.

Starting a server, waiting until it answers, saving its data and checking a cluster's state
must work without redis-py (which the harness imports only for the clients it hands out) and
whatever state the server is in: a new connection per question, a short timeout, and ``None``
for a server that cannot be reached.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
from collections.abc import Sequence

from tiercache.testing.servers.ports import LOOPBACK
from tiercache.testing.servers.redis_tls import TlsFiles

_PROBE_TIMEOUT_S = 1.0


def _encode(*args: str) -> bytes:
    """Encode one command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def query(
    port: int,
    commands: Sequence[Sequence[str]],
    password: str | None,
    tls: TlsFiles | None,
    timeout_s: float = _PROBE_TIMEOUT_S,
) -> list[bytes] | None:
    """Send RESP commands on a new connection; return the replies, ``None`` if unreachable.

    A simple reply or error comes back as its line (``b"+PONG"``, ``b"-ERR ..."``), a bulk
    string as its payload. Only those reply kinds are understood, which is all the harness asks.
    """
    if password is not None:
        commands = [("AUTH", password), *commands]
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(
                socket.create_connection((LOOPBACK, port), timeout=timeout_s)
            )
            if tls is not None:
                context = ssl.create_default_context(cafile=str(tls.ca_cert))
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname=LOOPBACK))
            sock.sendall(b"".join(_encode(*command) for command in commands))
            replies = stack.enter_context(sock.makefile("rb"))
            answers = [_read_reply(replies) for _ in commands]
    except (OSError, ValueError):
        return None
    return answers[1:] if password is not None else answers


def _read_reply(stream: io.BufferedReader) -> bytes:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed inside a reply")
    if line.startswith(b"$"):
        size = int(line[1:])
        if size < 0:
            return b""
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed inside a reply")
        return data[:-2]
    return line[:-2]


def ping_reply(port: int, password: str | None, tls: TlsFiles | None) -> bytes | None:
    """PING's reply (``b"+PONG"``, ``b"-LOADING ..."``, ...), ``None`` if unreachable."""
    replies = query(port, [("PING",)], password, tls)
    return None if replies is None else replies[-1]


def ping(port: int, password: str | None, tls: TlsFiles | None) -> bool:
    """Whether the server answers PING with PONG (not ``-LOADING``, not an error)."""
    return ping_reply(port, password, tls) == b"+PONG"
