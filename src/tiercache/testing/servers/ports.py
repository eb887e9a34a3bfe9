"""Free loopback ports for servers started by tests."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
"""The only address the harness servers listen on."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is found by binding to port 0 and closing the socket again, so another process can
    in principle take it before the caller binds it; the window is short enough for test servers.

    Returns:
        A port number in the operating system's ephemeral range.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port
