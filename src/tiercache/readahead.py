"""Parallel readahead for sequential scans of open files (issue 17).

One object-store stream runs at tens of MiB/s; a scan is fast only with many requests in
flight. A :class:`~tiercache.files.TieredFile` tells its :class:`Scan` of every range it reads.
After :data:`SEQUENTIAL_AFTER` reads in a row that each start where the previous one ended, the
scan fetches the next blocks ahead of the reader, concurrently, through the chain's own pinned
read (``read_pinned`` with purpose ``prefetch``): single-flight dedups them with the reader's
own fetches, they land in the tiers as any block does, and they are counted as prefetch.

Bounds: the chain's :class:`Readahead` runs at most ``workers`` fetches at once (half the origin
concurrency: demand reads keep the other half) and holds at most ``budget_bytes`` in flight; a
scan's window (bytes ahead of the reader) starts at :data:`FIRST_WINDOW_BLOCKS` blocks (or four
reads of the reader's size), doubles each time the reader reaches blocks read ahead, and is capped
by the budget. Readahead stops at the end of the object, and a read anywhere else (a seek) stops
it: fetches not started are cancelled. ``read_range`` and ``cat_file`` never read ahead (they ask
for what they want).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .context import Purpose
from .protocol import ObjectInfo

logger = logging.getLogger(__name__)

#: Reads in a row, each starting where the previous ended, before a scan reads ahead.
SEQUENTIAL_AFTER = 2
#: A scan's first window, in blocks.
FIRST_WINDOW_BLOCKS = 4
#: The most bytes one readahead request asks for (several blocks: one origin request).
REQUEST_BYTES = 8 << 20
#: The counters of ``stats()["readahead"]``.
COUNTERS = ("blocks", "requests", "hits", "wasted", "cancelled", "failed")

#: ``read_pinned(info, start, end, purpose)`` of the chain.
ReadPinned = Callable[[ObjectInfo, int, int, Purpose], bytes]


class Readahead:
    """The chain's readahead: its workers, its byte budget, its counters.

    Args:
        read_pinned: The chain's pinned read.
        block_size: The chain's block size.
        budget_bytes: The most bytes read ahead in flight at once, and the largest window;
            ``0`` (or less than a block): no readahead.
        workers: Readahead fetches at once (at most half the origin's concurrency); 0: off.
    """

    def __init__(
        self, read_pinned: ReadPinned, *, block_size: int, budget_bytes: int, workers: int
    ) -> None:
        self._read_pinned = read_pinned
        self.block_size = block_size
        # No readahead below a block, or when it would take the origin's only slot.
        self.budget_bytes = budget_bytes if budget_bytes >= block_size and workers >= 1 else 0
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0 and not self._closed

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """The counters, the budget and the bytes in flight (``stats()["readahead"]``)."""
        with self._lock:
            return {
                **self._counts,
                "in_flight_bytes": self._in_flight,
                "budget_bytes": self.budget_bytes,
            }

    def scan(self, info: ObjectInfo) -> Scan | None:
        """A scan of one open file of ``info``, or None when readahead is off."""
        return Scan(self, info) if self.enabled else None

    def submit(self, info: ObjectInfo, lo: int, hi: int) -> Future[None] | None:
        """Fetch bytes ``[lo, hi)`` ahead, within the budget; None: no room (or closed)."""
        nbytes = hi - lo
        with self._lock:
            if self._closed or self._in_flight + nbytes > self.budget_bytes:
                return None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tiercache-ra")
            self._in_flight += nbytes
            self._counts["requests"] += 1
            self._counts["blocks"] += -(-nbytes // self.block_size)
        try:
            future = self._pool.submit(self._fetch, info, lo, hi)
        except RuntimeError:  # closed meanwhile
            self._release(nbytes)
            return None
        future.add_done_callback(lambda done: self._release(nbytes) if done.cancelled() else None)
        return future

    def _fetch(self, info: ObjectInfo, lo: int, hi: int) -> None:
        try:
            self._read_pinned(info, lo, hi, "prefetch")
        except Exception as exc:  # the reader meets (and reports) the error itself, if it reads
            self.count("failed")
            logger.debug("readahead of %r [%d, %d) failed: %s", info.path, lo, hi, exc)
        finally:
            self._release(hi - lo)

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self._in_flight -= nbytes

    def close(self) -> None:
        """Drop fetches not started; those running finish in the background."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class Scan:
    """What one open file reads: finds a sequential scan and reads ahead of it."""

    def __init__(self, readahead: Readahead, info: ObjectInfo) -> None:
        self._ra = readahead
        self._info = info
        self._end = -1  # where the last read ended
        self._streak = 0
        self._window = FIRST_WINDOW_BLOCKS * readahead.block_size
        self._next = 0  # the first block index not yet read ahead
        self._ahead: dict[int, Future[None]] = {}  # block index -> its fetch
        self._lock = threading.Lock()

    def saw(self, start: int, end: int) -> None:
        """The reader read ``[start, end)``: count what it used, stop or read further ahead."""
        ra = self._ra
        bs = ra.block_size
        size = self._info.size
        end = min(end, size)
        with self._lock:
            self._streak = self._streak + 1 if start == self._end or self._end < 0 else 0
            self._end = end
            if self._streak == 0:  # a seek elsewhere: stop reading ahead
                self._stop()
                return
            used = [i for i in self._ahead if start // bs <= i <= (end - 1) // bs]
            for index in used:
                del self._ahead[index]
            if used:
                ra.count("hits", len(used))
                self._window = min(self._window * 2, ra.budget_bytes)
            if self._streak < SEQUENTIAL_AFTER or end >= size:
                return
            # Start wide enough for a few reads of this size in flight, then grow.
            self._window = max(self._window, min(4 * (end - start), ra.budget_bytes))
            self._next = max(self._next, -(-end // bs))
            self._read_ahead(end)

    def _read_ahead(self, end: int) -> None:
        ra = self._ra
        bs = ra.block_size
        size = self._info.size
        limit = min(size, end + self._window)
        per_request = max(1, min(REQUEST_BYTES, self._window // 4) // bs)
        while self._next * bs < limit:
            lo = self._next
            hi = min(lo + per_request, -(-limit // bs))
            future = ra.submit(self._info, lo * bs, min(hi * bs, size))
            if future is None:  # the budget is spent: the next read tries again
                return
            for index in range(lo, hi):
                self._ahead[index] = future
            self._next = hi

    def _stop(self) -> None:
        """Cancel the fetches not started; count the others as wasted."""
        ra = self._ra
        futures = set(self._ahead.values())
        cancelled = {future for future in futures if future.cancel()}
        blocks_cancelled = sum(1 for f in self._ahead.values() if f in cancelled)
        if blocks_cancelled:
            ra.count("cancelled", blocks_cancelled)
        if len(self._ahead) > blocks_cancelled:
            ra.count("wasted", len(self._ahead) - blocks_cancelled)
        self._ahead.clear()
        self._next = 0
        self._window = FIRST_WINDOW_BLOCKS * ra.block_size

    def close(self) -> None:
        """The file closed: stop reading ahead."""
        with self._lock:
            self._stop()
