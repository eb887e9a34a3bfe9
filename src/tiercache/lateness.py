"""When an origin fetch is late: the rule, and the origin's pace it is measured against.

The chain rounds reads up to whole blocks. On a slow origin a block can take longer than the
reader's own range would, even longer than the deadline. So a reader waits for a block fetch
only until it is *late*, then asks the origin for its own exact range (docs/reliability.md,
"Slow origins"). :func:`late_after_s` is the rule; :class:`Pace` is what the origin has observed
of its own reads, from which the expected duration of a fetch comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

#: A fetch is never late before this: a healthy but loaded origin pays no extra request.
LATE_FLOOR_S: Final = 1.0
#: A fetch is late at this multiple of its expected duration...
LATE_FACTOR: Final = 3.0
#: ...and at this share of the origin deadline at the latest (the narrowed read keeps the rest).
LATE_SHARE_OF_TIMEOUT: Final = 0.25

#: Weight of a new observation in the moving averages.
EWMA_ALPHA: Final = 0.2
#: Reads at least this long give a throughput sample; shorter ones are mostly latency.
MIN_THROUGHPUT_SAMPLE_BYTES: Final = 64 * 1024


def late_after_s(timeout_s: float, expected_s: float | None) -> float:
    """Return how long a reader waits for a fetch before reading its own range.

    ``min(timeout_s / 4, max(1.0, 3 * expected_s))``; ``timeout_s / 4`` when nothing is
    expected yet (no read observed).

    Args:
        timeout_s: The origin deadline (``TIERCACHE_ORIGIN_TIMEOUT``).
        expected_s: How long the fetch should take, from :meth:`Pace.expected_s`; None if
            unknown.
    """
    cap = timeout_s * LATE_SHARE_OF_TIMEOUT
    if expected_s is None:
        return cap
    return min(cap, max(LATE_FLOOR_S, LATE_FACTOR * expected_s))


class Pace:
    """Moving averages of an origin's first-byte latency and per-stream throughput.

    Fed with every completed origin read (:meth:`observe`); thread-safe. Throughput is kept as
    seconds per byte, so a slow sample weighs as much as the time it cost.

    Args:
        on_first_byte: Called with every first-byte time a client tells (the hedging threshold's
            samples, :mod:`tiercache.hedging`).
    """

    def __init__(self, on_first_byte: Callable[[float], None] | None = None) -> None:
        self._on_first_byte = on_first_byte
        self._lock = threading.Lock()
        self._latency_s: float | None = None
        self._s_per_byte: float | None = None

    def observe(self, nbytes: int, total_s: float, first_byte_s: float | None = None) -> None:
        """Count one completed read of ``nbytes`` that took ``total_s`` seconds.

        Args:
            nbytes: Bytes received.
            total_s: From sending the request to the last byte.
            first_byte_s: From sending the request to the response headers, where the client
                tells (S3); None otherwise: then a short read's whole time counts as latency,
                and a long read's time beyond the average latency as transfer.
        """
        short = nbytes < MIN_THROUGHPUT_SAMPLE_BYTES
        if first_byte_s is not None and self._on_first_byte is not None:
            self._on_first_byte(first_byte_s)
        with self._lock:
            if first_byte_s is None and short:
                first_byte_s = total_s
            if first_byte_s is not None:
                self._latency_s = _ewma(self._latency_s, max(0.0, first_byte_s))
            if short:
                return
            if first_byte_s is None:
                first_byte_s = self._latency_s or 0.0
            transfer_s = total_s - first_byte_s
            if transfer_s > 0:
                self._s_per_byte = _ewma(self._s_per_byte, transfer_s / nbytes)

    def expected_s(self, nbytes: int) -> float | None:
        """Return how long a read of ``nbytes`` should take; None while that is unknown."""
        with self._lock:
            latency_s, s_per_byte = self._latency_s, self._s_per_byte
        if s_per_byte is None:
            # Only short reads seen (or none): fine for another short read, unknown otherwise.
            return latency_s if nbytes < MIN_THROUGHPUT_SAMPLE_BYTES else None
        return (latency_s or 0.0) + nbytes * s_per_byte


def _ewma(average: float | None, sample: float) -> float:
    return sample if average is None else average + EWMA_ALPHA * (sample - average)
