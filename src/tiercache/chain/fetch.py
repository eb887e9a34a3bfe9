"""Origin fetches of the chain: one request per run of missing blocks, single-flight per block.

Missing blocks are grouped into contiguous runs, each fetched with one origin request (several
runs concurrently), and concurrent readers of the same missing block wait on one fetch. A
reader whose range is smaller than the blocks it misses does not fetch them in its own thread:
the fetch runs on the fetch pool while the reader waits until it is late
(:mod:`tiercache.lateness`); then the reader asks the origin for its own range, in its own
thread and under the deadline its read started with. The fetch goes on and, if it succeeds,
stores its blocks and resolves the single-flight as always. A reader that wants every byte of
what is fetched fetches in its own thread.

A cold read of an unknown object (:meth:`Fetcher.discover`) learns the object's info and its
first blocks from one ranged GET.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from tiercache.blocks import contiguous_runs, normalize_range
from tiercache.context import ReadContext
from tiercache.errors import ObjectChangedError, OriginError
from tiercache.flight import SingleFlight
from tiercache.lateness import late_after_s
from tiercache.protocol import BlockKey, ObjectInfo, Origin
from tiercache.stats import FlightCounters

from .info import Discovered, InfoStore
from .slots import TierSlot

_T = TypeVar("_T")
#: Keep a block fetched from the origin: ``store(key, block, info, ctx)``.
Store = Callable[[BlockKey, bytes, ObjectInfo, ReadContext], None]


def first_failure(done: Iterable[Future[Any]]) -> BaseException | None:
    """Return the error of the first failed (or dropped) future among ``done``, if any."""
    for future in done:
        if future.cancelled():
            return OriginError("the filesystem was closed before the origin fetch started")
        error = future.exception()
        if error is not None:
            return error
    return None


def join(blocks: Sequence[bytes], head: int, tail: int) -> bytes:
    """Join consecutive blocks, from ``head`` in the first to ``tail`` in the last.

    Views, not slices: every byte is copied once.
    """
    parts = [memoryview(block) for block in blocks]
    parts[-1] = parts[-1][:tail]
    parts[0] = parts[0][head:]
    return b"".join(parts)


class Fetcher:
    """Fetches missing blocks from the origin for the chain, and stores them through it.

    Args:
        origin: The origin.
        block_size: Block size in bytes.
        store: Keeps each fetched block (the RAM tier now, slower tiers behind the read).
        front: The RAM tier's slot, looked at again before fetching (None: no RAM tier).
        infos: The chain's object info (a cold read's leader resolves its requests).
        flight: Where readers that waited on another reader's fetch are counted.
        run_workers: Threads fetching extra runs of one read concurrently.
        fetch_workers: Threads fetching blocks a reader may stop waiting for.
    """

    def __init__(
        self,
        origin: Origin,
        *,
        block_size: int,
        store: Store,
        front: TierSlot | None,
        infos: InfoStore,
        flight: FlightCounters,
        run_workers: int,
        fetch_workers: int,
    ) -> None:
        self.origin = origin
        self.block_size = block_size
        self._store = store
        self._front = front
        self._infos = infos
        self._flight = flight
        self.blocks: SingleFlight[BlockKey, bytes] = SingleFlight()
        self._runs = ThreadPoolExecutor(max_workers=run_workers, thread_name_prefix="tiercache-run")
        # Apart from the run pool: fetches left behind on a slow origin must not hold the
        # threads that whole-range readers' extra runs wait on.
        self._fetches = ThreadPoolExecutor(
            max_workers=fetch_workers, thread_name_prefix="tiercache-fetch"
        )

    def close(self) -> None:
        """Drop fetches not started; those running finish in the background."""
        self._runs.shutdown(wait=False, cancel_futures=True)
        self._fetches.shutdown(wait=False, cancel_futures=True)

    # -- blocks of a known object --------------------------------------------------------------

    def fetch(
        self,
        info: ObjectInfo,
        missing: list[BlockKey],
        start: int,
        end: int,
        *,
        ctx: ReadContext,
        since: int,
    ) -> dict[int, bytes] | bytes:
        """Fetch missing blocks: one origin request per contiguous run, single-flight per block.

        Args:
            info: The object version.
            missing: The keys of the blocks to fetch, in order.
            start, end: The reader's range.
            ctx: The read's purpose (each run is counted in its own block class).
            since: ``self.blocks.resolutions`` before the reader looked the blocks up.

        Returns:
            The blocks by index; or, when the fetch was late and the reader read its own range
            instead (:meth:`narrowed_range` of ``[start, end)``), those bytes.
        """
        bs = self.block_size
        span = (missing[0].block_index * bs, min((missing[-1].block_index + 1) * bs, info.size))
        narrowed = self.narrowed_range(info, missing, start, end)
        if narrowed == span:  # the reader wants every byte fetched: nothing to narrow
            return self._fetch_here(info, missing, ctx, since)
        deadline = time.monotonic() + self.origin.timeout_s
        mine, theirs = self.blocks.claim(missing)
        result: dict[int, bytes] = {}
        runs: list[Future[dict[int, bytes]]] = []
        to_fetch = self._still_missing(mine, result, ctx, since)
        if to_fetch:
            template = to_fetch[0]
            for lo, hi in contiguous_runs(key.block_index for key in to_fetch):
                runs.append(self._start_run(info, template, lo, hi, ctx=ctx, deadline=deadline))
        # Counted as the run would be: metadata when all of its blocks are.
        ctx = ctx.as_kind("metadata" if span[0] // bs >= info.metadata_from // bs else "data")
        if theirs:
            self._flight.add("block_waits", len(theirs), ctx=ctx)
        pending: list[Future[Any]] = [*runs, *theirs.values()]
        if pending:
            data = self._await_or_narrow(
                pending,
                span[1] - span[0],
                deadline,
                lambda: self.origin.read(info, *narrowed, deadline=deadline, ctx=ctx),
                ctx,
            )
            if data is not None:
                return data
        for run in runs:
            result.update(run.result())
        for key, future in theirs.items():
            result[key.block_index] = future.result()
        return result

    def narrowed_range(
        self, info: ObjectInfo, missing: Sequence[BlockKey], start: int, end: int
    ) -> tuple[int, int]:
        """Return the part of the reader's ``[start, end)`` inside the missing blocks' span."""
        bs = self.block_size
        return (
            max(start, missing[0].block_index * bs),
            min(end, (missing[-1].block_index + 1) * bs, info.size),
        )

    def _fetch_here(
        self, info: ObjectInfo, missing: list[BlockKey], ctx: ReadContext, since: int
    ) -> dict[int, bytes]:
        """Fetch missing blocks in this thread (the first run) and the run pool (the others)."""
        mine, theirs = self.blocks.claim(missing)
        result: dict[int, bytes] = {}
        if mine:
            runs_of = self._still_missing(mine, result, ctx, since)
            try:
                runs = contiguous_runs(key.block_index for key in runs_of)
                if runs_of:
                    template = runs_of[0]
                    futures = [
                        self._runs.submit(self._fetch_run, info, template, lo, hi, ctx=ctx)
                        for lo, hi in runs[1:]
                    ]
                    result.update(self._fetch_run(info, template, *runs[0], ctx=ctx))
                    for future in futures:
                        result.update(future.result())
            except BaseException as exc:
                for key in runs_of:
                    self.blocks.fail(key, exc)
                raise
        if theirs:
            self._flight.add("block_waits", len(theirs), ctx=ctx)
        for key, pending in theirs.items():
            result[key.block_index] = pending.result()
        return result

    def _still_missing(
        self, mine: list[BlockKey], result: dict[int, bytes], ctx: ReadContext, since: int
    ) -> list[BlockKey]:
        """Return the claimed keys still to fetch; hand out those stored meanwhile.

        Another reader may have fetched a block between our lookup and our claim: the RAM tier
        is asked again (and counted), but only if a fetch finished since (``since``).
        """
        front = self._front
        if front is None or self.blocks.resolutions == since:
            return mine
        missing: list[BlockKey] = []
        for key in mine:
            block = front.tier.get(key)
            if block is None:
                front.counters.add("misses", ctx=ctx)
                missing.append(key)
            else:
                front.counters.hit(len(block), ctx=ctx)
                result[key.block_index] = block
                self.blocks.resolve(key, block)
        return missing

    def _fetch_run(
        self,
        info: ObjectInfo,
        template: BlockKey,
        lo: int,
        hi: int,
        *,
        ctx: ReadContext,
        deadline: float | None = None,
    ) -> dict[int, bytes]:
        """Fetch blocks ``[lo, hi)`` with one origin request; store and hand out each block."""
        bs = self.block_size
        # A run counts as metadata when all of its blocks are; a mixed run counts as data.
        ctx = ctx.as_kind("metadata" if lo >= info.metadata_from // bs else "data")
        end = min(hi * bs, info.size)
        data = self.origin.read(info, lo * bs, end, deadline=deadline, ctx=ctx)
        blocks: dict[int, bytes] = {}
        for index in range(lo, hi):
            block = data[(index - lo) * bs : (index - lo + 1) * bs] if hi - lo > 1 else data
            key = template._replace(block_index=index)
            self._store(key, block, info, ctx)
            blocks[index] = block
            self.blocks.resolve(key, block)
        return blocks

    def _start_run(
        self,
        info: ObjectInfo,
        template: BlockKey,
        lo: int,
        hi: int,
        *,
        ctx: ReadContext,
        deadline: float,
    ) -> Future[dict[int, bytes]]:
        """Fetch blocks ``[lo, hi)`` on the fetch pool; the run resolves or fails its keys."""
        keys = [template._replace(block_index=index) for index in range(lo, hi)]

        def give_up(exc: BaseException) -> None:
            for key in keys:
                self.blocks.fail(key, exc)

        def run() -> dict[int, bytes]:
            try:
                return self._fetch_run(info, template, lo, hi, ctx=ctx, deadline=deadline)
            except BaseException as exc:
                give_up(exc)
                raise

        return self._in_background(run, give_up)

    def _in_background(
        self, fn: Callable[[], _T], give_up: Callable[[BaseException], None]
    ) -> Future[_T]:
        """Run ``fn`` on the fetch pool; ``give_up`` if the pool drops it (closed meanwhile)."""
        try:
            future = self._fetches.submit(fn)
        except RuntimeError:  # the chain is closed: fetch in this thread, as before
            future = Future()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            return future

        def dropped(done: Future[_T]) -> None:
            if done.cancelled():
                give_up(OriginError("the filesystem was closed before the origin fetch started"))

        future.add_done_callback(dropped)
        return future

    def _await_or_narrow(
        self,
        pending: Sequence[Future[Any]],
        nbytes: int,
        deadline: float,
        narrow: Callable[[], bytes],
        ctx: ReadContext,
    ) -> bytes | None:
        """Wait for fetches of ``nbytes`` until they are late, then read the reader's own range.

        Returns the bytes ``narrow`` read, or None when every fetch arrived (their results are
        then ready). If the narrowed read fails, waits for the fetches until ``deadline``.

        Raises:
            Exception: A fetch failed (its error); or the narrowed read failed and the fetches
                did not arrive by the deadline (the narrowed read's error).
        """
        late_s = late_after_s(self.origin.timeout_s, self.origin.expected_s(nbytes))
        done, waiting = wait(pending, timeout=late_s, return_when=FIRST_EXCEPTION)
        failure = first_failure(done)
        if failure is not None:
            raise failure
        if not waiting:
            return None
        self.origin.counters.add("narrowed_requests", ctx=ctx)
        try:
            data = narrow()
        except Exception as exc:
            remaining_s = max(0.0, deadline - time.monotonic())
            done, waiting = wait(pending, timeout=remaining_s, return_when=FIRST_EXCEPTION)
            failure = first_failure(done)
            if failure is None and not waiting:
                return None  # the fetches arrived after all
            if failure is None or isinstance(exc, ObjectChangedError):
                raise  # nothing arrived in time, or the object changed: the reader's own error
            raise failure from exc
        self.origin.counters.add("narrowed", ctx=ctx)
        return data

    # -- cold reads of unknown objects ---------------------------------------------------------

    def discover(self, path: str, start: int, end: int, ctx: ReadContext) -> bytes | ObjectInfo:
        """Cold read of an unknown object: one ranged GET gives the bytes and the info.

        Returns the bytes when the leader's read (or ours, or our narrowed read) covers the
        range, else the info. The request is counted as data: the class is not known yet.
        """
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        lo, hi = first * bs, (last + 1) * bs
        whole = (start, end) == (lo, hi)  # the reader wants every byte fetched
        deadline = time.monotonic() + self.origin.timeout_s
        ctx = ctx.as_kind("data")
        requests = self._infos.requests

        def narrow() -> bytes:
            return self.origin.read_discover(path, start, end, deadline=deadline, ctx=ctx)[0]

        _mine, theirs = requests.claim([path])
        if theirs:
            self._flight.add("info_waits", ctx=ctx.as_kind("metadata"))
            pending = theirs[path]
            if not whole:
                data = self._await_or_narrow([pending], hi - lo, deadline, narrow, ctx)
                if data is not None:
                    return data
            found = pending.result()
            if isinstance(found, ObjectInfo):
                return found
            return _serve(found, start, end)
        epoch = self._infos.table.epoch
        if whole:
            discovered = self._discover_blocks(
                path, first, last, epoch=epoch, deadline=None, ctx=ctx
            )
        else:
            future = self._in_background(
                lambda: self._discover_blocks(
                    path, first, last, epoch=epoch, deadline=deadline, ctx=ctx
                ),
                lambda exc: requests.fail(path, exc),
            )
            data = self._await_or_narrow([future], hi - lo, deadline, narrow, ctx)
            if data is not None:
                return data
            discovered = future.result()
        return _serve(discovered, start, end)

    def _discover_blocks(
        self,
        path: str,
        first: int,
        last: int,
        *,
        epoch: int,
        deadline: float | None,
        ctx: ReadContext,
    ) -> Discovered:
        """The leader of a cold read: read blocks ``[first, last]``, keep the info and blocks."""
        bs = self.block_size
        requests = self._infos.requests
        try:
            data, info = self.origin.read_discover(
                path, first * bs, (last + 1) * bs, deadline=deadline, ctx=ctx
            )
            self._infos.learnt(info, epoch, ctx)
            for offset in range(0, len(data), bs):
                index = first + offset // bs
                key = BlockKey(self.origin.target, path, info.version, bs, index)
                self._store(key, data[offset : offset + bs], info, ctx)
        except BaseException as exc:
            requests.fail(path, exc)
            raise
        found = Discovered(info, first * bs, data)
        requests.resolve(path, found)
        return found


def _serve(found: Discovered, start: int, end: int) -> bytes | ObjectInfo:
    lo, hi = normalize_range(start, end, found.info.size)
    if found.offset <= lo and hi <= found.offset + len(found.data):
        return found.data[lo - found.offset : hi - found.offset]
    return found.info


def slice_blocks(blocks: Mapping[int, bytes], block_size: int, start: int, end: int) -> bytes:
    """Return ``[start, end)`` of the object out of whole blocks (by index)."""
    if start >= end:
        return b""
    first, last = start // block_size, (end - 1) // block_size
    parts = [blocks[index] for index in range(first, last + 1)]
    return join(parts, start - first * block_size, end - last * block_size)
