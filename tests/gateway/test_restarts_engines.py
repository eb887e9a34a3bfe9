"""What deltalake and DataFusion (Rust ``object_store`` clients) see when ``tiercache serve`` is
SIGKILLed in the middle of their query and restarted on its port: their own retries either
carry the query to the restarted sidecar (the exact answer) or give up with an exception; never
wrong rows. The figures in docs/gateway.md ("What a client sees when the gateway restarts") come
from these tests: ``pytest tests/gateway/test_restarts_engines.py -s`` prints them.

The kill is placed without racing the query: the sidecar reaches the S3 server through a fault
proxy that holds every response (a first-byte delay longer than any test) while the query runs;
half the table is in the sidecar's RAM beforehand, so the sidecar is killed once it has answered
some of the query's GETs and the proxy holds one of its requests to the S3 server. The query
cannot have finished then: the bytes it waits for are held.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datafusion import SessionContext
from datafusion.object_store import AmazonS3
from deltalake import DeltaTable, write_deltalake

from tests.gateway.sidecar import KEY_ID, SECRET, Sidecar, s3_client, sidecars
from tiercache.testing import HttpFaultProxy, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(180)]
__all__ = ["sidecars"]  # a fixture

FILES = 4
ROWS = 400_000  # per file: Parquet files of about 8 MiB (two 8-byte columns that do not compress)
HOLD_S = 600.0  # the proxy's first-byte delay while the query runs: longer than any test
QUERY_LIMIT_S = 120.0  # a request's default retries sleep 55.5 s at most before they give up
QUERY = (
    "SELECT k, count(*) AS n, sum(amount) AS total, min(x) AS low, max(x) AS high "
    "FROM events GROUP BY k ORDER BY k"
)


@dataclass(frozen=True)
class Retries:
    """A client's retry settings: the storage options that set them (deltalake), and what
    bounds the time it keeps retrying a refused connection."""

    label: str
    name: str  # in test ids
    options: dict[str, str]
    max_retries: int = 10  # object_store's defaults
    init_backoff_s: float = 0.1

    @property
    def shortest_s(self) -> float:
        """The least time ``max_retries`` retries take: every backoff is at least the first."""
        return self.max_retries * self.init_backoff_s


DEFAULTS = Retries("object_store's defaults", "defaults", {})
SHORTER = Retries("max_retries=2", "max_retries=2", {"max_retries": "2"}, max_retries=2)
LONGER = Retries(
    "backoff_config.init_backoff=1s",
    "init_backoff=1s",
    {"backoff_config.init_backoff": "1s"},
    init_backoff_s=1.0,
)


@dataclass(frozen=True)
class Table:
    """A Delta table written straight to the S3 server, and its rows."""

    bucket: str
    uri: str
    rows: pa.Table

    def keys(self, sidecar: Sidecar) -> list[str]:
        table = DeltaTable(self.uri, storage_options=delta_options(sidecar))
        return [uri.removeprefix(f"s3://{self.bucket}/") for uri in table.file_uris()]


def _rows(part: int) -> pa.Table:
    ids = pa.array(range(part * ROWS, (part + 1) * ROWS), pa.int64())
    mixed = pc.multiply(ids, pa.scalar(-7_046_029_254_386_353_131, pa.int64()))  # wraps
    high = pc.shift_right(mixed, pa.scalar(11, pa.int64()))
    return pa.table(
        {
            "id": ids,
            "k": pa.array([i % 7 for i in range(part * ROWS, (part + 1) * ROWS)], pa.int64()),
            "amount": pc.bit_wise_and(high, pa.scalar((1 << 30) - 1, pa.int64())),
            "x": pc.divide(
                pc.cast(pc.bit_wise_and(high, pa.scalar((1 << 52) - 1, pa.int64())), pa.float64()),
                float(1 << 52),
            ),
        }
    )


@pytest.fixture(scope="module")
def table(s3_server: S3Server) -> Table:
    bucket = f"kill-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    options = s3_server.storage_options()
    direct = {
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": options["key"],
        "AWS_SECRET_ACCESS_KEY": options["secret"],
        "AWS_REGION": "us-east-1",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",  # the only writer
    }
    uri = f"s3://{bucket}/events"
    parts = [_rows(part) for part in range(FILES)]
    for part in parts:
        write_deltalake(uri, part, storage_options=direct, mode="append")
    return Table(bucket, uri, pa.concat_tables(parts))


@pytest.fixture
def origin(s3_server: S3Server) -> Iterator[HttpFaultProxy]:
    """The proxy between the sidecars and the S3 server."""
    with HttpFaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def delta_options(sidecar: Sidecar, retries: Retries = DEFAULTS) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": sidecar.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        **retries.options,
    }


def _deltalake_read(sidecar: Sidecar, table: Table, retries: Retries) -> Callable[[], Any]:
    """A full scan: ``DeltaTable.to_pyarrow_table()`` (its log read now, its files later)."""
    delta = DeltaTable(table.uri, storage_options=delta_options(sidecar, retries))
    return delta.to_pyarrow_table


def _datafusion_query(sidecar: Sidecar, table: Table, retries: Retries) -> Callable[[], Any]:
    """QUERY by DataFusion's own store over the snapshot's files (their footers read now)."""
    assert retries == DEFAULTS  # datafusion.object_store.AmazonS3 takes no retry setting
    store = AmazonS3(
        bucket_name=table.bucket,
        endpoint=sidecar.endpoint_url,
        allow_http=True,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        region="us-east-1",
    )
    ctx = SessionContext()
    ctx.register_object_store("s3://", store, table.bucket)
    frame: Any = None
    for key in table.keys(sidecar):
        part = ctx.read_parquet(f"s3://{table.bucket}/{key}")
        frame = part if frame is None else frame.union(part)
    ctx.register_view("events", frame)
    return lambda: ctx.sql(QUERY).to_pylist()


def _expected(engine: str, table: Table) -> Any:
    if engine == "deltalake":
        return table.rows
    grouped = table.rows.group_by("k").aggregate(
        [("id", "count"), ("amount", "sum"), ("x", "min"), ("x", "max")]
    )
    names = {"k": "k", "id_count": "n", "amount_sum": "total", "x_min": "low", "x_max": "high"}
    rows = [{names[name]: value for name, value in r.items()} for r in grouped.to_pylist()]
    return sorted(rows, key=lambda r: r["k"])


def _right(engine: str, answer: Any, expected: Any) -> bool:
    if engine == "deltalake":
        return bool(answer.sort_by("id").equals(expected))
    return bool(answer == expected)


QUERIES = {"deltalake": _deltalake_read, "datafusion": _datafusion_query}
ERRORS = {"deltalake": OSError, "datafusion": Exception}  # what each raises for a store error


@dataclass
class Outcome:
    """What the query did around the kill."""

    answer: Any = None
    error: BaseException | None = None
    ended: float = 0.0  # when it returned or raised (time.monotonic())
    served_before_kill: int = 0  # the query's GETs the killed sidecar had answered
    held: int = 0  # its requests to the origin the proxy held when the sidecar was killed
    outage_s: float = 0.0  # from the kill until the restarted sidecar was ready
    after_kill_s: float = 0.0  # from the kill until the query returned or raised
    served_after: int = 0  # the query's GETs the restarted sidecar answered

    def line(self, scenario: str) -> str:
        if self.error is None:
            result = "completed, right"
        else:
            result = f"raised {type(self.error).__name__}: {_message(self.error)[:400]}"
        before = " (before the restart)" if self.after_kill_s < self.outage_s else ""
        return (
            f"{scenario}: killed with {self.served_before_kill} of the query's GETs answered and "
            f"{self.held} held at the origin; serving again {self.outage_s:.2f} s after the kill; "
            f"the query {result}, {self.after_kill_s:.2f} s after the kill{before}; "
            f"the restarted sidecar answered {self.served_after} of its GETs"
        )


def _message(error: BaseException) -> str:
    """One line: delta-rs prints a cause chain with ANSI-coloured arrows on new lines."""
    return re.sub(r"\s*(\x1b\[\d+m)?↳(\x1b\[0m)?\s*", ": ", str(error)).replace("\n", " ")


def _gets(sidecar: Sidecar) -> int:
    """The GetObject requests the sidecar answered (its one worker's counters)."""
    with urllib.request.urlopen(f"{sidecar.endpoint_url}/-/stats", timeout=10) as answer:
        requests = json.load(answer)["gateway"]["requests"]
    return sum(requests.get("GetObject", {}).values())


def _wait(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _kill_mid_query(
    query: Callable[[], Any],
    first: Sidecar,
    origin: HttpFaultProxy,
    restart: Callable[[threading.Event], Sidecar],
) -> Outcome:
    """Run ``query`` in a thread with the origin's answers held, SIGKILL ``first`` in the middle
    of it, then ``restart(done)`` (``done`` is set when the query returns or raises)."""
    outcome = Outcome()
    served = _gets(first)
    done = threading.Event()

    def run() -> None:
        try:
            outcome.answer = query()
        except Exception as exc:  # what the client saw
            outcome.error = exc
        outcome.ended = time.monotonic()
        done.set()

    origin.reset_counters()
    origin.delay_s = HOLD_S
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # In the middle: the origin holds one of its requests, and the sidecar has answered one
    # (both engines read the table's files at once, the ones in RAM come back at once).
    _wait(lambda: done.is_set() or (origin.requests() > 0 and _gets(first) > served))
    assert not done.is_set(), "the query ended without the origin"
    outcome.served_before_kill = _gets(first) - served
    outcome.held = origin.requests()
    killed = time.monotonic()
    first.kill_all()
    origin.delay_s = 0  # the held answers go to a dead process; the next ones go at once
    second = restart(done)
    ready = time.monotonic()
    assert done.wait(QUERY_LIMIT_S), "the query neither returned nor raised"
    thread.join()
    outcome.after_kill_s = outcome.ended - killed
    outcome.outage_s = ready - killed
    outcome.served_after = _gets(second)
    return outcome


def _restart_after(
    sidecars: Callable[..., Sidecar], s3_server: S3Server, first: Sidecar, gap_s: float | None
) -> Callable[[threading.Event], Sidecar]:
    """Restart on ``first``'s port ``gap_s`` after the kill, or (None) once the query ended."""
    origin_url = first.origin_url

    def restart(done: threading.Event) -> Sidecar:
        if gap_s is None:
            assert done.wait(QUERY_LIMIT_S), "the query neither returned nor raised"
        else:
            time.sleep(gap_s)  # the scenario's outage; the outcome is judged on the measured one
        second = sidecars(s3_server, listen=first.address, origin_url=origin_url)
        assert second.wait_ready() == first.address
        return second

    return restart


@dataclass(frozen=True)
class Scenario:
    """A query, its client's retry settings, and when the sidecar comes back after the kill."""

    engine: str
    retries: Retries = DEFAULTS
    gap_s: float | None = 0.0  # None: kept down until the query has returned or raised

    def __str__(self) -> str:
        when = "kept down" if self.gap_s is None else f"restarted after {self.gap_s:.0f} s"
        return f"{self.engine}, {self.retries.label}, {when}"

    @property
    def id(self) -> str:
        when = "kept-down" if self.gap_s is None else f"after-{self.gap_s:.0f}s"
        return f"{self.engine}-{self.retries.name}-{when}"


SCENARIOS = [
    Scenario("deltalake"),
    Scenario("deltalake", gap_s=3.0),
    Scenario("deltalake", gap_s=None),
    Scenario("deltalake", SHORTER, gap_s=None),
    Scenario("deltalake", LONGER, gap_s=3.0),
    Scenario("datafusion"),  # its AmazonS3 has no retry setting: object_store's defaults
    Scenario("datafusion", gap_s=3.0),
    Scenario("datafusion", gap_s=None),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.id)
def test_a_query_through_a_killed_sidecar(
    s3_server: S3Server,
    origin: HttpFaultProxy,
    sidecars: Callable[..., Sidecar],
    table: Table,
    scenario: Scenario,
) -> None:
    engine, retries, gap_s = scenario.engine, scenario.retries, scenario.gap_s
    first = sidecars(s3_server, origin_url=origin.url)
    first.wait_ready()
    client = s3_client(first.endpoint_url)
    for key in table.keys(first)[: FILES // 2]:  # half the table in the sidecar's RAM
        client.get_object(Bucket=table.bucket, Key=key)["Body"].read()
    query = QUERIES[engine](first, table, retries)
    expected = _expected(engine, table)

    outcome = _kill_mid_query(
        query, first, origin, _restart_after(sidecars, s3_server, first, gap_s)
    )
    print(outcome.line(str(scenario)))

    if outcome.error is None:
        assert _right(engine, outcome.answer, expected)  # never wrong rows
        assert outcome.served_after > 0  # the rest came from the restarted sidecar
    else:
        assert isinstance(outcome.error, ERRORS[engine])
        message = _message(outcome.error)
        assert "Generic S3 error" in message, message
        assert "error sending request" in message, message  # no connection: nothing served
        # It gave up only after its retries: each waits at least the first backoff.
        assert outcome.after_kill_s >= retries.shortest_s
    if gap_s is None:
        assert outcome.error is not None  # the bytes it waited for were never served
    elif outcome.outage_s < retries.shortest_s:
        # Back before the retries of any request could run out: the query must go on.
        assert outcome.error is None, outcome.line("")

    # The restarted sidecar serves the same query, through the same client, right.
    began = time.monotonic()
    assert _right(engine, query(), expected)
    print(f"  the same query on the restarted sidecar: {time.monotonic() - began:.2f} s")


def test_the_retry_settings_each_engine_takes() -> None:
    """deltalake takes object_store's retry settings as lower-case storage options
    (``max_retries``, ``retry_timeout``, ``backoff_config.*``); ``AWS_MAX_RETRIES`` is no key
    and is ignored without an error. DataFusion's ``AmazonS3`` takes none."""
    with socket.socket() as refusing:  # bound, never listening: every connection is refused
        refusing.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"

        def retries(options: dict[str, str]) -> int:
            quick = {"backoff_config.init_backoff": "1ms", "backoff_config.max_backoff": "1ms"}
            storage = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "x"}
            storage |= {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
            with pytest.raises(OSError, match="Generic S3 error") as error:
                DeltaTable("s3://nowhere/events", storage_options=storage | quick | options)
            found = re.search(r"after (\d+) retries", _message(error.value))
            assert found is not None, _message(error.value)
            return int(found.group(1))

        assert retries({}) == 10
        assert retries({"max_retries": "3"}) == 3
        assert retries({"AWS_MAX_RETRIES": "3"}) == 10
        assert retries({"MAX_RETRIES": "3"}) == 10
    signature = AmazonS3.__text_signature__
    assert "bucket_name" in signature
    assert "retr" not in signature
    assert "timeout" not in signature
