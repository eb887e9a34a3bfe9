"""Chaos: a disk-tier directory planted by another user is refused, never followed nor changed.

Issue 12, point 5. As root, with ``TIERCACHE_DISK_DIR`` in a sticky world-writable parent (a
``/tmp``), another user (``nobody``) can create ``tiercache-v1`` first: a symlink to a victim
directory, or a directory of their own, mode ``0777``. Each test builds the filesystem as users
do (``fsspec.filesystem("tiercache", ...)``) and checks that (1) what was planted is unchanged
(modes, owners, contents, mtimes), (2) the disk tier is ``disabled`` with a reason naming the path,
(3) reads return the origin's bytes. The normal case is checked too: a directory created ``0700``
and files ``0600`` whatever the umask, and reads served by the disk.

Planting paths owned by another user needs root and the ``nobody`` user: without them these tests
fail, saying so (never a silent skip), like the tmpfs rows of the fault matrix.
"""

from __future__ import annotations

import os
import pwd
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from tiercache import DiskTier, Settings, TieredFileSystem, TierUnavailableError
from tiercache.protocol import BlockKey

pytestmark = pytest.mark.chaos

BLOCK = 64 * 1024
DATA = os.urandom(4 * BLOCK)  # four blocks, each stored as a value file (32 KiB or more)

Snapshot = dict[str, tuple[int, int, int, bytes | str | None]]


@pytest.fixture
def nobody(capsys: pytest.CaptureFixture[str]) -> pwd.struct_passwd:
    """The second user that plants paths; fails (never skips) where that is impossible."""
    if os.geteuid() != 0:
        with capsys.disabled():
            print("\n[disk chaos] not root: cannot plant paths owned by another user")
        pytest.fail("directory-safety tests plant paths owned by another user (run as root)")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("directory-safety tests need the user 'nobody' (pwd.getpwnam('nobody'))")


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """A ``/tmp``-like parent: world-writable with the sticky bit, owned by root."""
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o1777)
    return parent


@pytest.fixture
def origin_path() -> Iterator[str]:
    """An object in fsspec's in-memory filesystem (the origin of every test here)."""
    path = f"/safety/{uuid.uuid4().hex}.bin"
    memory = fsspec.filesystem("memory")
    memory.pipe_file(path, DATA)
    yield path
    memory.rm_file(path)


def snapshot(top: Path) -> Snapshot:
    """Every path at and below ``top``, never following a symlink: mode, owner, mtime, content."""
    paths = [top]
    if stat.S_ISDIR(os.lstat(top).st_mode):
        paths += [Path(d) / n for d, dirs, files in os.walk(top) for n in [*dirs, *files]]
    found: Snapshot = {}
    for path in paths:
        st = os.lstat(path)
        content: bytes | str | None = None
        if stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        found[str(path.relative_to(top))] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
    return found


def make_fs(disk_dir: Path, **overrides: Any) -> TieredFileSystem:
    """A filesystem over the in-memory origin, RAM off: every block comes from disk or origin."""
    settings = Settings(
        disk_dir=str(disk_dir),
        memory_bytes=0,
        block_size_bytes=BLOCK,
        disk_timeout_s=2.0,  # generous: this is about the directory, not speed on a busy machine
        **overrides,
    )
    fs = fsspec.filesystem("tiercache", target_protocol="memory", settings=settings)
    assert isinstance(fs, TieredFileSystem)
    return fs


def assert_refused(fs: TieredFileSystem, origin_path: str, *reason: str) -> None:
    """The disk tier is disabled, the reason says each of ``reason``, and reads go on."""
    disk = fs.stats()["tiers"]["disk"]
    assert disk["state"] == "disabled", disk
    for part in reason:
        assert part in str(disk["last_error"]), disk
    assert fs.cat_file(origin_path) == DATA
    assert (
        fs.cat_file(origin_path, start=BLOCK - 10, end=2 * BLOCK + 10)
        == DATA[BLOCK - 10 : 2 * BLOCK + 10]
    )


def key() -> BlockKey:
    return BlockKey("target", "bucket/object", "v1", BLOCK, 0)


# -- what another user plants ----------------------------------------------------------------


def test_a_planted_symlink_is_not_followed(
    nobody: pwd.struct_passwd, shared_tmp: Path, tmp_path: Path, origin_path: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o755)
    (victim / "keep.txt").write_bytes(b"the victim's own file")
    planted = shared_tmp / "tiercache-v1"
    planted.symlink_to(victim)
    os.lchown(planted, nobody.pw_uid, nobody.pw_gid)
    before = snapshot(victim), snapshot(planted)

    tier = DiskTier(shared_tmp, capacity_bytes=64 << 20)
    assert not tier.ready
    assert tier.last_error is not None
    assert f"{planted} is a symlink; refusing to follow it" in tier.last_error
    with pytest.raises(TierUnavailableError, match="symlink"):
        tier.put(key(), b"x" * BLOCK)
    tier.close()

    fs = make_fs(shared_tmp)
    assert_refused(fs, origin_path, str(planted), "is a symlink; refusing to follow it")
    fs.close()
    assert (snapshot(victim), snapshot(planted)) == before
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755


def test_a_planted_foreign_directory_is_not_used(
    nobody: pwd.struct_passwd, shared_tmp: Path, origin_path: str
) -> None:
    planted = shared_tmp / "tiercache-v1"
    planted.mkdir()
    planted.chmod(0o777)
    (planted / "cache.db").write_bytes(b"SQLite format 3\0 planted by someone else")
    for path in (planted, planted / "cache.db"):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    before = snapshot(planted)

    fs = make_fs(shared_tmp)
    assert_refused(fs, origin_path, f"{planted} is owned by uid {nobody.pw_uid}, not 0")
    fs.close()
    assert snapshot(planted) == before


def test_a_group_writable_directory_of_ours_is_not_used(tmp_path: Path, origin_path: str) -> None:
    disk_dir = tmp_path / "disk"
    disk_dir.mkdir(mode=0o755)
    root = disk_dir / "tiercache-v1"
    root.mkdir()
    root.chmod(0o770)
    before = snapshot(root)

    fs = make_fs(disk_dir)
    assert_refused(fs, origin_path, f"{root} is writable by group/others (mode 0770)")
    fs.close()
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "case",
    [
        ("cache.db", "symlink", "cache.db is a symlink; refusing to follow it"),
        ("cache.db-wal", "foreign", "cache.db-wal is owned by uid 65534, not 0"),
        ("cache.db-shm", "writable", "cache.db-shm is writable by group/others (mode 0666)"),
    ],
)
def test_a_database_file_that_is_not_ours_disables_the_tier(
    nobody: pwd.struct_passwd, tmp_path: Path, origin_path: str, case: tuple[str, str, str]
) -> None:
    name, plant, reason = case
    disk_dir = tmp_path / "disk"
    root = disk_dir / "tiercache-v1"
    tier = DiskTier(disk_dir, capacity_bytes=64 << 20)  # a good directory, used once
    tier.put(key(), b"y" * BLOCK)
    tier.close()
    planted = root / name
    planted.unlink(missing_ok=True)
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"not the cache's database")
    if plant == "symlink":
        planted.symlink_to(elsewhere)
    else:
        planted.write_bytes(b"")
        if plant == "foreign":
            os.chown(planted, nobody.pw_uid, nobody.pw_gid)
        else:
            planted.chmod(0o666)
    before = snapshot(elsewhere), snapshot(planted)

    fs = make_fs(disk_dir)
    assert_refused(fs, origin_path, str(root / name), reason.replace("65534", str(nobody.pw_uid)))
    fs.close()
    assert (snapshot(elsewhere), snapshot(planted)) == before


def test_a_parent_others_can_write_is_used_with_a_warning(
    nobody: pwd.struct_passwd, tmp_path: Path, origin_path: str
) -> None:
    """An emptyDir is 0777 without the sticky bit: used, and doctor/stats() say who could swap it.

    What another user could plant in it is refused when the tier opens it (the tests above).
    """
    parent = tmp_path / "theirs"
    parent.mkdir()
    parent.chmod(0o777)
    os.chown(parent, nobody.pw_uid, nobody.pw_gid)
    fs = make_fs(parent)
    try:
        assert fs.cat_file(origin_path) == fs.cat_file(origin_path)
        disk = fs.stats()["tiers"]["disk"]
        assert disk["state"] == "closed"
        warning = str(disk["directory_warning"])
        assert f"{parent} is owned by uid {nobody.pw_uid}" in warning
    finally:
        fs.close()
    assert stat.S_IMODE((parent / "tiercache-v1").stat().st_mode) == 0o700


def test_the_tier_opens_once_the_planted_path_is_gone(
    nobody: pwd.struct_passwd, shared_tmp: Path, tmp_path: Path
) -> None:
    planted = shared_tmp / "tiercache-v1"
    planted.symlink_to(tmp_path)
    os.lchown(planted, nobody.pw_uid, nobody.pw_gid)
    now = [0.0]
    tier = DiskTier(shared_tmp, capacity_bytes=64 << 20, retry_after_s=5, clock=lambda: now[0])
    assert not tier.ready
    planted.unlink()  # the operator removes it
    with pytest.raises(TierUnavailableError):
        tier.put(key(), b"z" * BLOCK)  # not before the retry time
    now[0] = 6.0
    tier.put(key(), b"z" * BLOCK)
    assert tier.ready
    assert tier.get(key()) == b"z" * BLOCK
    assert stat.S_IMODE(planted.lstat().st_mode) == 0o700
    tier.close()


# -- the normal case -------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_a_fresh_directory_is_private_whatever_the_umask(
    shared_tmp: Path, origin_path: str, umask: int
) -> None:
    old = os.umask(umask)
    try:
        fs = make_fs(shared_tmp)
        assert fs.cat_file(origin_path) == DATA  # fills the disk tier
        fs.chain.fills.join()
    finally:
        os.umask(old)
    root = shared_tmp / "tiercache-v1"
    modes = {
        str(path.relative_to(shared_tmp)): stat.S_IMODE(path.lstat().st_mode)
        for path in [root, shared_tmp / "tiercache-v1.lock", *root.rglob("*")]
    }
    assert modes.pop("tiercache-v1") == 0o700
    assert modes.pop("tiercache-v1.lock") == 0o600
    values = [name for name in modes if name.endswith(".val")]
    assert len(values) == 4  # one file per block
    databases = [name for name in modes if Path(name).name.startswith("cache.db")]
    assert databases
    for name, mode in modes.items():
        expected = 0o600 if name in values or name in databases else 0o700  # subdirectories
        assert mode == expected, (name, oct(mode))
    before = fs.stats()["origin"]["bytes"]
    assert fs.cat_file(origin_path) == DATA
    stats = fs.stats()
    assert stats["origin"]["bytes"] == before  # every block from the disk
    assert stats["tiers"]["disk"]["hits"] >= 4
    assert stats["tiers"]["disk"]["state"] == "closed"
    fs.close()
