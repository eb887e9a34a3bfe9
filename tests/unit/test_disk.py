"""The disk tier on its own: layout and permissions, reuse, clearing, framing of small values."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import diskcache
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


# -- directory safety (the rules are in tests/unit/test_safedir.py; other users' paths in
# -- tests/chaos/test_disk_directory_safety.py) ----------------------------------------------


@pytest.mark.parametrize("how", ["symlink", "writable"])
def test_a_value_file_that_is_not_private_is_refused(tmp_path: Path, how: str) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    data = os.urandom(100_000)
    tier.put(key(), data)
    (value,) = (tmp_path / "tiercache-v1").rglob("*.val")
    elsewhere = tmp_path / "elsewhere.val"
    if how == "symlink":
        # The very bytes that were stored: followed, they would pass every framing check.
        value.rename(elsewhere)
        value.symlink_to(elsewhere)
        reason = "is a symlink; refusing to follow it"
    else:
        value.chmod(0o666)
        reason = r"is writable by group/others \(mode 0666\)"
    with pytest.raises(IntegrityError, match=reason):
        tier.get(key())
    assert tier.get(key()) is None  # the entry was deleted (the symlink, not what it points to)
    assert not value.is_symlink()
    if how == "symlink":
        assert elsewhere.read_bytes()[-len(data) :] == data
    tier.close()


def test_a_value_diskcache_would_unpickle_is_refused(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, capacity_bytes=64 << 20)
    with diskcache.Cache(str(tmp_path / "tiercache-v1")) as other:
        other.set(key().digest(), ["pickled", "by", "someone", "else"])  # MODE_PICKLE
    with pytest.raises(IntegrityError, match="diskcache mode"):
        tier.get(key())
    assert tier.get(key()) is None
    tier.close()


def test_a_world_writable_parent_without_the_sticky_bit_is_used_with_a_warning(
    tmp_path: Path,
) -> None:
    """A Kubernetes emptyDir is 0777: the tier uses it, and says who could swap its directory."""
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    tier = DiskTier(parent, capacity_bytes=64 << 20)
    assert tier.ready
    warning = tier.stats()["directory_warning"]
    assert f"{parent} is writable by group/others without the sticky bit (mode 0777)" in str(
        warning
    )
    assert mode(parent) == 0o777  # never changed
    assert mode(parent / "tiercache-v1") == 0o700
    tier.close()
    parent.chmod(0o1777)  # a /tmp: nothing to say
    tier = DiskTier(parent, capacity_bytes=64 << 20)
    assert tier.ready
    assert tier.stats()["directory_warning"] is None
    tier.close()


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        tier = DiskTier(tmp_path / "a" / "b", capacity_bytes=64 << 20)
    finally:
        os.umask(old)
    assert tier.ready
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    tier.close()
