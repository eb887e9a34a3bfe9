"""The async API: 256 concurrent 64 KiB reads (``asyncio.gather`` of ``_cat_file``), warm,
against s3fs's own async path and against tiercache's sync path.

One 16 MiB object. **tiercache async, warm**: an ``AsyncTieredFileSystem`` over the emulated
store whose RAM tier holds the object (read once, untimed); the 256 reads are answered on the
event loop. **s3fs async**: ``s3fs.S3FileSystem(asynchronous=True)`` gathering the same reads,
through the emulated store (what an async user has without a cache: every read is a request)
and on loopback (the S3 server with nothing added: the fastest any request can be here).
**tiercache sync**: the same ranges through the warm sync filesystem, ``cat_ranges`` (its pool
of 8 threads) and one ``read_range`` after another. The figure is the wall time of the 256
reads, median over rounds; every read's bytes are checked.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import s3fs

from harness.context import BUCKET, STORE, Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, body, target
from tiercache import AsyncTieredFileSystem, TieredFileSystem
from tiercache.parsing import KIB, MIB

READS = 256
WAYS = (
    "tiercache async, warm",
    "tiercache sync cat_ranges, warm",
    "tiercache sync read_range loop, warm",
    "s3fs async, emulated store",
    "s3fs async, loopback",
)
#: Seconds per 256 reads, by way, one figure per round.
AsyncData = dict[str, list[float]]
AsyncResult = Result[AsyncData, str]


@dataclass(frozen=True)
class Sizes:
    rounds: int


def _gathered(read: Callable[[int], Awaitable[bytes]], starts: list[int], data: bytes) -> float:
    async def all_reads() -> float:
        t0 = time.perf_counter()
        got = await asyncio.gather(*(read(s) for s in starts))
        elapsed = time.perf_counter() - t0
        assert got == [data[s : s + 64 * KIB] for s in starts]
        return elapsed

    return asyncio.run(all_reads())


def _s3fs_async(options: dict[str, Any], path: str, starts: list[int], data: bytes) -> float:
    async def all_reads() -> float:
        fs = s3fs.S3FileSystem(**{**options, "asynchronous": True, "skip_instance_cache": True})
        session = await fs.set_session()
        try:
            await fs._cat_file(path, start=0, end=1)  # the client and its connection, untimed
            t0 = time.perf_counter()
            got = await asyncio.gather(
                *(fs._cat_file(path, start=s, end=s + 64 * KIB) for s in starts)
            )
            elapsed = time.perf_counter() - t0
            assert got == [data[s : s + 64 * KIB] for s in starts]
            return elapsed
        finally:
            await session.close()

    return asyncio.run(all_reads())


def run(ctx: Context, sz: Sizes) -> AsyncResult:
    data = os.urandom(16 * MIB)
    key = "async/object.bin"
    ctx.server.put_object(BUCKET, key, data)
    path = f"{BUCKET}/{key}"
    starts = [(i * 61_417) % (len(data) - 64 * KIB) for i in range(READS)]
    ends: list[int | None] = [s + 64 * KIB for s in starts]
    options = {**ctx.options(STORE), "skip_instance_cache": True}
    times: AsyncData = {way: [] for way in WAYS}
    aio = TieredFileSystem(
        target_protocol="s3",
        target_options=options,
        settings=ctx.settings,
        asynchronous=True,
        skip_instance_cache=True,
    )
    assert isinstance(aio, AsyncTieredFileSystem)
    sync = TieredFileSystem(
        target_protocol="s3",
        target_options=options,
        settings=ctx.settings,
        skip_instance_cache=True,
    )
    asyncio.run(aio._cat_file(path))  # warm: the whole object in RAM
    assert sync.cat_file(path) == data
    try:
        for _ in range(sz.rounds):
            times["tiercache async, warm"].append(
                _gathered(lambda s: aio._cat_file(path, s, s + 64 * KIB), starts, data)
            )
            t0 = time.perf_counter()
            got = sync.cat_ranges([path] * READS, list[int | None](starts), ends)
            times["tiercache sync cat_ranges, warm"].append(time.perf_counter() - t0)
            assert got == [data[s : s + 64 * KIB] for s in starts]
            t0 = time.perf_counter()
            for s in starts:
                sync.read_range(path, s, s + 64 * KIB)
            times["tiercache sync read_range loop, warm"].append(time.perf_counter() - t0)
            times["s3fs async, emulated store"].append(_s3fs_async(options, path, starts, data))
            loopback = {**ctx.options("loopback"), "skip_instance_cache": True}
            times["s3fs async, loopback"].append(_s3fs_async(loopback, path, starts, data))
    finally:
        aio.close()
        sync.close()
    return _result(times)


def _result(times: AsyncData) -> AsyncResult:
    m = {way: statistics.median(seconds) for way, seconds in times.items()}
    lines = [
        f"| {READS} concurrent 64 KiB reads | wall time (median) | per read |",
        "|---|---:|---:|",
        *(f"| {way} | {fmt_s(m[way])} | {fmt_s(m[way] / READS)} |" for way in WAYS),
    ]
    ours = m["tiercache async, warm"]
    targets = [
        target(
            key=f"async-vs-{name}",
            scenario="async_reads",
            text=f"{READS} concurrent 64 KiB async reads, tiercache warm, against {way}",
            measured=f"{fmt_s(ours)} vs {fmt_s(m[way])} ({_faster(ours, m[way])})",
            ratio=ours / m[way],
            met=True,
            reference=way,
            informative=True,
        )
        for name, way in (
            ("s3fs-store", "s3fs async, emulated store"),
            ("s3fs-loopback", "s3fs async, loopback"),
            ("sync-ranges", "tiercache sync cat_ranges, warm"),
            ("sync-loop", "tiercache sync read_range loop, warm"),
        )
    ]
    return {"data": times, "tables": "\n".join(lines), "targets": targets, "notes": []}


def _faster(ours: float, theirs: float) -> str:
    if theirs >= ours:
        return f"{theirs / ours:.1f}x faster"
    return f"{ours / theirs:.1f}x slower"


def report(result: AsyncResult) -> Report:
    return Report({"async_reads": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO: Scenario[Sizes, AsyncResult] = Scenario(
    name="async_reads",
    order=57,
    sizes={"smoke": Sizes(1), "quick": Sizes(3), "full": Sizes(9)},
    run=run,
    sections=(Section("async_reads", "The async API (256 concurrent 64 KiB reads)"),),
    report=report,
)
