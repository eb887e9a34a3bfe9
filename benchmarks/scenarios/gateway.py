"""The S3 gateway: pyarrow's native S3 client reading through it, against reading the emulated
store directly.

An embedded gateway (a child process, as ``tiercache.gateway.start`` runs it) over the emulated
store's proxy. Warm: 64 KiB ranges of one object the gateway holds in RAM, read with
``read_at`` on an open file (one range GET each), the median per request; and 1 MiB GETs from 8
threads at once, the throughput. Cold: the same 64 KiB read through a fresh gateway against
pyarrow reading the store directly.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import gateway_sql
from canned_s3 import canned_server
from harness.context import BUCKET, STORE, Context
from harness.fmt import fmt_s
from harness.scenario import Report, Result, Scenario, Section, Target, body, target
from tiercache.parsing import KIB, MIB


class GatewayData(TypedDict):
    sql_s: dict[str, dict[str, list[float]]]  # query -> way -> seconds per round
    warm_64k_s: list[float]
    minimal_64k_s: list[float]  # the same through http.client: the server's share
    direct_64k_s: list[float]
    cold_64k_s: list[float]
    cold_direct_64k_s: list[float]
    concurrent_bytes_per_s: list[float]
    # pyarrow's client against a server that does nothing (benchmarks/canned_s3.py): the floor
    floor_64k_s: NotRequired[list[float]]
    floor_bytes_per_s: NotRequired[list[float]]


GatewayResult = Result[GatewayData, str]


@dataclass(frozen=True)
class Sizes:
    rounds: int
    ops: int  # warm 64 KiB reads per round
    concurrent_mib: int  # MiB read by the 8 threads per round
    sql: gateway_sql.Shape  # the DataFusion table and rounds


def _pyarrow(endpoint: str, key: str, secret: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        access_key=key,
        secret_key=secret,
        region="us-east-1",
        endpoint_override=endpoint,
        scheme="http",
    )


def _read_at(fs: Any, path: str, offset: int, size: int) -> bytes:
    f = fs.open_input_file(path)
    try:
        return bytes(f.read_at(size, offset))
    finally:
        f.close()


def _gets(fs: Any, path: str, offsets: list[int], data: bytes | None) -> float:
    """The median of 64 KiB ``read_at`` calls on one open file: one range GET each."""
    f = fs.open_input_file(path)
    try:
        timings = []
        for offset in offsets:
            t0 = time.perf_counter()
            got = f.read_at(64 * KIB, offset)
            timings.append(time.perf_counter() - t0)
            assert data is None or bytes(got) == data[offset : offset + 64 * KIB]
    finally:
        f.close()
    return statistics.median(timings)


def _minimal_gets(gateway: Any, path: str, offsets: list[int], data: bytes) -> float:
    """The median of the same 64 KiB GETs through ``http.client`` on one keep-alive connection
    (signed as a client would: the gateway's embedded credentials are accepted unsigned too, but
    the figure should carry no shortcut a real client lacks)."""
    import http.client

    from tiercache.gateway.sigv4 import Credentials, sign_request

    keys = gateway.s3fs_options()
    credentials = Credentials(keys["key"], keys["secret"])
    url = f"{gateway.endpoint_url}/{path}"
    connection = http.client.HTTPConnection(gateway.endpoint_url.removeprefix("http://"))
    try:
        timings = []
        for offset in offsets:
            headers = sign_request("GET", url, credentials)
            headers["Range"] = f"bytes={offset}-{offset + 64 * KIB - 1}"
            t0 = time.perf_counter()
            connection.request("GET", f"/{path}", headers=headers)
            got = connection.getresponse().read()
            timings.append(time.perf_counter() - t0)
            assert got == data[offset : offset + 64 * KIB]
    finally:
        connection.close()
    return statistics.median(timings)


def _concurrent(fs: Any, path: str, reads: int, data: bytes | None) -> float:
    """Bytes per second of ``reads`` 1 MiB GETs from 8 clients at once, each its own open file
    (one HEAD when it opens, then range GETs only)."""

    def client(n: int) -> int:
        f = fs.open_input_file(path)
        try:
            got = 0
            for i in range(n, reads, 8):
                offset = (i % 16) * MIB
                chunk = f.read_at(MIB, offset)
                if data is not None and i < 8:  # each client checks its first read
                    assert bytes(chunk) == data[offset : offset + MIB]
                got += len(chunk)
            return got
        finally:
            f.close()

    with ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter()
        total = sum(pool.map(client, range(8)))
        elapsed = time.perf_counter() - t0
    assert total == reads * MIB
    return total / elapsed


def _floor(sz: Sizes, offsets: list[int]) -> tuple[list[float], list[float]]:
    """The 64 KiB median and the 8 x 1 MiB throughput of pyarrow's client against a server
    that does nothing: what this client costs on this machine."""
    latency, throughput = [], []
    with canned_server(16 * MIB) as url:
        client = _pyarrow(url, "canned", "canned")
        for _ in range(sz.rounds):
            latency.append(_gets(client, "canned/object.bin", offsets, None))
            throughput.append(_concurrent(client, "canned/object.bin", sz.concurrent_mib, None))
    return latency, throughput


def run(ctx: Context, sz: Sizes) -> GatewayResult:
    from tiercache import TieredFileSystem
    from tiercache.gateway import start

    data = os.urandom(16 * MIB)
    key = "gateway/object.bin"
    ctx.server.put_object(BUCKET, key, data)
    path = f"{BUCKET}/{key}"
    options = ctx.options(STORE)
    direct = ctx.pyarrow_fs(STORE)
    offsets = [(i * 7_919 * KIB) % (len(data) - 64 * KIB) for i in range(sz.ops)]
    result: GatewayData = {
        "sql_s": gateway_sql.measure(ctx, sz.sql),
        "warm_64k_s": [],
        "minimal_64k_s": [],
        "direct_64k_s": [],
        "cold_64k_s": [],
        "cold_direct_64k_s": [],
        "concurrent_bytes_per_s": [],
    }
    for _ in range(sz.rounds):
        fs = TieredFileSystem(
            target_protocol="s3",
            target_options={**options, "skip_instance_cache": True},
            settings=ctx.settings,
            skip_instance_cache=True,
        )
        with start(fs) as gateway:
            keys = gateway.s3fs_options()
            client = _pyarrow(gateway.endpoint_url, keys["key"], keys["secret"])
            t0 = time.perf_counter()
            got = _read_at(client, path, offsets[0], 64 * KIB)
            result["cold_64k_s"].append(time.perf_counter() - t0)
            assert got == data[offsets[0] : offsets[0] + 64 * KIB]
            t0 = time.perf_counter()
            _read_at(direct, path, offsets[0], 64 * KIB)
            result["cold_direct_64k_s"].append(time.perf_counter() - t0)
            _read_at(client, path, 0, len(data))  # warm: every block in the gateway's RAM
            result["warm_64k_s"].append(_gets(client, path, offsets, data))
            result["minimal_64k_s"].append(_minimal_gets(gateway, path, offsets, data))
            result["direct_64k_s"].append(
                _gets(direct, path, offsets[: max(5, len(offsets) // 10)], data)
            )
            result["concurrent_bytes_per_s"].append(
                _concurrent(client, path, sz.concurrent_mib, data)
            )
        fs.close()
    result["floor_64k_s"], result["floor_bytes_per_s"] = _floor(sz, offsets)
    warm = statistics.median(result["warm_64k_s"])
    minimal = statistics.median(result["minimal_64k_s"])
    direct_warm = statistics.median(result["direct_64k_s"])
    cold = statistics.median(result["cold_64k_s"])
    cold_direct = statistics.median(result["cold_direct_64k_s"])
    throughput = statistics.median(result["concurrent_bytes_per_s"])
    rows = [
        "| read (pyarrow's S3 client) | median |",
        "|---|---:|",
        f"| warm 64 KiB through the gateway | {fmt_s(warm)} |",
        f"| the same through `http.client` (the server's share) | {fmt_s(minimal)} |",
        f"| 64 KiB from the emulated store directly | {fmt_s(direct_warm)} |",
        f"| cold 64 KiB through a fresh gateway | {fmt_s(cold)} |",
        f"| cold 64 KiB from the store directly | {fmt_s(cold_direct)} |",
        f"| 1 MiB GETs, 8 clients, through the gateway (warm) | {throughput / 1e9:.2f} GB/s |",
    ]
    targets = [
        target(
            key="gateway-warm-64k",
            scenario="gateway",
            text="warm 64 KiB range GET through the gateway (pyarrow's S3 client): "
            "p50 ≤ 250 µs (ratio: to 250 µs)",
            measured=fmt_s(warm),
            ratio=warm / 250e-6,
            met=warm <= 250e-6,
            reference="250 µs",
        ),
        target(
            key="gateway-concurrent",
            scenario="gateway",
            text="1 MiB GETs from 8 concurrent clients through the gateway ≥ 1.5 GB/s "
            "(ratio: 1.5 GB/s to the measured)",
            measured=f"{throughput / 1e9:.2f} GB/s",
            ratio=1.5e9 / throughput,
            met=throughput >= 1.5e9,
            reference="1.5 GB/s",
        ),
    ]
    if "floor_64k_s" in result and "floor_bytes_per_s" in result:
        floor = statistics.median(result["floor_64k_s"])
        floor_rate = statistics.median(result["floor_bytes_per_s"])
        rows[3:3] = [
            f"| the same from a server that does nothing (the client's floor) | {fmt_s(floor)} |"
        ]
        rows.append(f"| the same from a server that does nothing | {floor_rate / 1e9:.2f} GB/s |")
        targets += _floor_targets(warm, floor, throughput, floor_rate)
    targets.append(
        target(
            key="gateway-cold-64k",
            scenario="gateway",
            text="cold 64 KiB through a fresh gateway vs pyarrow reading the store directly "
            "(not a target of its own: the DataFusion cold target is)",
            measured=f"{fmt_s(cold)} vs {fmt_s(cold_direct)}",
            ratio=cold / cold_direct,
            met=True,
            reference="pyarrow direct",
            informative=True,
        )
    )
    table = "\n".join(rows)
    sql_table, sql_targets = _sql_report(gateway_sql.medians(result["sql_s"]))
    return {
        "data": result,
        "tables": f"{sql_table}\n\n{table}",
        "targets": [*sql_targets, *targets],
        "notes": [],
    }


def _floor_targets(warm: float, floor: float, throughput: float, floor_rate: float) -> list[Target]:
    """What the same client reaches against a server that does nothing: the bound on this
    machine for any gateway, and the gateway's own share above it."""
    return [
        target(
            key="gateway-floor-64k",
            scenario="gateway",
            text="pyarrow's client, 64 KiB, from a server that does nothing (a canned answer): "
            "what the client itself costs here, a bound under any gateway",
            measured=f"{fmt_s(warm)} vs {fmt_s(floor)} (the target: 250 µs)",
            ratio=warm / floor,
            met=True,
            reference="canned server",
            informative=True,
        ),
        target(
            key="gateway-floor-concurrent",
            scenario="gateway",
            text="pyarrow's client, 8 x 1 MiB, from a server that does nothing: the bound "
            "under any gateway",
            measured=f"{throughput / 1e9:.2f} vs {floor_rate / 1e9:.2f} GB/s",
            ratio=floor_rate / throughput,
            met=True,
            reference="canned server",
            informative=True,
        ),
    ]


def _sql_report(m: dict[str, dict[str, float]]) -> tuple[str, list[Target]]:
    """The DataFusion table and its targets (per query: warm vs local, warm vs direct, cold
    vs direct)."""
    ways = gateway_sql.WAYS
    lines = [
        "| DataFusion query (median) | " + " | ".join(ways) + " |",
        "|---|" + "---:|" * len(ways),
    ]
    lines += [f"| {q} | " + " | ".join(fmt_s(m[q][w]) for w in ways) + " |" for q in m]
    targets: list[Target] = []
    for q, t in m.items():
        warm, local, direct, cold = t["gateway warm"], t["local"], t["direct"], t["gateway cold"]
        # The reference of the cold targets: the direct reader's best setting in this run.
        best = min(gateway_sql.DIRECT_FRESH, key=lambda way: t[way])
        fresh, fsspec_cold = t[best], t["fsspec route cold"]
        targets += [
            target(
                key=f"gateway-sql-warm-{q}",
                scenario="gateway",
                text=f"DataFusion native through the gateway, warm, {q} ≤ 1.2x a local copy",
                measured=f"{fmt_s(warm)} vs {fmt_s(local)}",
                ratio=warm / local,
                met=warm <= 1.2 * local,
                reference="local copy",
            ),
            target(
                key=f"gateway-sql-speedup-{q}",
                scenario="gateway",
                text=f"DataFusion native through the gateway, warm, {q} ≥ 10x faster than "
                "reading the store directly (the same session: its footers cached by DataFusion; "
                "ratio: 10x to the speed-up)",
                measured=f"{fmt_s(warm)} vs {fmt_s(direct)} ({direct / warm:.1f}x)",
                ratio=10 * warm / direct,
                met=direct >= 10 * warm,
                reference="direct (÷ this: speed-up)",
            ),
            target(
                key=f"gateway-sql-ceiling-{q}",
                scenario="gateway",
                text=f"the ceiling of that speed-up, {q}: a local copy against the store "
                "directly (no cache answers faster than the local copy)",
                measured=f"{fmt_s(local)} vs {fmt_s(direct)} ({direct / local:.1f}x)",
                ratio=10 * local / direct,
                met=True,
                reference="direct (÷ this: speed-up)",
                informative=True,
            ),
            target(
                key=f"gateway-sql-cold-{q}",
                scenario="gateway",
                text=f"DataFusion native through a fresh gateway, cold, {q} ≤ 1.1x reading the "
                "store directly with its best setting (both in a new session)",
                measured=f"{fmt_s(cold)} vs {fmt_s(fresh)} ({best})",
                ratio=cold / fresh,
                met=cold <= 1.1 * fresh,
                reference="direct, new session, best setting",
            ),
            target(
                key=f"gateway-sql-fsspec-cold-{q}",
                scenario="gateway",
                text=f"the fsspec route (pyarrow dataset over fresh tiers), cold, {q} ≤ 1.1x "
                "DataFusion reading the store directly with its best setting (both in a new "
                "session)",
                measured=f"{fmt_s(fsspec_cold)} vs {fmt_s(fresh)} ({best})",
                ratio=fsspec_cold / fresh,
                met=fsspec_cold <= 1.1 * fresh,
                reference="direct, new session, best setting",
            ),
            target(
                key=f"gateway-sql-fsspec-{q}",
                scenario="gateway",
                text=f"the fsspec route (pyarrow dataset over the tiers), warm, {q}, beside the "
                "gateway's",
                measured=f"{fmt_s(t['fsspec route warm'])} vs {fmt_s(warm)}",
                ratio=t["fsspec route warm"] / warm,
                met=True,
                reference="gateway warm",
                informative=True,
            ),
        ]
    return "\n".join(lines), targets


def report(result: GatewayResult) -> Report:
    return Report({"gateway": body(result["tables"], result["notes"])}, result["targets"])


SCENARIO: Scenario[Sizes, GatewayResult] = Scenario(
    name="gateway",
    order=55,
    sizes={
        "smoke": Sizes(1, 10, 8, gateway_sql.Shape(rows=200_000, files=3, rounds=1)),
        "quick": Sizes(2, 200, 64, gateway_sql.Shape(rows=1_000_000, files=6, rounds=3)),
        "full": Sizes(5, 500, 256, gateway_sql.Shape(rows=4_000_000, files=6, rounds=7)),
    },
    run=run,
    sections=(Section("gateway", "The S3 gateway (pyarrow's native client)"),),
    report=report,
)
