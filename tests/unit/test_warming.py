"""Warmup (tiercache.warm) over an instrumented in-memory origin: each limit, the report, the
prefetch accounting and the footer / index regions it reads."""

from __future__ import annotations

import io
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import CountingFS
from tiercache import ConfigError, Settings, TieredFileSystem, warm
from tiercache.blocks import FOOTER_TAIL_BYTES
from tiercache.integrations.warming import _index_region
from tiercache.tiers.memory import MemoryTier


def parquet_bytes(rows: int = 2000, *, index: bool = False, columns: int = 2) -> bytes:
    table = pa.table({f"c{i}": pa.array(range(rows), pa.int64()) for i in range(columns)})
    buf = io.BytesIO()
    options: dict[str, Any] = {"compression": "none"}
    if index:
        options.update(write_page_index=True, data_page_size=256, write_batch_size=32)
    pq.write_table(table, buf, **options)
    return buf.getvalue()


class ConcurrencyFS(CountingFS):
    """Counts the most reads in flight at once."""

    protocol = "concurrencymem"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.most_in_flight = 0

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return super().cat_file(path, start=start, end=end, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def prefix() -> Iterator[str]:
    """Six small Parquet files under a fresh prefix, created one after the other."""
    root = f"/warm-{uuid.uuid4().hex}"
    origin = CountingFS(skip_instance_cache=True)
    for i in range(6):
        origin.pipe_file(f"{root}/part-{i}.parquet", parquet_bytes(500 + i))
        time.sleep(0.002)  # distinct creation times: "most recent" is well defined
    origin.pipe_file(f"{root}/_SUCCESS", b"")
    origin.pipe_file(f"{root}/notes.txt", b"not parquet")
    yield root
    origin.rm(root, recursive=True)


def make_fs(target: CountingFS | None = None, **settings: Any) -> TieredFileSystem:
    target = target if target is not None else CountingFS(skip_instance_cache=True)
    options: dict[str, Any] = {"block_size_bytes": 64 * 1024, **settings}
    return TieredFileSystem(fs=target, settings=Settings(**options), tiers=[MemoryTier(64 << 20)])


def paths_read(fs: TieredFileSystem) -> set[str]:
    target = fs.target
    assert isinstance(target, CountingFS)
    return {path for path, _, _ in target.reads}


def test_warms_the_most_recent_files_first(prefix: str) -> None:
    fs = make_fs()
    report = warm(prefix, filesystem=fs, max_files=2)
    assert report.files_found == 6  # _SUCCESS and notes.txt are not candidates
    assert (report.files_attempted, report.files_warmed, report.errors) == (2, 2, [])
    assert paths_read(fs) == {f"{prefix}/part-5.parquet", f"{prefix}/part-4.parquet"}
    sizes = [fs.size(f"{prefix}/part-{i}.parquet") for i in (4, 5)]
    assert report.bytes == sum(sizes)  # small files: the tail is the whole file
    assert report.stopped_by is None


def test_max_bytes_stops_before_a_file_that_does_not_fit(prefix: str) -> None:
    fs = make_fs()
    sizes = [fs.size(f"{prefix}/part-{i}.parquet") for i in (5, 4)]
    report = warm(prefix, filesystem=fs, max_bytes=sum(sizes) + 10, concurrency=1)
    assert report.files_warmed == 2
    assert report.bytes == sum(sizes) <= sum(sizes) + 10
    assert report.stopped_by == "max_bytes"
    assert paths_read(fs) == {f"{prefix}/part-5.parquet", f"{prefix}/part-4.parquet"}


def test_max_files_zero_warms_nothing(prefix: str) -> None:
    fs = make_fs()
    report = warm(prefix, filesystem=fs, max_files=0)
    assert (report.files_attempted, report.bytes, paths_read(fs)) == (0, 0, set())


def test_concurrency_bounds_the_reads_in_flight(prefix: str) -> None:
    target = ConcurrencyFS(skip_instance_cache=True)
    target.delay_s = 0.05
    fs = make_fs(target)
    report = warm(prefix, filesystem=fs, concurrency=3)
    assert report.files_warmed == 6
    assert 1 < target.most_in_flight <= 3

    serial = ConcurrencyFS(skip_instance_cache=True)
    serial.delay_s = 0.02
    report = warm(prefix, filesystem=make_fs(serial), concurrency=1)
    assert report.files_warmed == 6
    assert serial.most_in_flight == 1


def test_time_limit_returns_on_time_and_the_report_is_sealed(prefix: str) -> None:
    target = CountingFS(skip_instance_cache=True)
    target.delay_s = 1.0  # a very slow object store
    fs = make_fs(target)
    began = time.monotonic()
    report = warm(prefix, filesystem=fs, time_limit_s=0.2, concurrency=2)
    took = time.monotonic() - began
    assert took < 0.9, took  # the limit, not the store, decides
    assert report.stopped_by == "time_limit"
    assert report.files_warmed == 0
    assert report.files_attempted == 2  # the two in flight; the others were never started
    seen = report.to_dict()
    time.sleep(1.2)  # the reads in flight finish in the background ...
    assert report.to_dict() == seen  # ... and do not change the report
    assert len(paths_read(fs)) == 2


def test_a_bad_file_is_an_error_in_the_report_not_an_exception(prefix: str) -> None:
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(f"{prefix}/zz-broken.parquet", b"x" * 100)
    fs = make_fs(origin)
    report = warm(prefix, filesystem=fs)
    assert report.files_warmed == 6
    assert len(report.errors) == 1
    assert "zz-broken.parquet" in report.errors[0]
    assert "PAR1" in report.errors[0]


def test_a_listing_failure_is_reported(prefix: str) -> None:
    class Unlistable(CountingFS):
        protocol = "unlistablemem"

        def find(self, *args: Any, **kwargs: Any) -> Any:
            raise PermissionError("AccessDenied: ListObjectsV2")

    report = warm(prefix, filesystem=make_fs(Unlistable(skip_instance_cache=True)))
    assert report.files_attempted == 0
    assert report.errors == [f"{prefix}: PermissionError: AccessDenied: ListObjectsV2"]


def test_warm_reads_count_as_prefetch_not_demand(prefix: str) -> None:
    fs = make_fs()
    warm(prefix, filesystem=fs, max_files=3)
    stats = fs.stats()
    assert stats["origin"]["requests"] == 0
    assert stats["tiers"]["memory"]["hits"] == stats["tiers"]["memory"]["misses"] == 0
    assert stats["prefetch"]["origin"]["requests"] >= 3
    assert stats["prefetch"]["tiers"]["memory"]["misses"] >= 3
    # The footer a reader asks for next is a demand hit in RAM, with no origin request.
    path = f"{prefix}/part-5.parquet"
    assert fs.read_range(path, -8, None)[-4:] == b"PAR1"
    stats = fs.stats()
    assert stats["tiers"]["memory"]["hits"] == 1
    assert stats["origin"]["requests"] == 0


def test_page_index_region_beyond_the_tail_is_warmed() -> None:
    data = parquet_bytes(60_000, index=True, columns=4)
    footer_len = struct.unpack("<I", data[-8:-4])[0]
    footer_start = len(data) - 8 - footer_len
    region = _index_region(data[footer_start:], footer_start)
    assert region is not None
    lo, hi = region
    assert hi == footer_start
    assert len(data) - lo > FOOTER_TAIL_BYTES  # the index starts before the 64 KiB tail
    root = f"/warm-{uuid.uuid4().hex}"
    origin = CountingFS(skip_instance_cache=True)
    origin.pipe_file(f"{root}/indexed.parquet", data)
    fs = make_fs(origin, block_size_bytes=16 * 1024)
    report = warm(root, filesystem=fs)
    assert report.errors == []
    assert report.bytes == len(data) - lo  # the tail, then the rest of the index region
    origin.reads.clear()
    assert fs.read_range(f"{root}/indexed.parquet", lo, len(data)) == data[lo:]
    assert origin.reads == []  # all of it is cached


def test_index_region_is_none_without_an_index() -> None:
    data = parquet_bytes(1000)
    footer_len = struct.unpack("<I", data[-8:-4])[0]
    footer_start = len(data) - 8 - footer_len
    assert _index_region(data[footer_start:], footer_start) is None


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_files": -1}, "max_files"),
        ({"max_bytes": -5}, "max_bytes"),
        ({"concurrency": 0}, "concurrency"),
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"max_files": True}, "max_files"),
    ],
)
def test_bad_limits_are_config_errors_naming_the_limit(
    prefix: str, arguments: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        warm(prefix, filesystem=make_fs(), **arguments)


def test_limits_default_to_the_settings(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_WARM_MAX_FILES", "1")
    report = warm(prefix, filesystem=make_fs())
    assert report.files_attempted == 1


def test_no_thread_is_left_behind(prefix: str) -> None:
    before = threading.active_count()
    warm(prefix, filesystem=make_fs(), concurrency=4)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    names = [t.name for t in threading.enumerate() if t.name.startswith("tiercache-warm")]
    assert names == []
