"""The controls and counters of :class:`~tiercache.testing.TcpFaultProxy`, under one lock.

The proxy's users set controls from any thread while connections are open; the proxy's one I/O
thread reads them once per round of its loop, as one :class:`Settings` (a frozen copy, so a
round never sees half of a change), and counts what it does here. The proxy validates values
before they get here.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    """The proxy's controls at one moment; see the properties of the same names on the proxy."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bytes_per_s: float | None = None
    blackhole: bool = False
    reset_new: bool = False
    limit_data: int | None = None


class Controls:
    """The current :class:`Settings` and the proxy's counters; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = Settings()
        self._random = random.Random()  # Drawn from by the loop thread only.
        self._connections = 0
        self._bytes_forwarded = 0
        self._open = 0

    def settings(self) -> Settings:
        """Return the current settings."""
        with self._lock:
            return self._settings

    def change(self, **changes: Any) -> None:
        """Replace the named settings (already validated), e.g. ``change(latency_s=0.1)``."""
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)

    # -- the loop thread -----------------------------------------------------------------------

    def jitter(self, jitter_s: float) -> float:
        """Return the extra delay of one chunk: uniform in ``[0, jitter_s]``."""
        return self._random.uniform(0.0, jitter_s) if jitter_s > 0 else 0.0

    def accepted(self) -> bool:
        """Count a new connection; return whether it is to be reset at once."""
        with self._lock:
            self._connections += 1
            return self._settings.reset_new

    def count(self, sent: int) -> None:
        """Count bytes forwarded, in either direction."""
        with self._lock:
            self._bytes_forwarded += sent

    def set_open(self, count: int) -> None:
        """Record how many connections are open now."""
        with self._lock:
            self._open = count

    # -- the counters --------------------------------------------------------------------------

    def connections(self) -> int:
        with self._lock:
            return self._connections

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def bytes_forwarded(self) -> int:
        with self._lock:
            return self._bytes_forwarded

    def reset_counters(self) -> None:
        with self._lock:
            self._connections = 0
            self._bytes_forwarded = 0
