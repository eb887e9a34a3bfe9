"""The gateway's own counters: requests by operation and status, latency, bytes sent.

The process that runs a gateway shows them in its stats file (``"gateways"``) and in Prometheus
(``tiercache_gateway_*``), next to the chain's own stats.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from tiercache.context import DEMAND
from tiercache.stats import Histogram


class GatewayCounters:
    """Requests by (operation, status), bytes of response bodies, and a latency histogram.

    Every instance not yet closed is in :data:`LIVE_GATEWAYS`, where the stats file and the
    Prometheus exporter find it.
    """

    def __init__(self) -> None:
        LIVE_GATEWAYS.add(self)
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._bytes_out = 0
        self.latency = Histogram()

    def observe(self, operation: str, status: int, bytes_out: int, seconds: float) -> None:
        """Count one request answered with ``status`` after ``seconds``."""
        with self._lock:
            key = (operation, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._bytes_out += bytes_out
        self.latency.observe(seconds, ctx=DEMAND)

    def snapshot(self) -> dict[str, Any]:
        """``{"requests": {operation: {status: n}}, "bytes_out": n, "latency": histogram}``."""
        with self._lock:
            requests: dict[str, dict[str, int]] = {}
            for (operation, status), count in sorted(self._requests.items()):
                requests.setdefault(operation, {})[str(status)] = count
            bytes_out = self._bytes_out
        return {"requests": requests, "bytes_out": bytes_out, "latency": self.latency.snapshot()}


#: The gateways of this process not closed yet (for the stats file and the metrics exporter).
LIVE_GATEWAYS: weakref.WeakSet[GatewayCounters] = weakref.WeakSet()
