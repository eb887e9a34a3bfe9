"""A local file's version is what its owner cannot set back (issue 15, part 2)."""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import pytest

from tiercache import MemoryTier, Settings, TieredFileSystem, localversion
from tiercache.localversion import local_version

NO_TTL = Settings(block_size_bytes=4096, memory_bytes=1 << 20, info_ttl_s=0)


def _overwrite_keeping_mtime(path: pathlib.Path, data: bytes) -> None:
    """What ``cp -p`` and ``rsync -t`` do: same size, new bytes, the old mtime put back."""
    before = os.stat(path)
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _fs() -> TieredFileSystem:
    return TieredFileSystem(target_protocol="file", settings=NO_TTL, tiers=[MemoryTier(1 << 20)])


def test_a_same_size_overwrite_with_the_old_mtime_is_seen(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"a" * 10_000)
    fs = _fs()
    assert fs.cat_file(str(path)) == b"a" * 10_000
    assert fs.cat_file(str(path)) == b"a" * 10_000
    _overwrite_keeping_mtime(path, b"b" * 10_000)
    assert fs.cat_file(str(path)) == b"b" * 10_000
    with fs.open(str(path), "rb") as f:
        assert f.read() == b"b" * 10_000
    fs.close()


def test_the_same_when_the_file_is_no_longer_racy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no racy window, the version alone (ino and ctime) must tell the two writes apart:
    # the kernel's coarse clock may give both the same ctime, so put the ctime of the second
    # one surely later by waiting on it, never on a timer.
    monkeypatch.setattr(localversion, "RACY_S", 0.0)
    path = tmp_path / "x.bin"
    path.write_bytes(b"a" * 10_000)
    first = os.stat(path).st_ctime_ns
    fs = _fs()
    assert fs.cat_file(str(path)) == b"a" * 10_000
    while True:
        _overwrite_keeping_mtime(path, b"b" * 10_000)
        if os.stat(path).st_ctime_ns != first:
            break
    assert fs.cat_file(str(path)) == b"b" * 10_000
    fs.close()


def test_a_replaced_file_is_seen(tmp_path: pathlib.Path) -> None:
    # A new inode (write a copy, rename it over), same size and mtime.
    path = tmp_path / "x.bin"
    path.write_bytes(b"a" * 5000)
    fs = _fs()
    assert fs.cat_file(str(path)) == b"a" * 5000
    mtime = os.stat(path).st_mtime_ns
    other = tmp_path / "y.bin"
    other.write_bytes(b"c" * 5000)
    os.utime(other, ns=(mtime, mtime))
    os.replace(other, path)
    assert fs.cat_file(str(path)) == b"c" * 5000
    fs.close()


def test_the_version_is_made_of_size_mtime_inode_and_ctime(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    st = os.stat(path)
    raw: dict[str, Any] = {"size": 3, "ino": st.st_ino, "mtime": st.st_mtime}
    plain = f"3:{st.st_mtime_ns}:ino={st.st_ino}:ctime={st.st_ctime_ns}"
    # Looked at right after the write: it waits past the ctime's tick, and says the same every
    # time (other processes share blocks by it).
    assert local_version(str(path), raw) == plain
    assert time.time_ns() - st.st_ctime_ns >= int(localversion.RACY_S * 1e9)
    assert local_version(str(path), raw) == plain
    changed = local_version(str(path), {**raw, "size": 4})  # changed since the info
    assert changed is not None
    assert changed.startswith(plain + ":racy=")
    assert changed != local_version(str(path), {**raw, "size": 4})
    monkeypatch.setattr(time, "time_ns", lambda: st.st_ctime_ns - 10**9)
    future = local_version(str(path), raw)  # a ctime ahead of this clock
    assert future is not None
    assert future.startswith(plain + ":racy=")
    assert local_version(str(tmp_path), {"size": 0}) is None  # a directory
    assert local_version(str(tmp_path / "gone"), {"size": 0}) is None


def test_the_info_returned_is_the_targets_own(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    fs = _fs()
    assert fs.info(str(path)) == fs.target.info(str(path))
    fs.close()
