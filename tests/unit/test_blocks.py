"""Block arithmetic: properties against plain slicing, and the block classes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiercache.blocks import (
    FOOTER_TAIL_BYTES,
    SMALL_OBJECT_BYTES,
    block_bounds,
    block_span,
    classify,
    contiguous_runs,
    is_immutable,
    normalize_range,
)
from tiercache.protocol import BlockKey

offsets = st.one_of(st.none(), st.integers(-10_000, 10_000))


@given(start=offsets, end=offsets, size=st.integers(0, 5_000))
def test_normalize_range_is_slice_semantics(start: int | None, end: int | None, size: int) -> None:
    data = bytes(size)
    lo, hi = normalize_range(start, end, size)
    assert 0 <= lo <= hi <= size
    assert hi - lo == len(data[start:end])


@given(
    start=st.integers(0, 100_000),
    length=st.integers(1, 100_000),
    block_size=st.sampled_from([4096, 65536, 1 << 20]),
)
def test_block_span_covers_exactly(start: int, length: int, block_size: int) -> None:
    end = start + length
    span = block_span(start, end, block_size)
    assert span.start * block_size <= start < (span.start + 1) * block_size
    assert (span.stop - 1) * block_size < end <= span.stop * block_size


@given(st.lists(st.integers(0, 200)))
def test_contiguous_runs_partition_the_indices(indices: list[int]) -> None:
    runs = contiguous_runs(indices)
    covered = [i for lo, hi in runs for i in range(lo, hi)]
    assert covered == sorted(set(indices))
    # Runs are maximal: consecutive runs never touch.
    assert all(a_hi < b_lo for (_, a_hi), (b_lo, _) in itertools.pairwise(runs))


def test_block_bounds_clip_at_the_end() -> None:
    assert block_bounds(0, 4096, 10_000) == (0, 4096)
    assert block_bounds(2, 4096, 10_000) == (8192, 10_000)


def test_classify() -> None:
    mib = 1 << 20
    big = 10 * mib
    assert classify("b/t/part-1.parquet", 0, mib, big) == "data"
    assert classify("b/t/part-1.parquet", 9, mib, big) == "metadata"  # footer tail
    # The block before the last holds part of the tail when the tail straddles it.
    size = 9 * mib + FOOTER_TAIL_BYTES // 2
    assert classify("x", 8, mib, size) == "metadata"
    assert classify("x", 7, mib, size) == "data"
    assert classify("b/t/_delta_log/00000000000000000001.json", 0, mib, big) == "metadata"
    assert classify("small.json", 0, mib, SMALL_OBJECT_BYTES) == "metadata"


@pytest.mark.parametrize(
    ("path", "immutable"),
    [
        ("b/t/_delta_log/00000000000000000010.json", True),
        ("b/t/_delta_log/00000000000000000010.checkpoint.parquet", True),
        ("b/t/_delta_log/00000000000000000010.checkpoint.0000000001.0000000002.parquet", True),
        ("b/t/_delta_log/00000000000000000010.crc", True),
        ("b/t/_delta_log/_last_checkpoint", False),
        ("b/t/part-00000-1b2c3d4e-0000-4000-8000-123456789abc-c000.snappy.parquet", True),
        ("b/t/data.parquet", False),
        ("b/t/report.csv", False),
    ],
)
def test_is_immutable(path: str, immutable: bool) -> None:
    assert is_immutable(path) is immutable


def test_block_key_digest_is_stable_and_distinct() -> None:
    a = BlockKey("t", "p", "v1", 4096, 0)
    assert a.digest() == BlockKey("t", "p", "v1", 4096, 0).digest()
    assert (
        len(
            {
                a.digest(),
                a._replace(version="v2").digest(),
                a._replace(block_size=8192).digest(),
                a._replace(block_index=1).digest(),
                a._replace(target="u").digest(),
            }
        )
        == 5
    )
