"""Property: any sequence of reads through the chain returns exactly the target's bytes.

Runs against ``tiercache::memory://`` and ``tiercache::file://`` with 4 KiB blocks, a RAM tier
small enough to evict, ranges across block borders, empty, inverted and past-EOF ranges, and
negative offsets (Python slice semantics, as fsspec's ``cat_file``).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercache import Settings, TieredFileSystem

pytestmark = pytest.mark.property

BLOCK = 4096
offset = st.one_of(st.none(), st.integers(-3 * BLOCK, 6 * BLOCK))
read_op = st.tuples(st.sampled_from(["read_range", "cat_file"]), offset, offset)
ranges_op = st.tuples(st.just("cat_ranges"), st.lists(st.tuples(offset, offset), max_size=5))
seek_op = st.tuples(
    st.just("seek_read"),
    st.sampled_from([0, 1, 2]),
    st.integers(-3 * BLOCK, 6 * BLOCK),
    st.integers(-1, 2 * BLOCK),
)
operations = st.lists(st.one_of(read_op, ranges_op, seek_op), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def local_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tiercache-prop-") as path:
        yield path


def make_fs(protocol: str, memory_bytes: int) -> TieredFileSystem:
    return TieredFileSystem(
        target_protocol=protocol,
        settings=Settings(block_size_bytes=BLOCK, memory_bytes=memory_bytes),
        skip_instance_cache=True,
    )


def check(fs: TieredFileSystem, path: str, data: bytes, ops: list[Any]) -> None:
    with fs.open(path, "rb") as f:
        for op in ops:
            if op[0] in ("read_range", "cat_file"):
                _, start, end = op
                got = getattr(fs, op[0])(path, start, end)
                assert got == data[start:end], (op, len(data))
            elif op[0] == "cat_ranges":
                pairs = op[1]
                got = fs.cat_ranges(
                    [path] * len(pairs), [s for s, _ in pairs], [e for _, e in pairs]
                )
                assert got == [data[s:e] for s, e in pairs]
            else:
                _, whence, where, length = op
                base = {0: 0, 1: f.tell(), 2: len(data)}[whence]
                if base + where < 0:
                    with pytest.raises(ValueError, match="before start"):
                        f.seek(where, whence)
                    continue
                f.seek(where, whence)
                pos = f.tell()
                assert pos == base + where
                got = f.read(length)
                stop = len(data) if length < 0 else pos + length
                assert got == data[pos:stop]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 5 * BLOCK + 17),
    memory_bytes=st.sampled_from([0, 2 * BLOCK, 64 * BLOCK]),
    ops=operations,
)
def test_memory_target(size: int, memory_bytes: int, ops: list[Any]) -> None:
    data = os.urandom(size)
    path = f"/prop/{uuid.uuid4().hex}.bin"
    fsspec.filesystem("memory").pipe_file(path, data)
    fs = make_fs("memory", memory_bytes)
    try:
        check(fs, path, data, ops)
        check(fs, path, data, ops)  # the second pass is served (partly) from the cache
    finally:
        fs.close()
        fsspec.filesystem("memory").rm(path)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    size=st.integers(0, 5 * BLOCK + 17),
    memory_bytes=st.sampled_from([0, 2 * BLOCK, 64 * BLOCK]),
    ops=operations,
)
def test_file_target(local_dir: str, size: int, memory_bytes: int, ops: list[Any]) -> None:
    data = os.urandom(size)
    path = os.path.join(local_dir, f"{uuid.uuid4().hex}.bin")
    with open(path, "wb") as f:
        f.write(data)
    fs = make_fs("file", memory_bytes)
    try:
        check(fs, path, data, ops)
        check(fs, "file://" + path, data, ops)
    finally:
        fs.close()
        os.remove(path)
