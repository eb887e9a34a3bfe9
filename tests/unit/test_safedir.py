"""The directory-safety rules of the disk tier, on ``stat`` results and on a temporary directory.

The rules as pure functions of a ``stat`` result (no root needed: the owners are made up), then
the openers on real paths owned by the test's own user. Paths planted by another user are in
tests/chaos/test_disk_directory_safety.py (they need root).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tiercache.tiers.safedir import (
    UnsafePathError,
    clear,
    open_parent,
    open_private_dir,
    open_private_file,
    open_private_reader,
    parent_problem,
    parent_warning,
    private_problem,
)

ME = 1000
OTHER = 65534


def st(kind: int, mode: int, uid: int = ME) -> os.stat_result:
    """A made-up ``stat`` result: file type ``kind``, permission bits ``mode``, owner ``uid``."""
    return os.stat_result((kind | mode, 1, 1, 1, uid, uid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("result", "directory", "problem"),
    [
        (st(stat.S_IFDIR, 0o700), True, None),
        (st(stat.S_IFDIR, 0o755), True, None),  # readable by others: not the rule's business
        (st(stat.S_IFREG, 0o600), False, None),
        (st(stat.S_IFREG, 0o644), False, None),
        (st(stat.S_IFLNK, 0o777), True, "/c/x is a symlink; refusing to follow it"),
        (st(stat.S_IFLNK, 0o777), False, "/c/x is a symlink; refusing to follow it"),
        (st(stat.S_IFREG, 0o700), True, "/c/x is not a directory"),
        (st(stat.S_IFDIR, 0o700), False, "/c/x is not a regular file"),
        (st(stat.S_IFIFO, 0o600), False, "/c/x is not a regular file"),
        (st(stat.S_IFDIR, 0o700, OTHER), True, "/c/x is owned by uid 65534, not 1000"),
        (st(stat.S_IFDIR, 0o777, OTHER), True, "/c/x is owned by uid 65534, not 1000"),
        (st(stat.S_IFDIR, 0o770), True, "/c/x is writable by group/others (mode 0770)"),
        (st(stat.S_IFDIR, 0o702), True, "/c/x is writable by group/others (mode 0702)"),
        (st(stat.S_IFDIR, 0o1777), True, "/c/x is writable by group/others (mode 1777)"),
        (st(stat.S_IFREG, 0o620), False, "/c/x is writable by group/others (mode 0620)"),
    ],
)
def test_private_problem(result: os.stat_result, directory: bool, problem: str | None) -> None:
    assert private_problem("/c/x", result, euid=ME, directory=directory) == problem


def test_root_owns_what_root_creates() -> None:
    assert private_problem("/c/x", st(stat.S_IFDIR, 0o700, 0), euid=0, directory=True) is None
    assert private_problem("/c/x", st(stat.S_IFDIR, 0o700, ME), euid=0, directory=True) == (
        "/c/x is owned by uid 1000, not 0"
    )


def test_parent_problem() -> None:
    assert parent_problem("/c", st(stat.S_IFDIR, 0o755)) is None
    assert parent_problem("/c", st(stat.S_IFDIR, 0o777, OTHER)) is None  # a warning, below
    assert parent_problem("/c", st(stat.S_IFREG, 0o755)) == "/c is not a directory"


@pytest.mark.parametrize(
    ("result", "warning"),
    [
        (st(stat.S_IFDIR, 0o755), None),
        (st(stat.S_IFDIR, 0o700), None),
        (st(stat.S_IFDIR, 0o755, 0), None),  # root's: root can do anything anyway
        (st(stat.S_IFDIR, 0o1777, 0), None),  # /tmp: nobody renames what is not theirs
        (st(stat.S_IFDIR, 0o1770), None),
        (st(stat.S_IFDIR, 0o755, OTHER), "/c is owned by uid 65534, not 1000 or root"),
        (st(stat.S_IFDIR, 0o1777, OTHER), "/c is owned by uid 65534, not 1000 or root"),
        (st(stat.S_IFDIR, 0o777, 0), "/c is writable by group/others without the sticky bit"),
        (st(stat.S_IFDIR, 0o2777, 0), "(mode 2777)"),  # a Kubernetes emptyDir with fsGroup
        (st(stat.S_IFDIR, 0o775), "/c is writable by group/others without the sticky bit"),
    ],
)
def test_parent_warning(result: os.stat_result, warning: str | None) -> None:
    found = parent_warning("/c", result, euid=ME)
    if warning is None:
        assert found is None
    else:
        assert found is not None
        assert warning in found


# -- the openers, on the test user's own paths ---------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def parent_fd(tmp_path: Path) -> Iterator[int]:
    fd = open_parent(str(tmp_path))
    yield fd
    os.close(fd)


def test_a_directory_created_here_is_0700_whatever_the_umask(
    tmp_path: Path, parent_fd: int
) -> None:
    old = os.umask(0o277)  # would leave 0500
    try:
        fd = open_private_dir(parent_fd, "d", shown="d", euid=os.geteuid())
    finally:
        os.umask(old)
    os.close(fd)
    assert mode(tmp_path / "d") == 0o700


def test_an_existing_directory_of_ours_is_used_as_it_is(tmp_path: Path, parent_fd: int) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d").chmod(0o750)
    os.close(open_private_dir(parent_fd, "d", shown="d", euid=os.geteuid()))
    assert mode(tmp_path / "d") == 0o750  # not chmodded: tiercache did not create it


def test_a_symlinked_directory_is_refused_and_left_alone(tmp_path: Path, parent_fd: int) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    (tmp_path / "d").symlink_to(victim)
    with pytest.raises(UnsafePathError, match=r"^shown is a symlink; refusing to follow it$"):
        open_private_dir(parent_fd, "d", shown="shown", euid=os.geteuid())
    assert mode(victim) == 0o755
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UnsafePathError, match=r"^f is not a directory$"):
        open_private_dir(parent_fd, "f", shown="f", euid=os.geteuid())


def test_a_file_is_created_0600_or_checked(tmp_path: Path, parent_fd: int) -> None:
    old = os.umask(0o277)
    try:
        os.close(open_private_file(parent_fd, "lock", shown="lock", euid=os.geteuid()))
    finally:
        os.umask(old)
    assert mode(tmp_path / "lock") == 0o600
    os.close(open_private_file(parent_fd, "lock", shown="lock", euid=os.geteuid()))  # reused
    (tmp_path / "lock").chmod(0o666)
    with pytest.raises(UnsafePathError, match=r"writable by group/others \(mode 0666\)"):
        open_private_file(parent_fd, "lock", shown="lock", euid=os.geteuid())
    assert mode(tmp_path / "lock") == 0o666
    (tmp_path / "link").symlink_to(tmp_path / "lock")
    with pytest.raises(UnsafePathError, match="symlink"):
        open_private_file(parent_fd, "link", shown="link", euid=os.geteuid())


def test_a_planted_fifo_is_refused_without_hanging(tmp_path: Path, parent_fd: int) -> None:
    os.mkfifo(tmp_path / "lock", 0o600)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_private_file(parent_fd, "lock", shown="lock", euid=os.geteuid())
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_private_reader(str(tmp_path / "lock"), euid=os.geteuid())


def test_a_reader_never_follows_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "real").chmod(0o600)
    fd = open_private_reader(str(tmp_path / "real"), euid=os.geteuid())
    assert os.read(fd, 10) == b"data"
    os.close(fd)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UnsafePathError, match="link is a symlink; refusing to follow it"):
        open_private_reader(str(tmp_path / "link"), euid=os.geteuid())
    with pytest.raises(FileNotFoundError):
        open_private_reader(str(tmp_path / "gone"), euid=os.geteuid())


def test_a_world_writable_parent_is_used(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # a Kubernetes emptyDir: used; parent_warning says who could swap it
    os.close(open_parent(str(tmp_path)))
    tmp_path.chmod(0o700)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        open_parent(str(tmp_path / "file"))


def test_clear_empties_the_directory_without_following_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"keep")
    root = tmp_path / "root"
    (root / "ab" / "cd").mkdir(parents=True)
    (root / "ab" / "cd" / "x.val").write_bytes(b"x")
    (root / "cache.db").write_bytes(b"db")
    (root / "link").symlink_to(outside)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        clear(fd)
    finally:
        os.close(fd)
    assert os.listdir(root) == []
    assert (outside / "keep").read_bytes() == b"keep"
