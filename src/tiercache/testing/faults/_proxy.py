"""What the HTTP and the TCP fault proxy share: a port kept across restarts, the checks on their
controls, and closing a socket with a reset.

Both listen on ``127.0.0.1``; with port 0 the system picks a port at the first start, and the
proxy keeps it, so a closed proxy started again has the same URL and its clients need not be told.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from tiercache.testing.servers._service import Service

#: How long closing a proxy waits for its threads.
STOP_JOIN_TIMEOUT_S = 5.0
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN.


def rst_on_close(sock: socket.socket) -> None:
    """Make ``sock.close()`` send a TCP RST instead of a FIN; a socket already closed is left so."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


def seconds_control(name: str, value: float) -> float:
    """Return a delay control's value as a float; raise ``ValueError`` if it is below 0."""
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def bandwidth_control(value: float | None) -> float | None:
    """Return a bandwidth control's value as a float or ``None``; ``ValueError`` if not above 0."""
    if value is not None and not value > 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0 or None, got {value!r}")
    return None if value is None else float(value)


class ListeningProxy(Service):
    """A fault proxy listening on ``127.0.0.1``: the port it was given, or the first one it got.

    Args:
        port: The port to listen on; 0: a free port chosen by the operating system at the first
            :meth:`start`, kept afterwards.
    """

    def __init__(self, port: int) -> None:
        self._port = port

    @property
    def port(self) -> int:
        """The port the proxy listens on.

        Raises:
            RuntimeError: The proxy was created with port 0 and has never been started.
        """
        if self._port == 0:
            raise RuntimeError("the proxy has not been started, so it has no port yet")
        return self._port
