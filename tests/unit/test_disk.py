"""The disk tier on its own: layout and permissions, reuse, clearing, framing of small values."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tiercache import DiskTier, IntegrityError, TierUnavailableError
from tiercache.protocol import BlockKey


def key(index: int = 0, path: str = "bucket/obj") -> BlockKey:
    return BlockKey("target", path, "v1", 1 << 20, index)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_directory_is_private_and_files_owner_only(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    tier.put(key(), os.urandom(100_000))  # large enough to be a value file
    root = tmp_path / "tiercache-v1"
    assert mode(root) == 0o700
    assert mode(root / "cache.db") == 0o600
    files = list(root.rglob("*.val"))
    assert files
    assert all(mode(f) == 0o600 for f in files)
    assert mode(tmp_path / "tiercache-v1.lock") == 0o600
    tier.close()


def test_entries_left_by_an_earlier_process_are_reused(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    first = DiskTier(tmp_path, capacity_bytes=64 << 20)
    first.put(key(), data)
    first.close()
    second = DiskTier(tmp_path, capacity_bytes=64 << 20)
    assert second.get(key()) == data
    second.close()


def test_clear_on_start_wipes_only_when_no_live_process_uses_the_cache(tmp_path: Path) -> None:
    running = DiskTier(tmp_path, capacity_bytes=64 << 20)
    running.put(key(), b"x" * 40_000)
    sibling = DiskTier(tmp_path, capacity_bytes=64 << 20, clear_on_start=True)
    assert running.get(key()) == b"x" * 40_000  # a live user holds the lock: nothing wiped
    assert sibling.get(key()) == b"x" * 40_000
    running.close()
    sibling.close()
    restarted = DiskTier(tmp_path, capacity_bytes=64 << 20, clear_on_start=True)
    assert restarted.get(key()) is None  # alone: the leftovers are wiped
    restarted.close()


def test_small_values_live_in_the_database_and_are_checked_too(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    tier.put(key(), b"small footer")
    assert tier.get(key()) == b"small footer"
    assert not list((tmp_path / "tiercache-v1").rglob("*.val"))
    with sqlite3.connect(tmp_path / "tiercache-v1" / "cache.db") as db:
        (blob,) = db.execute("SELECT value FROM Cache").fetchone()
        damaged = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
        db.execute("UPDATE Cache SET value = ?", (damaged,))
    with pytest.raises(IntegrityError, match="checksum"):
        tier.get(key())
    assert tier.get(key()) is None  # the damaged entry was deleted
    tier.close()


def test_delete_object_drops_every_block_and_version(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    tier.put(key(0), b"a" * 50_000)
    tier.put(key(1)._replace(version="v2"), b"b")
    tier.put(key(0, path="bucket/other"), b"c")
    tier.delete_object("target", "bucket/obj")
    assert tier.get(key(0)) is None
    assert tier.get(key(1)._replace(version="v2")) is None
    assert tier.get(key(0, path="bucket/other")) == b"c"
    tier.close()


def test_stats_report_the_tier_without_touching_the_database(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=1 << 20)
    tier.put(key(), b"z" * 100_000)
    stats = tier.stats()
    assert stats["capacity_bytes"] == 1 << 20
    assert isinstance(stats["used_bytes"], int)
    assert stats["used_bytes"] >= 100_000
    assert stats["last_error"] is None
    assert stats["directory"] == str(tmp_path / "tiercache-v1")
    tier.close()


def test_a_closed_tier_never_reopens(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    tier.close()
    with pytest.raises(TierUnavailableError, match="closed"):
        tier.get(key())
    with pytest.raises(TierUnavailableError, match="closed"):
        tier.put(key(), b"x")
    assert not tier.ready
