"""The disk-fault helpers of tiercache.testing.faults.disk, on files in a temporary directory."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from tiercache import DiskTier, IntegrityError
from tiercache.protocol import BlockKey
from tiercache.testing.faults.disk import (
    cache_files,
    corrupt_cache,
    flip_bytes,
    remove_directory,
    truncate_file,
)

DATA = bytes(range(256)) * 4  # 1 KiB, every byte value four times.


def write(path: Path, data: bytes = DATA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def changed_offsets(before: bytes, after: bytes) -> list[int]:
    assert len(before) == len(after)
    return [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]


def fake_cache(root: Path, files: int) -> list[Path]:
    """Lay out value files the way diskcache does, plus a database that is not a value file."""
    write(root / "tiercache-v1" / "cache.db", b"SQLite format 3\0")
    return [
        write(root / "tiercache-v1" / f"{i % 3:02x}" / f"{i:02x}" / f"{i:04d}.val", DATA)
        for i in range(files)
    ]


def test_flip_bytes_defaults_to_the_middle_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "a.val")
    flip_bytes(path)
    after = path.read_bytes()
    assert changed_offsets(DATA, after) == [(len(DATA) - 1) // 2]
    assert after[(len(DATA) - 1) // 2] == DATA[(len(DATA) - 1) // 2] ^ 0xFF


def test_flip_bytes_changes_exactly_the_chosen_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "a.val")
    flip_bytes(path, offset=10, count=5)
    after = path.read_bytes()
    assert changed_offsets(DATA, after) == [10, 11, 12, 13, 14]
    assert after[10:15] == bytes(b ^ 0xFF for b in DATA[10:15])
    flip_bytes(path, offset=0)
    flip_bytes(path, offset=len(DATA) - 1)
    assert changed_offsets(DATA, path.read_bytes()) == [0, 10, 11, 12, 13, 14, len(DATA) - 1]
    flip_bytes(path, offset=10, count=5)  # Flipping twice restores the bytes.
    assert changed_offsets(DATA, path.read_bytes()) == [0, len(DATA) - 1]


def test_flip_bytes_centers_a_range_by_default(tmp_path: Path) -> None:
    path = write(tmp_path / "a.val", b"0123456789")
    flip_bytes(path, count=4)
    assert changed_offsets(b"0123456789", path.read_bytes()) == [3, 4, 5, 6]


def test_flip_bytes_rejects_bytes_outside_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.val", b"0123456789")
    for offset, count in [(10, 1), (8, 3), (-1, 1), (0, 11), (0, 0)]:
        with pytest.raises(ValueError, match=r"count|offset"):
            flip_bytes(path, offset=offset, count=count)
    with pytest.raises(ValueError, match="0 bytes"):
        flip_bytes(write(tmp_path / "empty.val", b""))
    assert path.read_bytes() == b"0123456789"
    with pytest.raises(FileNotFoundError):
        flip_bytes(tmp_path / "missing.val")


def test_truncate_file_keeps_the_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "a.val")
    truncate_file(path, 100)
    assert path.read_bytes() == DATA[:100]
    truncate_file(path, 100)
    assert path.read_bytes() == DATA[:100]
    truncate_file(path, 0)
    assert path.read_bytes() == b""
    with pytest.raises(ValueError, match="size"):
        truncate_file(path, 1)  # Never extends.
    with pytest.raises(ValueError, match="size"):
        truncate_file(write(tmp_path / "b.val"), -1)
    with pytest.raises(FileNotFoundError):
        truncate_file(tmp_path / "missing.val", 0)


def test_cache_files_lists_value_files_sorted(tmp_path: Path) -> None:
    files = fake_cache(tmp_path, 7)
    write(tmp_path / "tiercache-v1" / "notes.txt", b"not a value file")
    assert cache_files(tmp_path) == sorted(files)
    assert cache_files(tmp_path / "tiercache-v1") == sorted(files)
    assert cache_files(tmp_path / "missing") == []


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.99, 1.0])
def test_corrupt_cache_damages_the_fraction(tmp_path: Path, fraction: float) -> None:
    files = fake_cache(tmp_path, 10)
    damaged = corrupt_cache(tmp_path, fraction=fraction, seed=3)
    assert len(damaged) == math.ceil(fraction * len(files))
    assert damaged == sorted(damaged)
    for path in files:
        after = path.read_bytes()
        if path in damaged:
            assert changed_offsets(DATA, after) == [(len(DATA) - 1) // 2]
        else:
            assert after == DATA
    assert (tmp_path / "tiercache-v1" / "cache.db").read_bytes() == b"SQLite format 3\0"


def test_corrupt_cache_sample_is_reproducible_with_the_seed(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    fake_cache(first, 20)
    fake_cache(second, 20)
    damaged_first = corrupt_cache(first, fraction=0.25, seed=11)
    damaged_second = corrupt_cache(second, fraction=0.25, seed=11)
    assert [p.relative_to(first) for p in damaged_first] == [
        p.relative_to(second) for p in damaged_second
    ]
    samples = set()
    for seed in range(10):
        directory = tmp_path / f"seed{seed}"
        fake_cache(directory, 20)
        damaged = corrupt_cache(directory, fraction=0.25, seed=seed)
        samples.add(tuple(p.relative_to(directory) for p in damaged))
    assert len(samples) > 1  # Different seeds pick different files.


def test_corrupt_cache_truncate_mode_halves_the_files(tmp_path: Path) -> None:
    files = fake_cache(tmp_path, 4)
    damaged = corrupt_cache(tmp_path, mode="truncate")
    assert damaged == sorted(files)
    assert all(path.read_bytes() == DATA[: len(DATA) // 2] for path in files)


def test_corrupt_cache_skips_empty_files(tmp_path: Path) -> None:
    files = fake_cache(tmp_path, 2)
    write(files[0], b"")
    assert corrupt_cache(tmp_path) == [files[1]]
    assert corrupt_cache(tmp_path / "missing") == []


def test_corrupt_cache_rejects_bad_arguments(tmp_path: Path) -> None:
    files = fake_cache(tmp_path, 3)
    with pytest.raises(ValueError, match="mode"):
        corrupt_cache(tmp_path, mode="zero")
    with pytest.raises(ValueError, match="mode"):
        corrupt_cache(tmp_path / "missing", mode="")
    for fraction in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="fraction"):
            corrupt_cache(tmp_path, fraction=fraction)
    assert all(path.read_bytes() == DATA for path in files)


def test_remove_directory_is_idempotent(tmp_path: Path) -> None:
    fake_cache(tmp_path / "disk", 5)
    remove_directory(tmp_path / "disk")
    assert not (tmp_path / "disk").exists()
    remove_directory(tmp_path / "disk")
    remove_directory(str(tmp_path / "never" / "existed"))
    assert tmp_path.exists()
    with pytest.raises(NotADirectoryError):
        remove_directory(write(tmp_path / "file.val"))


def checked_get(tier: DiskTier, key: BlockKey) -> bytes | None:
    """Return the tier's block, or ``None`` if it rejected a damaged one (which it then deletes)."""
    try:
        return tier.get(key)
    except IntegrityError:
        assert tier.get(key) is None
        return None


@pytest.mark.parametrize("mode", ["flip", "truncate"])
def test_damaged_disk_tier_entries_are_rejected_not_served(tmp_path: Path, mode: str) -> None:
    # The helpers find the real disk tier's value files, and the tier rejects what they damage.
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    try:
        blocks = {
            BlockKey("target", "bucket/obj", "v1", 1 << 20, i): os.urandom(100_000)
            for i in range(4)
        }
        for key, block in blocks.items():
            tier.put(key, block)
        files = cache_files(tmp_path)
        assert len(files) == len(blocks)
        assert all(path.is_relative_to(tmp_path / "tiercache-v1") for path in files)
        assert len(corrupt_cache(tmp_path, fraction=0.5, seed=5, mode=mode)) == 2
        results = [checked_get(tier, key) for key in blocks]
        assert results.count(None) == 2
        assert all(
            got in (None, block) for got, block in zip(results, blocks.values(), strict=True)
        )
        assert len(cache_files(tmp_path)) == 2  # The rejected entries were deleted.
    finally:
        tier.close()
